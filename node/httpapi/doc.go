// Package httpapi serves a node's HTTP endpoints:
//
//	GET /healthz        the process is alive
//	GET /readyz         it has a leader and has caught up: route traffic here
//	GET /status         its view (peer InfoResponse as JSON)
//	GET /metrics        Prometheus (deploy/prometheus has the alert rules,
//	                    deploy/grafana the dashboard)
//	GET /               the operator's console (when Options.Console is set)
//	GET /console/live   the console's live part, which the page swaps in
//	GET /debug/pprof/   Go runtime profiles (heap, allocs, goroutine, CPU,
//	                    trace): loopback clients only, or Options.Authorize
//
// # The console
//
// One page on every node, server-rendered with html/template from files
// embedded in the binary (console.html, console.css, console.js): no build
// step, no external asset, no write of any kind. It shows:
//
//   - the leader and term, the fault tolerance (admin.FaultTolerance: what
//     `continuum cluster status` prints) and healthy voters against the
//     quorum, and the cluster status warnings;
//   - every site with its nodes as tiles: role, Raft state, health
//     (healthy, unhealthy, unreachable, quarantined), applied index and lag
//     behind the leader's applied index, last contact, gossip; and for each
//     site whether losing it all would stop writes;
//   - the mail flow at this node: accepted, deferred and refused per
//     minute over the last hour as an inline SVG chart, from Flow, an
//     in-memory ring fed where smtpd (after DATA, per LMTP recipient) and
//     imapd (APPEND) decide their replies; local to the node, not
//     replicated, empty after a restart;
//   - this node's store: bytes on disk per store, disk free, and the
//     replica's domains, users, mailboxes and messages;
//   - integrity: each node's latest consistency check (index, verdict,
//     digest), last scrub and its result, and any quarantine;
//   - recent admin actions, only when Options.Audit is set (a placeholder
//     for the audit log being built elsewhere: without a source the section
//     does not render at all).
//
// The cluster view is the admin API's ClusterStatus, computed by the node
// that serves the page (it asks every member with a 2 s deadline; the node
// caches it for 1 s). A script of a few lines fetches /console/live every
// RefreshInterval (2 s), counted from the start of one fetch to the start
// of the next, and swaps it in. A fetch that has not answered within
// RefreshTimeout (4 s) is abandoned: a node that accepts the connection
// but never answers must not freeze the page. When the serving node stops
// answering, or answers too late, the page says so in a red banner and
// greys out; it keeps refreshing and clears the banner once the node
// answers again. A node that stops answering turns unhealthy on an open
// page within HealthBound (5 s).
//
// # Who may look
//
// Options.Authorize gates / and /console/live (health, status and metrics
// stay open for load balancers and Prometheus). The default,
// DefaultAuthorize: everyone in dev mode, otherwise only loopback clients
// (an operator on the machine, or through ssh -L). When admin client
// certificates reach the HTTP port, the node passes an Authorize that
// accepts a request whose verified TLS client certificate is an admin
// certificate of the cluster CA; nothing else in this package changes.
package httpapi
