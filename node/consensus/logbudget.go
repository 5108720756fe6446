package consensus

import (
	"time"

	"github.com/hashicorp/raft"
)

// Log budget. hashicorp/raft sizes the log in entries (SnapshotThreshold
// new entries trigger a snapshot; TrailingLogs entries stay behind it for
// slow followers), which suits small entries. A large message travels as
// 1 MiB BlobChunk entries (node/mail), so 10,240 trailing entries could
// hold 10 GB. watchLogSize keeps the log near LogBudget bytes instead: every
// logBudgetEvery it measures the log's disk use per entry and lowers both
// numbers (never below minLogEntries, never above the configured ones) so
// that trailing plus threshold entries fit the budget; it raises them back
// when entries are small again. Both are reloadable in raft v1.8.
const (
	// LogBudget is the Raft log's target size on disk.
	LogBudget      int64 = 1 << 30
	minLogEntries        = 256
	logBudgetEvery       = 10 * time.Second
)

// logLimits returns the trailing and threshold entry counts for a log of
// size bytes holding entries entries, within budget, capped by the base
// configuration.
func logLimits(size int64, entries uint64, budget int64, base raft.ReloadableConfig) (trailing, threshold uint64) {
	trailing, threshold = base.TrailingLogs, base.SnapshotThreshold
	if entries == 0 || size <= 0 {
		return trailing, threshold
	}
	avg := size / int64(entries)
	if avg <= 0 {
		return trailing, threshold
	}
	fit := uint64(budget/avg) / 2 // half behind the snapshot, half before the next
	return clampEntries(fit, trailing), clampEntries(fit, threshold)
}

func clampEntries(v, max uint64) uint64 {
	if v > max {
		return max
	}
	if v < minLogEntries {
		return min(minLogEntries, max)
	}
	return v
}

// watchLogSize adjusts TrailingLogs and SnapshotThreshold to the budget.
func (n *Node) watchLogSize(base raft.ReloadableConfig) {
	defer n.wg.Done()
	t := time.NewTicker(logBudgetEvery)
	defer t.Stop()
	cur := base
	for {
		select {
		case <-n.done:
			return
		case <-t.C:
		}
		first, _ := n.logs.FirstIndex()
		last, _ := n.logs.LastIndex()
		if last < first || last == 0 {
			continue
		}
		trailing, threshold := logLimits(n.logs.DiskSpace(), last-first+1, LogBudget, base)
		if !differs(trailing, cur.TrailingLogs) && !differs(threshold, cur.SnapshotThreshold) {
			continue
		}
		want := cur
		want.TrailingLogs, want.SnapshotThreshold = trailing, threshold
		if err := n.raft.ReloadConfig(want); err != nil {
			n.log.Warn("log budget: reload failed", "err", err)
			continue
		}
		n.log.Info("log budget: entry counts adjusted to the log's entry size", "trailing_logs", trailing, "snapshot_threshold", threshold, "budget_bytes", LogBudget)
		cur = want
	}
}

// differs reports a change of more than a tenth.
func differs(a, b uint64) bool {
	d := max(a, b) - min(a, b)
	return d*10 > max(a, b)
}
