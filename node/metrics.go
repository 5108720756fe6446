package node

import (
	"context"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	gometrics "github.com/hashicorp/go-metrics"
	gometricsprom "github.com/hashicorp/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/continuum-mail/continuum/node/admin"
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

	// The cluster as this node sees it (the console's figures), integrity
	// and disk: what the alert rules in deploy/prometheus need.
	faultTolerance, voters, healthyVoters                  *prometheus.Desc
	quarantined, checkMismatches, checkIndex, checkVerdict *prometheus.Desc
	scrubLast, scrubFailed, scrubBytes, diskFree, diskSize *prometheus.Desc
}

// checkVerdicts are the values of continuum_consistency_check_verdict's
// label: one series each, 1 for this node's verdict at its latest check.
var checkVerdicts = []string{"pending", "agrees", "disagrees", "no majority"}

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
		storeSize:     d("store_size_bytes", "Bytes on disk, by store (state, raft-log, snapshots).", "store"),

		faultTolerance:  d("cluster_fault_tolerance", "Voters the cluster can lose now and still commit, as this node sees it (continuum cluster status; 0 without a leader)."),
		voters:          d("cluster_voters", "Voters in the Raft configuration, as this node sees it."),
		healthyVoters:   d("cluster_healthy_voters", "Voters in contact with the leader and caught up, as this node sees it."),
		quarantined:     d("quarantined", "1 when this node has quarantined itself (damaged or disagreeing replica); it stops serving and exits."),
		checkMismatches: d("consistency_check_mismatches_total", "Consistency checks in which this node saw replicas disagree (itself or others)."),
		checkIndex:      d("consistency_check_index", "Log index of the latest consistency check this node took part in (0: none yet)."),
		checkVerdict:    d("consistency_check_verdict", "1 for this node's verdict at its latest consistency check.", "verdict"),
		scrubLast:       d("scrub_last_pass_timestamp_seconds", "When this node's last scrub pass finished (unix seconds; 0: none yet)."),
		scrubFailed:     d("scrub_last_pass_failed", "1 when this node's last scrub pass found a problem."),
		scrubBytes:      d("scrub_last_pass_bytes", "Bytes read by this node's last scrub pass."),
		diskFree:        d("disk_free_bytes", "Bytes free for the node on the file system of its data directory."),
		diskSize:        d("disk_size_bytes", "Size of the file system of the node's data directory."),
	}
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.applied, c.commit, c.lag, c.term, c.isLeader, c.leaderless, c.leaderChanges, c.imapSessions, c.storeSize,
		c.faultTolerance, c.voters, c.healthyVoters, c.quarantined, c.checkMismatches, c.checkIndex, c.checkVerdict,
		c.scrubLast, c.scrubFailed, c.scrubBytes, c.diskFree, c.diskSize} {
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
	for _, store := range []string{"state", "raft-log", "snapshots"} {
		g(c.storeSize, float64(dirSize(filepath.Join(n.cfg.DataDir, store))), store)
	}
	if free, size, err := diskSpace(n.cfg.DataDir); err == nil {
		g(c.diskFree, float64(free))
		g(c.diskSize, float64(size))
	}

	quarantined := 0.0
	if n.Quarantined() != "" {
		quarantined = 1
	}
	g(c.quarantined, quarantined)
	n.integ.mu.Lock()
	mismatches, scrubDone, scrubBytes, scrubErr := n.integ.mismatches, n.integ.scrubDone, n.integ.scrubBytes, n.integ.scrubErr
	var checkIndex uint64
	verdict := ""
	if len(n.integ.checks) > 0 {
		checkIndex, verdict = n.integ.checks[0].Index, n.integ.checks[0].Verdict
	}
	n.integ.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.checkMismatches, prometheus.CounterValue, float64(mismatches))
	g(c.checkIndex, float64(checkIndex))
	for _, v := range checkVerdicts {
		x := 0.0
		if v == verdict {
			x = 1
		}
		g(c.checkVerdict, x, v)
	}
	last := 0.0
	if !scrubDone.IsZero() {
		last = float64(scrubDone.UnixMilli()) / 1000
	}
	g(c.scrubLast, last)
	failed := 0.0
	if scrubErr != "" {
		failed = 1
	}
	g(c.scrubFailed, failed)
	g(c.scrubBytes, float64(scrubBytes))

	// The cluster view asks every member (cached, bounded): a node that
	// cannot form one exports no fault tolerance rather than a guess.
	ctx, cancel := context.WithTimeout(n.ctx, 3*time.Second)
	defer cancel()
	if st, err := n.ClusterStatus(ctx); err == nil {
		voters, healthy := 0, 0
		for _, ns := range st.Nodes {
			if ns.Role == "voter" {
				voters++
				if ns.Healthy {
					healthy++
				}
			}
		}
		g(c.faultTolerance, float64(admin.FaultTolerance(st)))
		g(c.voters, float64(voters))
		g(c.healthyVoters, float64(healthy))
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
