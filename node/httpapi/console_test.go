package httpapi

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// t0 is the fake clock's start: a minute boundary.
var t0 = time.Date(2026, 11, 30, 15, 0, 0, 0, time.UTC)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestFlowRing(t *testing.T) {
	clk := &fakeClock{t: t0.Add(10 * time.Second)}
	f := NewFlow(clk.now)
	f.Count("accepted")
	f.Count("accepted")
	f.Count("deferred")
	f.Count("rejected")
	f.Count("something new") // counted as deferred, never dropped
	clk.t = t0.Add(3*time.Minute + 5*time.Second)
	f.Count("accepted")

	got := f.Last()
	if len(got) != FlowMinutes {
		t.Fatalf("got %d minutes, want %d", len(got), FlowMinutes)
	}
	last, first := got[FlowMinutes-1], got[FlowMinutes-4]
	if want := (FlowMinute{Start: t0.Add(3 * time.Minute).Unix(), Accepted: 1}); last != want {
		t.Errorf("current minute: got %+v, want %+v", last, want)
	}
	if want := (FlowMinute{Start: t0.Unix(), Accepted: 2, Deferred: 2, Refused: 1}); first != want {
		t.Errorf("three minutes ago: got %+v, want %+v", first, want)
	}
	for i, m := range got[:FlowMinutes-4] {
		if m.Accepted+m.Deferred+m.Refused != 0 {
			t.Errorf("minute %d: got %+v, want nothing", i, m)
		}
	}

	// An hour later the first minute has left the window, and its slot,
	// reused by a new minute, starts from zero.
	clk.t = t0.Add(time.Hour + 30*time.Second)
	f.Count("rejected")
	got = f.Last()
	if want := (FlowMinute{Start: t0.Add(time.Hour).Unix(), Refused: 1}); got[FlowMinutes-1] != want {
		t.Errorf("an hour later: got %+v, want %+v", got[FlowMinutes-1], want)
	}
	if got[0].Start != t0.Add(time.Minute).Unix() {
		t.Errorf("window starts at %v, want %v", time.Unix(got[0].Start, 0).UTC(), t0.Add(time.Minute))
	}

	var nilFlow *Flow
	nilFlow.Count("accepted") // a node without a ring
	if len(nilFlow.Last()) != FlowMinutes {
		t.Error("a nil Flow must still give an empty hour")
	}
}

