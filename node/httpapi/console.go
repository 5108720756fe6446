package httpapi

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// The operator's console: GET / renders the whole page, GET /console/live
// the part that changes (the page's script swaps it in every
// RefreshInterval). Everything is server-rendered from embedded files: no
// build step, no external asset, no write.

// RefreshInterval is how often the page fetches its live part.
const RefreshInterval = 2 * time.Second

// StatusTimeout bounds the cluster view behind one refresh. The admin
// cluster status gives each node 2 s to answer (node/admin), so a stopped
// node is reported unreachable within that.
const StatusTimeout = 3 * time.Second

// RefreshTimeout is how long the page waits for one refresh before it
// abandons it and says the node does not answer: the cluster view's bound
// and a second for rendering and the network. The page refreshes on a
// fixed cadence, start to start, so a slow answer does not stretch the
// interval between two views.
const RefreshTimeout = StatusTimeout + time.Second

// HealthBound is how long after a node stops answering its tile turns
// unhealthy on an open page, at most: the cluster view's cache (1 s, node
// package), one refresh interval, and the 2 s per-node deadline of the
// cluster status. (A node that still answers but has lost its leader turns
// unhealthy once its last contact passes node/admin's 10 s.)
const HealthBound = time.Second + RefreshInterval + 2*time.Second

// Cluster is what the console reads from its node.
type Cluster interface {
	// ClusterStatus is the cluster view `continuum cluster status` shows:
	// every member of the Raft configuration, asked with a short deadline.
	ClusterStatus(ctx context.Context) (*adminpb.ClusterStatusResponse, error)
	// StoreStats is this node's store: sizes on disk and content counts.
	StoreStats() StoreStats
}

// StoreStats describes this node's replica.
type StoreStats struct {
	// Sizes on disk by store ("state", "raft-log", "snapshots").
	Sizes []StoreSize
	// Content counts from the local replica (the same on every node that
	// has applied the same index).
	AppliedIndex                  uint64
	Domains, Users, Mailboxes     int
	Messages                      uint64
	MessageBytes                  uint64
	DiskFreeBytes, DiskTotalBytes uint64
	Err                           string // counting failed: why
	CountedAt                     time.Time
}

// StoreSize is one store's bytes on disk.
type StoreSize struct {
	Name  string
	Bytes int64
}

// AuditEntry is one recent admin action.
type AuditEntry struct {
	Time                          time.Time
	Actor, Action, Target, Result string
}

// AuditSource lists recent admin actions, newest first.
//
// PLACEHOLDER: the audit log is being built in a parallel branch
// ([audit]). Until a node sets Options.Audit, the console leaves the
// "Recent admin actions" section out entirely. Once it lands, the node
// passes an adapter over it here; nothing else changes.
type AuditSource interface {
	Recent(ctx context.Context, n int) ([]AuditEntry, error)
}

// Options configure the HTTP handler beyond the health endpoints.
type Options struct {
	// Console serves the operator's console at / when set.
	Console Cluster
	// Flow is this node's mail-flow ring (nil: the chart stays empty).
	Flow *Flow
	// Audit, when set, adds the recent admin actions to the console.
	Audit AuditSource
	// Authorize decides who may see the console; nil takes
	// DefaultAuthorize(Dev). /healthz, /readyz, /status and /metrics stay
	// open (load balancers and Prometheus read them).
	Authorize func(*http.Request) bool
	// Dev: the node runs in `continuum dev` mode.
	Dev    bool
	Logger *slog.Logger
}

// DefaultAuthorize is the console's gate until admin client certificates
// exist on the HTTP port: in dev mode everyone on the network may look;
// otherwise only clients on the node's own loopback (an operator on the
// machine, or through `ssh -L`). When the admin-certificate work lands,
// the node passes an Authorize that accepts a request whose TLS peer
// certificate is a valid admin certificate of the cluster CA (and keeps
// loopback in dev), and this default stays as the fallback for dev.
func DefaultAuthorize(dev bool) func(*http.Request) bool {
	return func(r *http.Request) bool {
		if dev {
			return true
		}
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return false
		}
		ip := net.ParseIP(host)
		return ip != nil && ip.IsLoopback()
	}
}

//go:embed console.html console.css console.js
var consoleFiles embed.FS

var consoleTmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"bytes":  humanBytes,
	"ago":    ago,
	"ms":     millis,
	"shortd": func(s string) string { return s[:min(len(s), 12)] },
}).ParseFS(consoleFiles, "console.html", "console.css", "console.js"))

type console struct {
	c         Cluster
	flow      *Flow
	audit     AuditSource
	authorize func(*http.Request) bool
	log       *slog.Logger
	self      string
	site      string
	now       func() time.Time
}

func (c *console) gate(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.authorize(r) {
			http.Error(w, "the console needs the admin credential: outside dev mode, open it from the node itself (for example through ssh -L)", http.StatusForbidden)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		h(w, r)
	}
}

func (c *console) page(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "page")
}

func (c *console) live(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, "live")
}

func (c *console) render(w http.ResponseWriter, r *http.Request, name string) {
	v := c.view(r.Context())
	var buf bytes.Buffer
	if err := consoleTmpl.ExecuteTemplate(&buf, name, v); err != nil {
		c.log.Error("console: render", "err", err)
		http.Error(w, "console: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(buf.Bytes())
}

// view is everything the templates show.
type view struct {
	Self, SelfSite string
	Now            time.Time
	RefreshMs      int64
	TimeoutMs      int64 // the page abandons a refresh after this

	Leader         string
	Term           uint64
	FaultTolerance int
	Voters         int
	HealthyVoters  int
	Quorum         int
	Warnings       []string
	StatusErr      string

	Sites []siteView
	Nodes []nodeView // every node, by ID (the integrity table)
	Flow  flowView
	Store StoreStats

	AuditOn  bool
	Audit    []AuditEntry
	AuditErr string
}

type siteView struct {
	Name   string
	Nodes  []nodeView
	Voters int
	// LossOK: the healthy voters of the other sites still form a quorum,
	// so losing this whole site leaves a cluster that commits.
	LossOK bool
}

type nodeView struct {
	ID, Site, Role, State, Gossip string
	Healthy, Leader, Self         bool
	Health                        string // healthy, unhealthy, unreachable, quarantined
	Applied, Commit, Lag          uint64
	LastContactMs                 int64
	CheckIndex                    uint64
	CheckVerdict, CheckDigest     string
	ScrubDone                     time.Time
	ScrubError, Quarantine        string
}

func (c *console) view(ctx context.Context) *view {
	now := c.now()
	v := &view{Self: c.self, SelfSite: c.site, Now: now, RefreshMs: RefreshInterval.Milliseconds(), TimeoutMs: RefreshTimeout.Milliseconds()}
	ctx, cancel := context.WithTimeout(ctx, StatusTimeout)
	defer cancel()
	st, err := c.c.ClusterStatus(ctx)
	if err != nil {
		v.StatusErr = err.Error()
		st = &adminpb.ClusterStatusResponse{}
	}
	v.Leader, v.Term, v.Warnings = st.Leader, st.Term, st.Warnings
	// Applied lag is against the leader's state machine, as `continuum
	// dev` judges "caught up" (admin.FullyReady): the commit index runs
	// ahead of every applied index by Raft's own entries (a new term's
	// no-op, configuration changes), which no state machine applies.
	var leaderApplied uint64
	for _, n := range st.Nodes {
		if n.State == "leader" {
			leaderApplied = n.AppliedIndex
		}
	}
	bySite := map[string]*siteView{}
	for _, n := range st.Nodes {
		nv := nodeView{
			ID: n.Id, Site: n.Site, Role: n.Role, State: n.State, Gossip: n.Gossip,
			Healthy: n.Healthy, Leader: n.Id == st.Leader && n.State == "leader", Self: n.Id == c.self,
			Applied: n.AppliedIndex, Commit: n.CommitIndex, LastContactMs: n.LastContactMs,
			CheckIndex: n.CheckIndex, CheckVerdict: n.CheckVerdict, CheckDigest: n.CheckDigest,
			ScrubError: n.ScrubError, Quarantine: n.Quarantine,
		}
		if n.ScrubDoneUnixMs > 0 {
			nv.ScrubDone = time.UnixMilli(n.ScrubDoneUnixMs)
		}
		if leaderApplied > n.AppliedIndex && n.State != "unreachable" {
			nv.Lag = leaderApplied - n.AppliedIndex
		}
		switch {
		case n.Quarantine != "":
			nv.Health = "quarantined"
		case n.State == "unreachable":
			nv.Health = "unreachable"
		case n.Healthy:
			nv.Health = "healthy"
		default:
			nv.Health = "unhealthy"
		}
		if nv.Site == "" {
			nv.Site = "?"
		}
		s := bySite[nv.Site]
		if s == nil {
			s = &siteView{Name: nv.Site}
			bySite[nv.Site] = s
		}
		s.Nodes = append(s.Nodes, nv)
		v.Nodes = append(v.Nodes, nv)
		if n.Role == "voter" {
			v.Voters++
			s.Voters++
			if n.Healthy {
				v.HealthyVoters++
			}
		}
	}
	v.Quorum = v.Voters/2 + 1
	v.FaultTolerance = admin.FaultTolerance(st) // what `continuum cluster status` prints
	for _, s := range bySite {
		healthyElsewhere := 0
		for _, n := range v.Nodes {
			if n.Site != s.Name && n.Role == "voter" && n.Healthy {
				healthyElsewhere++
			}
		}
		s.LossOK = v.Voters > 0 && healthyElsewhere >= v.Quorum
		v.Sites = append(v.Sites, *s)
	}
	sort.Slice(v.Sites, func(i, j int) bool { return v.Sites[i].Name < v.Sites[j].Name })
	v.Flow = newFlowView(c.flow.Last())
	v.Store = c.c.StoreStats()
	if c.audit != nil {
		v.AuditOn = true
		v.Audit, err = c.audit.Recent(ctx, 10)
		if err != nil {
			v.AuditErr = err.Error()
		}
	}
	return v
}

// flowView is the mail-flow chart, laid out for the template.
type flowView struct {
	Bars                        []flowBar
	Max                         uint64
	Accepted, Deferred, Refused uint64 // the last hour
	LastAccepted, LastDeferred  uint64 // the current minute
	LastRefused                 uint64
	W, H, PlotH                 int
}

type flowBar struct {
	X, Y, W, H int
	Class      string
	Title      string
}

const (
	chartW    = 600
	chartPlot = 110 // plot height; the axis labels sit below
	chartH    = 130
)

func newFlowView(ms []FlowMinute) flowView {
	fv := flowView{W: chartW, H: chartH, PlotH: chartPlot}
	for _, m := range ms {
		fv.Accepted += m.Accepted
		fv.Deferred += m.Deferred
		fv.Refused += m.Refused
		fv.Max = max(fv.Max, m.Accepted+m.Deferred+m.Refused)
	}
	if len(ms) > 0 {
		last := ms[len(ms)-1]
		fv.LastAccepted, fv.LastDeferred, fv.LastRefused = last.Accepted, last.Deferred, last.Refused
	}
	fv.Max = niceCeil(fv.Max)
	colW := chartW / max(1, len(ms))
	for i, m := range ms {
		y := chartPlot
		t := time.Unix(m.Start, 0).UTC().Format("15:04")
		for _, part := range []struct {
			n     uint64
			class string
		}{{m.Accepted, "accepted"}, {m.Deferred, "deferred"}, {m.Refused, "refused"}} {
			if part.n == 0 {
				continue
			}
			h := int(part.n * chartPlot / fv.Max)
			h = max(h, 1)
			y -= h
			fv.Bars = append(fv.Bars, flowBar{X: i * colW, Y: y, W: colW - 1, H: h, Class: part.class,
				Title: fmt.Sprintf("%s UTC: %d %s", t, part.n, part.class)})
		}
	}
	return fv
}

// niceCeil rounds n up to 1, 2 or 5 times a power of ten (at least 5), so
// the chart's scale reads easily.
func niceCeil(n uint64) uint64 {
	for p := uint64(1); ; p *= 10 {
		for _, m := range []uint64{1, 2, 5} {
			if m*p >= n && m*p >= 5 {
				return m * p
			}
		}
	}
}

func humanBytes(n any) string {
	var b float64
	switch x := n.(type) {
	case int64:
		b = float64(x)
	case uint64:
		b = float64(x)
	case int:
		b = float64(x)
	}
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f B", b)
	}
	return fmt.Sprintf("%.1f %s", b, units[i])
}

// millis reads a duration in milliseconds: "40 ms", "12.0 s".
func millis(ms int64) string {
	if ms < 1000 {
		return fmt.Sprintf("%d ms", ms)
	}
	return fmt.Sprintf("%.1f s", float64(ms)/1000)
}

// ago says how long ago t was, roughly.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}
