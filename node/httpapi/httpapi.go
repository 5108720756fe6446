package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
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
	handlePprof(mux, opts)
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
	return mux
}
