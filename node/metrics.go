package node

import (
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gometricsprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics. hashicorp/raft and memberlist emit through the process-wide
// go-metrics registry; bridgeHashicorpMetrics sends it to Prometheus once per
// process (names: continuum_raft_commitTime, continuum_raft_fsm_applyBatch,
// continuum_raft_state_leader, …). Each node adds a collector of its own
// figures, labelled node=<id> so that several nodes in one test process do
// not collide, and removes it on Close.

var bridgeOnce sync.Once

func bridgeHashicorpMetrics(log *slog.Logger) {
	bridgeOnce.Do(func() {
		sink, err := gometricsprom.NewPrometheusSinkFrom(gometricsprom.PrometheusOpts{
			Expiration: 5 * time.Minute,
			Registerer: prometheus.DefaultRegisterer,
		})
		if err != nil {
			log.Warn("raft metrics not bridged to prometheus", "err", err)
			return
		}
		cfg := gometrics.DefaultConfig("continuum")
		cfg.EnableHostname = false
		cfg.EnableRuntimeMetrics = false // client_golang's Go collector has them
		if _, err := gometrics.NewGlobal(cfg, sink); err != nil {
			log.Warn("raft metrics not bridged to prometheus", "err", err)
		}
	})
}

// nodeCollector reads a node's figures at scrape time.
type nodeCollector struct {
	n *Node

	applied, commit, lag, term, isLeader, leaderless, leaderChanges, imapSessions, storeSize *prometheus.Desc
	pebbleMemory                                                                             *prometheus.Desc

	held, vaulted, due, nextExpiry, holds, policies                                 *prometheus.Desc
	indexBytes, indexMessages, indexRemoved, indexSeconds, indexMailBytes, indexLag *prometheus.Desc
}

func newNodeCollector(n *Node) *nodeCollector {
	l := prometheus.Labels{"node": n.cfg.ID}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("continuum_"+name, help, labels, l)
	}
	return &nodeCollector{
		n:             n,
		applied:       d("raft_applied_index", "Last log index applied by the state machine."),
		commit:        d("raft_commit_index", "Commit index known to this node."),
		lag:           d("raft_apply_lag", "Commit index minus applied index (entries)."),
		term:          d("raft_term", "Current Raft term."),
		isLeader:      d("raft_is_leader", "1 when this node is the leader."),
		leaderless:    d("raft_leaderless_seconds", "How long this node has had no known leader (0 with one)."),
		leaderChanges: d("raft_leader_changes_total", "Leader changes observed by this node."),
		imapSessions:  d("imap_sessions", "Open IMAP sessions."),
		storeSize:     d("store_size_bytes", "Bytes on disk, by store (state, raft-log, snapshots, index).", "store"),
		pebbleMemory:  d("pebble_memory_bytes", "Bytes Pebble holds in memory, by store (state, raft-log, index) and kind (cache: block cache; memtables: memtables and queued large batches). Outside Go's heap but for those batches.", "store", "kind"),

		held:           d("archive_held_messages", "Messages (live and vaulted) of users under legal hold."),
		vaulted:        d("archive_vaulted_messages", "Expunged messages kept by hold or retention."),
		due:            d("retention_due_messages", "Messages the next retention run would remove."),
		nextExpiry:     d("retention_next_expiry_timestamp_seconds", "Earliest moment a kept message falls due (0: none)."),
		holds:          d("archive_holds", "Legal holds in place."),
		policies:       d("retention_policies", "Retention policies set."),
		indexBytes:     d("search_index_bytes", "Bytes on disk of the full-text index."),
		indexMessages:  d("search_indexed_messages_total", "Messages added to the full-text index since start."),
		indexRemoved:   d("search_removed_messages_total", "Messages removed from the full-text index since start."),
		indexSeconds:   d("search_index_seconds_total", "Time spent indexing messages (text extraction and index writes) since start."),
		indexMailBytes: d("search_indexed_mail_bytes_total", "Raw bytes of the messages indexed since start."),
		indexLag:       d("search_index_lag", "Applied index of the state minus the last index the full-text index fully processed (entries)."),
	}
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.applied, c.commit, c.lag, c.term, c.isLeader, c.leaderless, c.leaderChanges, c.imapSessions, c.storeSize, c.pebbleMemory,
		c.held, c.vaulted, c.due, c.nextExpiry, c.holds, c.policies,
		c.indexBytes, c.indexMessages, c.indexRemoved, c.indexSeconds, c.indexMailBytes, c.indexLag} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	applied, commit := n.fsm.AppliedIndex(), n.raft.CommitIndex()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	g(c.applied, float64(applied))
	g(c.commit, float64(commit))
	g(c.lag, float64(commit-min(commit, applied)))
	g(c.term, float64(n.raft.Term()))
	leader := 0.0
	if n.raft.IsLeader() {
		leader = 1
	}
	g(c.isLeader, leader)
	g(c.leaderless, n.raft.LeaderlessFor().Seconds())
	ch <- prometheus.MustNewConstMetric(c.leaderChanges, prometheus.CounterValue, float64(n.raft.LeaderChanges()))
	sessions := 0
	if f := n.imapSessions.Load(); f != nil {
		sessions = (*f)()
	}
	g(c.imapSessions, float64(sessions))
	for _, store := range []string{"state", "raft-log", "snapshots", "index"} {
		g(c.storeSize, float64(dirSize(filepath.Join(n.cfg.DataDir, store))), store)
	}
	pebbleMem := func(store string, mem func() (cache, memtables int64)) {
		cache, memtables := mem()
		g(c.pebbleMemory, float64(cache), store, "cache")
		g(c.pebbleMemory, float64(memtables), store, "memtables")
	}
	pebbleMem("state", n.db.Memory)
	pebbleMem("raft-log", n.raft.LogMemory)
	if n.index != nil {
		pebbleMem("index", n.index.Memory)
	}
	if sum, err := n.archiveSummary(); err == nil {
		g(c.held, float64(sum.Held))
		g(c.vaulted, float64(sum.Vaulted))
		g(c.due, float64(sum.Due))
		g(c.nextExpiry, nextExpiry(sum))
		g(c.holds, float64(len(sum.Holds)))
		g(c.policies, float64(len(sum.Policies)))
	}
	if n.index != nil {
		st := n.index.Stats()
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
		}
		g(c.indexBytes, float64(st.DiskBytes))
		counter(c.indexMessages, float64(st.Indexed))
		counter(c.indexRemoved, float64(st.Removed))
		counter(c.indexSeconds, st.IndexSeconds)
		counter(c.indexMailBytes, float64(st.IndexedBytes))
		g(c.indexLag, float64(applied-min(applied, st.AppliedIndex)))
	}
}

// dirSize sums the sizes of the regular files under dir.
func dirSize(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// SetIMAPSessions installs the function the continuum_imap_sessions gauge
// reads (the IMAP server's count of open sessions).
func (n *Node) SetIMAPSessions(f func() int) { n.imapSessions.Store(&f) }
