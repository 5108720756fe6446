package consensus

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// applySeconds is the leader's proposal latency: from raft.Apply to the
// entry committed on a quorum and applied by the local state machine. Raft's
// own timings (raft_commitTime, raft_fsm_applyBatch, …) come through the
// go-metrics bridge the node layer installs.
var applySeconds = promauto.NewHistogram(prometheus.HistogramOpts{
	Namespace: "continuum", Subsystem: "raft", Name: "apply_seconds",
	Help:    "Time from proposing a command on the leader to its commit on a quorum and local apply.",
	Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
})

// publishedBarriers counts the barrier entries PublishCommit appended to send
// the commit index to the followers at once (publish.go).
var publishedBarriers = promauto.NewCounter(prometheus.CounterOpts{
	Namespace: "continuum", Subsystem: "raft", Name: "commit_publish_barriers_total",
	Help: "Barrier entries the leader appended so that followers learn a forwarded write's commit at once.",
})
