// Package consensus owns a node's *raft.Raft (hashicorp/raft v1.8): the
// Pebble log and stable store (storage/raftlog), the file snapshot store, the
// TCP/mTLS transport, the configuration calls (bootstrap, add, remove,
// leadership transfer), and Apply. Which configuration changes to make is
// node/cluster's decision; which bytes to Apply is node/propose's.
//
// Apply is the only way a write enters the log. It runs on the leader only
// and never retries: ErrNotLeader and ErrNoLeader mean nothing was proposed;
// ErrUnknownOutcome means the entry may still commit, so the caller answers
// with a temporary failure and relies on dedupe to make the client's retry
// safe (docs/ARCHITECTURE.md §2). WithEnqueued tells a proposer when its
// entry has its place in the log's order, so it can propose the next one
// while the first is in flight and still keep them in order.
//
// VerifyLeader gives the read index: the commit index, confirmed by a
// quorum, and only once this leader has committed an entry of its own term
// (termReady): a node just elected may not yet know how far its
// predecessor committed, so its commit index alone could miss a write the
// old leader acknowledged.
//
// A node that starts with no Raft state and does not bootstrap holds its
// transport closed until the leader admits it (Fresh, Admit): a wiped voter
// must not come back as that voter with an empty log. Seed prepares a data
// directory restored from a backup. A new cluster forms with all its first
// voters at once (BootstrapWith, for --bootstrap-expect N: every one of the
// N bootstraps the same configuration). When to admit and whom to
// bootstrap with are node/cluster's decisions (node/cluster/DESIGN.md);
// DESIGN.md here explains the hold and the restore.
//
// Goroutines: Open starts an observer goroutine (leader changes, for the
// cut-off rule), the log-size watcher and the commit publisher (publish.go:
// after a forwarded write the leader sends its commit index to the
// followers at once); Close stops them and raft's own goroutines.
//
// Guards against known hashicorp/raft v1.8 issues: the log store is
// monotonic (#697, snapshot re-download loop); divergence after a partition
// (#695) is watched for by the fault suite comparing FSM digests.
package consensus
