package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestPprofLoopbackOnly(t *testing.T) {
	h := NewHandler(fakeNode{}, Options{Dev: true})
	for _, tc := range []struct {
		remote string
		want   int
	}{
		{"127.0.0.1:5000", http.StatusOK},
		{"[::1]:5000", http.StatusOK},
		{"10.0.0.7:5000", http.StatusForbidden}, // also in dev mode
	} {
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1", "/debug/pprof/allocs"} {
			r := httptest.NewRequest("GET", path, nil)
			r.RemoteAddr = tc.remote
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.want {
				t.Errorf("GET %s from %s: %d, want %d", path, tc.remote, w.Code, tc.want)
			}
		}
	}
}
