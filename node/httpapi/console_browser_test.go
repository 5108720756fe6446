package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/continuum-mail/continuum/node/httpapi"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// chromiumPath finds Debian's chromium ($CHROMIUM overrides).
func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// screenshotDir is where the test keeps its screenshots for review:
// $CONTINUUM_CONSOLE_SCREENSHOTS, else $TMPDIR/continuum-console.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("CONTINUUM_CONSOLE_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "continuum-console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestConsoleInBrowser loads a follower's console in headless Chromium,
// checks that it names the three nodes and the leader, stops the leader,
// and checks, without reloading, that the stopped node's tile turns
// unhealthy within httpapi.HealthBound and that the new leader is named;
// then stops the page's own node and checks that the page says so.
func TestConsoleInBrowser(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("no chromium binary (apt-get install chromium, or set CHROMIUM): the console's browser test cannot run")
	}
	c := nodetest.Start(t, nodetest.Options{Nodes: 3, Protocols: true})
	ctx := c.Ctx(2 * time.Minute)
	l := c.WaitLeader(10 * time.Second)
	for _, step := range []func(m *mail.Service) error{
		func(m *mail.Service) error { return m.AddDomain(ctx, "example.test", "") },
		func(m *mail.Service) error {
			_, err := m.AddUser(ctx, "demo@example.test", "secret-password", 0)
			return err
		},
	} {
		for {
			l = c.WaitLeader(10 * time.Second)
			err := step(c.Nodes[l].Mail())
			if err == nil || errors.Is(err, mail.ErrExists) {
				break
			}
			if !mail.IsTemporary(err) || ctx.Err() != nil {
				t.Fatal(err)
			}
		}
	}
	f := (l + 1) % 3 // the page is served by a follower
	// Some mail through the follower, so the chart has bars: accepted, and
	// one refused for a NUL byte (554).
	for i := range 4 {
		if err := sendMail(c.Cfgs[f].SMTPAddr, fmt.Sprintf("Subject: console %d\r\n\r\nhello\r\n", i)); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	if err := sendMail(c.Cfgs[f].SMTPAddr, "Subject: nul\r\n\r\nbad \x00 byte\r\n"); err == nil || !strings.Contains(err.Error(), "554") {
		t.Fatalf("a NUL byte: got %v, want 554", err)
	}

	// A consistency check, so the integrity table has verdicts to show.
	if _, _, err := c.Nodes[l].ProposeCheck(ctx, "test"); err != nil {
		t.Logf("consistency check not proposed: %v", err)
	}

	actx, cancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000),
	)...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	url := "http://" + c.Cfgs[f].HTTPAddr + "/"
	if err := chromedp.Do(bctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("#live"))); err != nil {
		t.Fatalf("load %s: %v", url, err)
	}
	type tile struct{ Node, Healthy, Health, State string }
	tiles := func() map[string]tile {
		t.Helper()
		got, err := chromedp.Run(bctx, chromedp.Evaluate[[]tile](`Array.from(document.querySelectorAll("article.tile")).map(e => ({Node: e.dataset.node, Healthy: e.dataset.healthy, Health: e.dataset.health, State: e.dataset.state}))`))
		if err != nil {
			t.Fatalf("read tiles: %v", err)
		}
		m := map[string]tile{}
		for _, x := range got {
			m[x.Node] = x
		}
		return m
	}
	text := func(sel string) string {
		t.Helper()
		q, _ := json.Marshal(sel)
		s, err := chromedp.Run(bctx, chromedp.Evaluate[string](`(document.querySelector(`+string(q)+`) || {}).innerText || ""`))
		if err != nil {
			t.Fatalf("read %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	leaderID := c.Cfgs[l].ID
	// The first render may predate the last write's apply: give the page a
	// couple of refreshes to agree.
	var seen []string // what the page showed, each change once: for the reader of a failed run
	loaded := time.Now()
	defer func() {
		if t.Failed() {
			t.Logf("the page showed (+time since load):\n  %s", strings.Join(seen, "\n  "))
			// Each refresh the page made: when it started and how long it took.
			fetches, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").filter(e => e.name.includes("console/live")).map(e => "+" + Math.round(e.startTime) + " ms, took " + Math.round(e.duration) + " ms")`))
			t.Logf("the page's refreshes (%v): %s", err, strings.Join(fetches, "; "))
		}
	}()
	c.Eventually(10*time.Second, "the page names every node healthy and the leader", func() bool {
		ts := tiles()
		l := c.Leader()
		now := fmt.Sprintf("tiles %v, leader %q (raft: %d), refreshed %s, stale %q", ts, text("#leader"), l, text("#stamp"), text("#stale"))
		if len(seen) == 0 || !strings.HasSuffix(seen[len(seen)-1], now) {
			seen = append(seen, fmt.Sprintf("+%v %s", time.Since(loaded).Round(time.Millisecond), now))
		}
		for _, id := range c.IDs() {
			if ts[id].Healthy != "true" {
				return false
			}
		}
		return len(ts) == 3 && l >= 0 && text("#leader") == c.Cfgs[l].ID
	})
	t.Logf("the page showed every node healthy %v after it loaded:\n  %s", time.Since(loaded).Round(time.Millisecond), strings.Join(seen, "\n  "))
	if fetches, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").filter(e => e.name.includes("console/live")).map(e => "+" + Math.round(e.startTime) + " ms, took " + Math.round(e.duration) + " ms")`)); err == nil {
		t.Logf("refreshes: %s", strings.Join(fetches, "; "))
	}
	leaderID = text("#leader")
	// Soft: the check's verdicts usually arrive within a second or two; the
	// screenshot is better with them, the test does not depend on them.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && strings.Count(text("table.grid-table"), "agrees") < 3 {
		time.Sleep(200 * time.Millisecond)
	}
	body := text("body")
	for _, id := range c.IDs() {
		if !strings.Contains(body, id) {
			t.Errorf("the page does not name %s", id)
		}
	}
	if legend := text(".legend"); !strings.Contains(legend, "accepted 4") || !strings.Contains(legend, "refused 1") {
		t.Errorf("flow legend %q: want accepted 4 and refused 1", legend)
	}
	shot(t, bctx, "console.png")

	// Mark the document: a reload would lose the mark.
	if err := chromedp.Do(bctx, chromedp.Evaluate[chromedp.Void](`window.__consoleMark = 42`)); err != nil {
		t.Fatal(err)
	}
	// Stop the leader, unless leadership moved to the page's own node
	// meanwhile: then stop another node (the page must outlive it).
	stopped := -1
	for i, cfg := range c.Cfgs {
		if cfg.ID == leaderID {
			stopped = i
		}
	}
	stoppedLeader := stopped != f
	if !stoppedLeader {
		stopped = (f + 1) % 3
		t.Logf("the page's node %s leads: stopping follower %s instead", leaderID, c.Cfgs[stopped].ID)
	}
	stoppedID := c.Cfgs[stopped].ID
	c.StopNode(stopped)
	gone := time.Now()
	var took time.Duration
	c.Eventually(httpapi.HealthBound, fmt.Sprintf("%s's tile to turn unhealthy within %v", stoppedID, httpapi.HealthBound), func() bool {
		took = time.Since(gone)
		return tiles()[stoppedID].Healthy == "false"
	})
	t.Logf("%s stopped: its tile turned %s after %v (bound %v)", stoppedID, tiles()[stoppedID].Health, took.Round(10*time.Millisecond), httpapi.HealthBound)
	if stoppedLeader {
		c.Eventually(15*time.Second, "a new leader on the page", func() bool {
			s := text("#leader")
			return s != leaderID && s != "none" && s != ""
		})
	}
	mark, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.__consoleMark || 0`))
	if err != nil || mark != 42 {
		t.Fatalf("the page was reloaded (mark %d, %v): it must refresh in place", mark, err)
	}
	for _, id := range c.IDs() {
		if id != stoppedID && tiles()[id].Healthy != "true" {
			// Not an error: a node may briefly lose contact during the
			// election. Logged for the reader of a flaky run.
			t.Logf("%s shows %s after the election", id, tiles()[id].Health)
		}
	}
	shot(t, bctx, "console-after-stop.png")

	// The page's own node goes: the page says so instead of showing stale
	// figures as if they were current.
	c.StopNode(f)
	c.Eventually(3*httpapi.RefreshInterval, "the page to say its node does not answer", func() bool {
		b, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`!document.getElementById("stale").hidden && document.body.classList.contains("stale")`))
		return err == nil && b
	})
	t.Logf("banner: %s", text("#stale"))
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(screenshotDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot for review: %s", path)
}

// sendMail sends msg as a sending MTA would: a 4xx reply (the cluster is
// electing, "outcome unknown, please retry") is tried again, for up to
// 30 s; a 5xx or any other error is returned.
func sendMail(addr, msg string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := smtp.SendMail(addr, nil, "sender@remote.test", []string{"demo@example.test"}, []byte(msg))
		var te *textproto.Error
		if err == nil || !errors.As(err, &te) || te.Code/100 != 4 || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hangingConsole serves a fixed healthy cluster.
type hangingConsole struct{}

func (hangingConsole) Ready() (bool, string)      { return true, "ready" }
func (hangingConsole) Info() *peerpb.InfoResponse { return &peerpb.InfoResponse{Id: "n1", Site: "a"} }
func (hangingConsole) StoreStats() httpapi.StoreStats {
	return httpapi.StoreStats{}
}
func (hangingConsole) ClusterStatus(context.Context) (*adminpb.ClusterStatusResponse, error) {
	return &adminpb.ClusterStatusResponse{Leader: "n1", Term: 1, Nodes: []*adminpb.NodeStatus{
		{Id: "n1", Site: "a", Role: "voter", State: "leader", Healthy: true},
	}}, nil
}

// TestConsoleRefreshThatNeverAnswers: a refresh that the node accepts but
// never answers (a node stopped with SIGSTOP, a hung connection) must not
// freeze the page on figures it shows as current: the page abandons it
// after httpapi.RefreshTimeout, says the node does not answer, and goes on
// refreshing, so the banner clears once the node answers again.
func TestConsoleRefreshThatNeverAnswers(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("no chromium binary (apt-get install chromium, or set CHROMIUM): the console's browser test cannot run")
	}
	h := httpapi.NewHandler(hangingConsole{}, httpapi.Options{Console: hangingConsole{}, Dev: true})
	// gate holds /console/live requests while it is open-ended: each one
	// is accepted and waits, unanswered, until the gate closes (then it is
	// answered) or the page gives up on it.
	var mu sync.Mutex
	gate := make(chan struct{})
	close(gate) // answer at once
	hold := func() { mu.Lock(); gate = make(chan struct{}); mu.Unlock() }
	answer := func() {
		mu.Lock()
		defer mu.Unlock()
		select {
		case <-gate:
		default:
			close(gate)
		}
	}
	defer answer()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/console/live" {
			mu.Lock()
			g := gate
			mu.Unlock()
			select {
			case <-g:
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	actx, cancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU)...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#live"))); err != nil {
		t.Fatalf("load: %v", err)
	}
	stale := func() (bool, string) {
		s, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[String(!document.getElementById("stale").hidden && document.body.classList.contains("stale")), document.getElementById("stale").innerText]`))
		if err != nil {
			t.Fatalf("read the banner: %v", err)
		}
		return s[0] == "true", s[1]
	}
	hold()
	hung := time.Now()
	// The refresh in flight when the hang began may still answer; the next
	// one starts within RefreshInterval and is abandoned RefreshTimeout
	// later.
	bound := httpapi.RefreshInterval + httpapi.RefreshTimeout + time.Second
	var banner string
	for {
		on, text := stale()
		if on {
			banner = text
			break
		}
		if time.Since(hung) > bound {
			t.Fatalf("no banner %v after the node stopped answering (bound %v): the page waits for a refresh that never ends", time.Since(hung).Round(time.Millisecond), bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("banner after %v: %s", time.Since(hung).Round(10*time.Millisecond), banner)
	if !strings.Contains(banner, "no answer within") {
		t.Errorf("banner %q: want it to say the refresh got no answer in time", banner)
	}
	// The refresh in flight now was sent after the abort: answering it
	// shows the page went on refreshing.
	answer()
	back := time.Now()
	for on, _ := stale(); on; on, _ = stale() {
		if time.Since(back) > bound {
			t.Fatalf("the banner stays %v after the node answers again (bound %v): the page stopped refreshing", time.Since(back).Round(time.Millisecond), bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("banner cleared %v after the node answered again", time.Since(back).Round(10*time.Millisecond))
}
