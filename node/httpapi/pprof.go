package httpapi

import (
	"net/http"
	"net/http/pprof"
)

// handlePprof adds Go's runtime profiles under /debug/pprof/ (index, heap,
// allocs, goroutine, profile, trace, …: net/http/pprof's handlers behind
// a gate; the package's init also registers them on http.DefaultServeMux,
// which no listener of the node serves). They are for the operator only:
// opts.Authorize when the node sets one, otherwise loopback clients only —
// also in dev mode, unlike the console: a CPU profile or trace costs the
// node CPU while it runs.
func handlePprof(mux *http.ServeMux, opts Options) {
	allow := opts.Authorize
	if allow == nil {
		allow = DefaultAuthorize(false)
	}
	gate := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !allow(r) {
				http.Error(w, "profiles are served to the node's own loopback only (for example through ssh -L)", http.StatusForbidden)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			h(w, r)
		}
	}
	mux.HandleFunc("GET /debug/pprof/", gate(pprof.Index)) // also heap, allocs, goroutine, block, mutex, threadcreate
	mux.HandleFunc("GET /debug/pprof/cmdline", gate(pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/profile", gate(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", gate(pprof.Symbol))
	mux.HandleFunc("GET /debug/pprof/trace", gate(pprof.Trace))
}
