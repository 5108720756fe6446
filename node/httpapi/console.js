// Refresh the live part in place: fetch console/live (relative, so the page
// also works behind a proxy under a sub-path) every data-refresh-ms, counted
// from the start of one refresh to the start of the next, and swap it in.
// A refresh that has not answered after data-timeout-ms is abandoned and
// counts as a failure: a node that accepts the connection but never answers
// (stopped with SIGSTOP, a hung connection) must not freeze the page on
// figures it then shows as current. Say so plainly when this node stops
// answering.
(function () {
  var every = parseInt(document.body.getAttribute("data-refresh-ms"), 10) || 2000;
  var limit = parseInt(document.body.getAttribute("data-timeout-ms"), 10) || 4000;
  var live = document.getElementById("live");
  var stamp = document.getElementById("stamp");
  var stale = document.getElementById("stale");
  var failedSince = null;
  function tick() {
    var started = Date.now();
    var ctl = new AbortController();
    var timer = setTimeout(function () { ctl.abort(); }, limit);
    fetch("console/live", { cache: "no-store", credentials: "same-origin", signal: ctl.signal })
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        stamp.textContent = new Date().toISOString().substring(11, 19) + " UTC";
        failedSince = null;
        stale.hidden = true;
        document.body.classList.remove("stale");
      })
      .catch(function (e) {
        if (!failedSince) { failedSince = new Date(started); }
        var why = ctl.signal.aborted ? "no answer within " + limit + " ms" : e.message;
        stale.hidden = false;
        stale.textContent = "This node does not answer (" + why + ") since " +
          failedSince.toISOString().substring(11, 19) + " UTC: what follows is out of date. Open another node's console.";
        document.body.classList.add("stale");
      })
      .then(function () {
        clearTimeout(timer);
        setTimeout(tick, Math.max(0, every - (Date.now() - started)));
      });
  }
  setTimeout(tick, every);
})();
