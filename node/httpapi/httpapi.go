package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/continuum-mail/continuum/proto/peerpb"
)

// Node is what the endpoints read.
type Node interface {
	Ready() (bool, string)
	Info() *peerpb.InfoResponse
}

// Handler returns the node's HTTP handler without the console.
func Handler(n Node) http.Handler { return NewHandler(n, Options{}) }

// NewHandler returns the node's HTTP handler: the health, status and
// metrics endpoints, and the console at / when opts.Console is set.
func NewHandler(n Node, opts Options) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, why := n.Ready()
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		w.Write([]byte(why + "\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(n.Info())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var v any
		json.Unmarshal(b, &v)
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(v)
	})
	mux.Handle("GET /metrics", promhttp.Handler())
	if opts.Console != nil {
		c := &console{c: opts.Console, flow: opts.Flow, audit: opts.Audit, authorize: opts.Authorize, log: opts.Logger, now: time.Now}
		if c.authorize == nil {
			c.authorize = DefaultAuthorize(opts.Dev)
		}
		if c.log == nil {
			c.log = slog.Default()
		}
		in := n.Info()
		c.self, c.site = in.Id, in.Site
		mux.HandleFunc("GET /{$}", c.gate(c.page))
		mux.HandleFunc("GET /console/live", c.gate(c.live))
	}
	if opts.Pprof {
		handlePprof(mux, opts)
	}
	return mux
}

// handlePprof registers net/http/pprof's handlers under /debug/pprof/
// (CPU profile: /debug/pprof/profile?seconds=N), each behind
// opts.Authorize (DefaultAuthorize(opts.Dev) when nil): a profile shows
// code paths and timing, not mail, but it costs CPU while it runs.
func handlePprof(mux *http.ServeMux, opts Options) {
	allow := opts.Authorize
	if allow == nil {
		allow = DefaultAuthorize(opts.Dev)
	}
	gate := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !allow(r) {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /debug/pprof/", gate(pprof.Index))
	mux.HandleFunc("GET /debug/pprof/cmdline", gate(pprof.Cmdline))
	mux.HandleFunc("GET /debug/pprof/profile", gate(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/symbol", gate(pprof.Symbol))
	mux.HandleFunc("GET /debug/pprof/trace", gate(pprof.Trace))
}
