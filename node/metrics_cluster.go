package node

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/continuum-mail/continuum/node/admin"
)

// clusterCollector exports, labelled node=<id> like nodeCollector, the
// figures the console shows and the alert rules in deploy/prometheus need:
// the cluster as this node sees it, integrity, and the data disk. It is
// registered beside nodeCollector and removed on Close.
type clusterCollector struct {
	n *Node

	faultTolerance, voters, healthyVoters                  *prometheus.Desc
	quarantined, checkMismatches, checkIndex, checkVerdict *prometheus.Desc
	scrubLast, scrubFailed, scrubBytes, diskFree, diskSize *prometheus.Desc
}

// checkVerdicts are the values of continuum_consistency_check_verdict's
// label: one series each, 1 for this node's verdict at its latest check.
var checkVerdicts = []string{"pending", "agrees", "disagrees", "no majority"}

func newClusterCollector(n *Node) *clusterCollector {
	l := prometheus.Labels{"node": n.cfg.ID}
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("continuum_"+name, help, labels, l)
	}
	return &clusterCollector{
		n:               n,
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

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.faultTolerance, c.voters, c.healthyVoters, c.quarantined, c.checkMismatches,
		c.checkIndex, c.checkVerdict, c.scrubLast, c.scrubFailed, c.scrubBytes, c.diskFree, c.diskSize} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	bool01 := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	if free, size, err := diskSpace(n.cfg.DataDir); err == nil {
		g(c.diskFree, float64(free))
		g(c.diskSize, float64(size))
	}
	g(c.quarantined, bool01(n.Quarantined() != ""))

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
		g(c.checkVerdict, bool01(v == verdict), v)
	}
	last := 0.0
	if !scrubDone.IsZero() {
		last = float64(scrubDone.UnixMilli()) / 1000
	}
	g(c.scrubLast, last)
	g(c.scrubFailed, bool01(scrubErr != ""))
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
