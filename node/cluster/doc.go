// Package cluster owns the membership policy: who is in the Raft
// configuration and with what vote. Every decision that changes the
// configuration is made here; node/consensus provides the mechanisms
// (configuration calls, the hold of a fresh node's transport), node/peer
// carries the Join RPC, node/admin carries the operator's requests, and
// package node only wires them together.
//
// The decisions (DESIGN.md has the invariants and why):
//
//   - Bootstrap: a node with --bootstrap-expect N forms the first
//     configuration with the N first nodes, all voters (bootstrapExpect).
//   - Join: a node not in the configuration asks a live member in turn
//     until the leader admits it (joinLoop, askToJoin); the leader's side
//     is Admit, which adds it as a non-voter. The gossip join comes
//     first, through Config.Join: --join plus, for a restarted node, the
//     members it remembers (node/membership's peers file); it ends as soon
//     as one answers or another member has joined this node.
//   - The wiped-voter rule: a fresh node whose ID is a voter is removed and
//     re-added as a non-voter (Admit).
//   - Promotion: the leader makes a non-voter whose role is "voter" a voter
//     once it has applied to within 64 entries of the commit index.
//   - Autopilot: the leader removes one voter dead (gossip and gRPC) for
//     longer than AutopilotDeadAfter, never below MinAutopilotVoters and
//     only while the healthy voters are a quorum of the smaller set.
//   - Transfer and removal: the operator's TransferLeader and Remove, and
//     HandOver on shutdown.
//
// API for the wiring (package node): New(Config), Start, Stop, Wait; for
// node/peer: Admit (peer.Admitter); for node/admin: TransferLeader, Remove
// and the errors ErrNotLeader, ErrUnknownNode, ErrRefused (admin's errors
// are these); for node/peer's client: ErrConflict, which Peers.Join must
// return when the callee refused a taken ID or address.
//
// The archive role (node/disaster.go, issue 20): Admit adds an archive
// replica as a non-voter like any node; promote never makes it a voter (it
// acts only on members whose gossip role is "voter", and an archive's
// data directory refuses to start under another role until an operator
// lifts it with `continuum node promote`); autopilot counts and removes
// only voters, so it never touches one. CheckIdentity refuses a node with
// Raft state from a cluster identity that a recovery superseded. Raft and gossip are reached through the Raft, Gossip and Peers
// interfaces, so the policy is tested without a network (cluster_test.go).
//
// Goroutines: the join loop (until this node is in the configuration) and
// the reconcile loop (once a second; acts while leading), both started by
// Start and ended by Stop; Wait waits for them.
package cluster
