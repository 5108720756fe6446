package consensus

import (
	"time"

	"github.com/hashicorp/raft"
)

// Publishing the commit index at once (docs/notes/read-path.md).
//
// A write proposed at a follower is forwarded to the leader, which answers
// once the entry is committed and applied there; the follower then waits
// for its own apply of that index before it answers its client, so the
// client reads its own write at that node. But hashicorp/raft v1.8 tells a
// follower the new commit index only with the next AppendEntries: the next
// new entry, or the replication loop's idle tick (CommitTimeout, random in
// [Commit, 2×Commit): 10–20 ms in the local profile; heartbeats carry no
// commit index). A lone forwarded write thus waited 10–20 ms on the
// follower for nothing (STORE p50 19 ms at a follower against 2 ms at the
// leader).
//
// PublishCommit makes the leader append a barrier entry (raft.Barrier: a
// log entry the FSM never sees; Waiter already counts it as applied), which
// triggers an AppendEntries to every follower at once, carrying the commit
// index as it is then, which covers every write committed so far. Requests
// coalesce: one goroutine appends barriers, and kicks that arrive while
// it is appending make one more, not one each. Nothing waits for the
// barrier: it is a hint, and the commit-timeout tick remains the fallback.
// Read-your-writes is unchanged: the follower still waits until it has
// applied the write's index; it only learns sooner that it may.

// publishTimeout bounds the enqueueing of one barrier.
const publishTimeout = time.Second

// PublishCommit asks the leader to send its commit index to the followers
// now rather than at the next entry or commit-timeout tick. It never
// blocks; on a follower it does nothing.
func (n *Node) PublishCommit() {
	select {
	case n.publish <- struct{}{}:
	default: // one is pending already: it will carry this commit too
	}
}

// publishLoop appends a barrier per (coalesced) PublishCommit while leader.
func (n *Node) publishLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.done:
			return
		case <-n.publish:
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		// Barrier only enqueues here; its future is not waited for. An
		// error (shutdown, lost leadership, a full queue) leaves the
		// commit-timeout tick to publish the index.
		if f := n.raft.Barrier(publishTimeout); f != nil {
			publishedBarriers.Inc()
			n.barriers.Add(1)
		}
	}
}

// Barriers is how many barrier entries this node's PublishCommit appended
// while it led: log entries that carry no command.
func (n *Node) Barriers() uint64 { return n.barriers.Load() }
