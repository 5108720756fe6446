package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestPprof: /debug/pprof/ exists only with Options.Pprof, and answers
// only the clients the gate lets in (loopback unless Dev).
func TestPprof(t *testing.T) {
	for _, c := range []struct {
		name        string
		opts        Options
		remote      string
		want        int
		wantProfile bool
	}{
		{"off", Options{}, "127.0.0.1:4000", http.StatusNotFound, false},
		{"on, loopback", Options{Pprof: true}, "127.0.0.1:4000", http.StatusOK, true},
		{"on, remote", Options{Pprof: true}, "192.0.2.7:4000", http.StatusForbidden, false},
		{"on, remote, dev", Options{Pprof: true, Dev: true}, "192.0.2.7:4000", http.StatusOK, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := NewHandler(fakeNode{}, c.opts)
			req := httptest.NewRequest("GET", "/debug/pprof/", nil)
			req.RemoteAddr = c.remote
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != c.want {
				t.Fatalf("GET /debug/pprof/ from %s: %d, want %d", c.remote, rec.Code, c.want)
			}
			if got := rec.Code == http.StatusOK && strings.Contains(rec.Body.String(), "goroutine"); got != c.wantProfile {
				t.Fatalf("profile index served: %v, want %v", got, c.wantProfile)
			}
		})
	}
}
