// Refresh the live part in place: fetch console/live (relative, so the page
// also works behind a proxy under a sub-path) every
// data-refresh-ms, swap it in; say so plainly when this node stops answering.
(function () {
  var every = parseInt(document.body.getAttribute("data-refresh-ms"), 10) || 2000;
  var live = document.getElementById("live");
  var stamp = document.getElementById("stamp");
  var stale = document.getElementById("stale");
  var failedSince = null;
  function tick() {
    fetch("console/live", { cache: "no-store", credentials: "same-origin" })
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
        if (!failedSince) { failedSince = new Date(); }
        stale.hidden = false;
        stale.textContent = "This node does not answer (" + e.message + ") since " +
          failedSince.toISOString().substring(11, 19) + " UTC: what follows is out of date. Open another node's console.";
        document.body.classList.add("stale");
      })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
