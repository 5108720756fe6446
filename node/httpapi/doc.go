// Package httpapi serves a node's HTTP endpoints: /healthz (the process is
// alive), /readyz (it has a leader and has caught up: route traffic here),
// /status (its view, JSON) and /metrics (Prometheus).
package httpapi