func TestNiceCeil(t *testing.T) {
	for _, c := range []struct{ in, want uint64 }{{0, 5}, {1, 5}, {5, 5}, {6, 10}, {11, 20}, {20, 20}, {21, 50}, {499, 500}, {501, 1000}} {
		if got := niceCeil(c.in); got != c.want {
			t.Errorf("niceCeil(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// fakeNode serves a fixed three-site cluster: n1 leads, n2 lags and is
// quarantined, n3 does not answer.
type fakeNode struct{ err error }

func (fakeNode) Ready() (bool, string) { return true, "ready" }
func (fakeNode) Info() *peerpb.InfoResponse {
	return &peerpb.InfoResponse{Id: "n1", Site: "a"}
}

func (f fakeNode) ClusterStatus(context.Context) (*adminpb.ClusterStatusResponse, error) {
	if f.err != nil {
		return nil, f.err
	}
	return &adminpb.ClusterStatusResponse{
		Leader: "n1", Term: 7,
		Warnings: []string{"n2 is quarantined: digest disagrees"},
		Nodes: []*adminpb.NodeStatus{
			{Id: "n1", Site: "a", Role: "voter", State: "leader", Healthy: true, AppliedIndex: 1200, CommitIndex: 1201, LastContactMs: 0, Gossip: "alive",
				CheckIndex: 1100, CheckVerdict: "agrees", CheckDigest: "0123456789abcdef0123", ScrubDoneUnixMs: t0.Add(-90 * time.Second).UnixMilli()},
			{Id: "n2", Site: "b", Role: "voter", State: "follower", Healthy: false, AppliedIndex: 900, CommitIndex: 1201, LastContactMs: 40, Gossip: "alive",
				Quarantine: "digest disagrees at index 1100", CheckIndex: 1100, CheckVerdict: "disagrees", ScrubDoneUnixMs: t0.Add(-3 * time.Hour).UnixMilli(), ScrubError: "block checksum mismatch"},
			{Id: "n3", Site: "c", Role: "voter", State: "unreachable", LastContactMs: 12000, Gossip: "dead"},
		},
	}, nil
}

func (fakeNode) StoreStats() StoreStats {
	return StoreStats{
		Sizes:        []StoreSize{{"state", 5 << 20}, {"raft-log", 12 << 20}, {"snapshots", 0}},
		AppliedIndex: 1200, Domains: 2, Users: 40, Mailboxes: 200, Messages: 12345, MessageBytes: 900 << 20,
		DiskFreeBytes: 40 << 30, DiskTotalBytes: 100 << 30,
	}
}

type fakeAudit struct{}

func (fakeAudit) Recent(context.Context, int) ([]AuditEntry, error) {
	return []AuditEntry{{Time: t0.Add(-time.Minute), Actor: "admin-alice", Action: "user add", Target: "bob@example.test", Result: "ok"}}, nil
}

func newTestConsole(n fakeNode, audit AuditSource) *console {
	clk := &fakeClock{t: t0.Add(-59 * time.Minute)}
	f := NewFlow(clk.now)
	for i := range 60 {
		clk.t = t0.Add(time.Duration(i-59) * time.Minute)
		for range i % 7 {
			f.Count("accepted")
		}
		if i%10 == 3 {
			f.Count("deferred")
		}
		if i == 50 {
			f.Count("rejected")
		}
	}
	return &console{c: n, flow: f, audit: audit, authorize: DefaultAuthorize(true), log: slog.Default(), self: "n1", site: "a", now: clk.now}
}

// TestConsoleLiveGolden renders the live part for a fixed cluster and
// compares it with testdata/live.golden.html (go test -update rewrites it).
func TestConsoleLiveGolden(t *testing.T) {
	c := newTestConsole(fakeNode{}, nil)
	rec := httptest.NewRecorder()
	c.gate(c.live)(rec, httptest.NewRequest("GET", "/console/live", nil))
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	golden(t, "live.golden.html", rec.Body.Bytes())
	body := rec.Body.String()
	for _, want := range []string{
		`data-node="n1" data-healthy="true" data-health="healthy"`,
		`data-node="n2" data-healthy="false" data-health="quarantined"`,
		`data-node="n3" data-healthy="false" data-health="unreachable"`,
		`id="fault-tolerance" data-value="0"`, // 1 healthy voter of 3
		`(lag 300)`,                           // against the leader's applied index
		`losing this site stops writes`,
		`block checksum mismatch`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("live part lacks %q", want)
		}
	}
	if strings.Contains(body, "Recent admin actions") {
		t.Error("the audit section renders without an audit source")
	}
}

func TestConsolePageAndAudit(t *testing.T) {
	c := newTestConsole(fakeNode{}, fakeAudit{})
	rec := httptest.NewRecorder()
	c.gate(c.page)(rec, httptest.NewRequest("GET", "/", nil))
	body := rec.Body.String()
	for _, want := range []string{"<!doctype html>", `<script>`, `fetch("console/live"`, "Recent admin actions", "admin-alice", "bob@example.test"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"http://", "https://", "<link", "src="} {
		if strings.Contains(body, bad) {
			t.Errorf("page refers to an external asset (%q)", bad)
		}
	}
	if got := rec.Header().Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'none'") {
		t.Errorf("Content-Security-Policy %q", got)
	}
}

func TestConsoleStatusError(t *testing.T) {
	c := newTestConsole(fakeNode{err: errors.New("raft configuration: shutdown")}, nil)
	rec := httptest.NewRecorder()
	c.gate(c.live)(rec, httptest.NewRequest("GET", "/console/live", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "cluster view unavailable: raft configuration: shutdown") {
		t.Errorf("status %d, body without the error:\n%s", rec.Code, rec.Body)
	}
}

// TestConsoleAuthorize: outside dev, only loopback clients see the console
// until admin certificates reach the HTTP port; health, status and metrics
// stay open; the console is read-only.
func TestConsoleAuthorize(t *testing.T) {
	n := fakeNode{}
	for _, c := range []struct {
		dev          bool
		remote, path string
		method       string
		want         int
	}{
		{false, "127.0.0.1:5000", "/", "GET", 200},
		{false, "[::1]:5000", "/console/live", "GET", 200},
		{false, "10.1.2.3:5000", "/", "GET", 403},
		{false, "10.1.2.3:5000", "/console/live", "GET", 403},
		{false, "10.1.2.3:5000", "/healthz", "GET", 200},
		{false, "10.1.2.3:5000", "/status", "GET", 200},
		{true, "10.1.2.3:5000", "/", "GET", 200},
		{true, "127.0.0.1:5000", "/", "POST", 405},
		{true, "127.0.0.1:5000", "/nothing", "GET", 404},
	} {
		h := NewHandler(n, Options{Console: n, Dev: c.dev})
		req := httptest.NewRequest(c.method, c.path, nil)
		req.RemoteAddr = c.remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("dev %v, %s %s from %s: got %d, want %d", c.dev, c.method, c.path, c.remote, rec.Code, c.want)
		}
	}
	// A custom gate replaces the default.
	h := NewHandler(n, Options{Console: n, Authorize: func(r *http.Request) bool { return r.Header.Get("X-Admin") == "yes" }})
	req := httptest.NewRequest("GET", "/", nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 403 {
		t.Errorf("custom gate without the header: %d, want 403", rec.Code)
	}
	req.Header.Set("X-Admin", "yes")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("custom gate with the header: %d, want 200", rec.Code)
	}
	// Without Options.Console there is no console.
	rec = httptest.NewRecorder()
	Handler(n).ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != 404 {
		t.Errorf("no console configured: GET / = %d, want 404", rec.Code)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendering (go test -update rewrites it after a deliberate change); got:\n%s", path, got)
	}
}
