// Package propose is the one path a write takes to the Raft log, and the
// one path a linearizable read takes to the leader's commit index.
//
// Propose, on any node:
//
//  1. bounds the whole write by Config.Timeout (apply-timeout);
//  2. encodes the command once, unstamped (raftfsm.Encode);
//  3. finds the leader (waiting up to Config.LeaderWait for one);
//  4. on the leader, proposes locally (Local); on a follower, forwards the
//     encoded bytes to the leader (Forwarder.Forward, node/peer's Forward
//     RPC, whose handler calls Local there);
//  5. retries only refusals that prove nothing was proposed (not the
//     leader), up to five times with a growing pause; an ordered proposal
//     (consensus.WithEnqueued) is proposed here or not at all: it is never
//     forwarded nor retried, and fails with ErrNotLeader on a follower;
//  6. with AppliedHere, waits until this node has applied the entry, so
//     the caller can read its own write;
//  7. returns the state machine's Result and the entry's index.
//
// Local, on the leader only: checks the bytes without decoding them
// (raftfsm.CheckUnstamped), stamps the log time (raftfsm.Stamp: the bytes
// are those the leader would have encoded itself), proposes them
// (consensus.Apply) and unwraps the FSM's response: a Result, or
// ErrRejected when the state machine refused the entry as a whole.
//
// Errors: consensus's (ErrNoLeader, ErrNotLeader: nothing proposed;
// ErrStorageFull; ErrUnknownOutcome: it may have been), ErrRejected, and
// for AppliedHere an ErrUnknownOutcome that says the entry committed but
// is not applied here yet. node/mail maps them to its own.
//
// Sync is the read side: the leader's commit index confirmed by a quorum
// (locally, or the leader's ReadIndex RPC), then a wait until this node
// has applied it. Asking for the read index changes nothing, so any failed
// ask is retried like a refused proposal (a new leader not answering yet,
// or its gRPC address not yet gossiped here).
//
// Who uses it: node/mail for every write and Sync, node's consistency
// check, node/peer's Forward handler (Local), node's admin forwarding
// (WaitLeader). Goroutines: none.
package propose
