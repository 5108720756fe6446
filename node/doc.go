// Package node wires one cluster member together and owns its lifecycle:
// New opens the stores and starts Raft, gossip and every listener; Run
// blocks until the context ends; Close stops everything in reverse order.
// It holds no business logic: that lives in node/mail, the protocols in
// node/smtpd and node/imapd, Raft in node/consensus.
//
// The join loop also forms a new cluster for --bootstrap-expect N
// (bootstrapExpect): once gossip shows the N first nodes and none of them
// has a cluster running yet, each bootstraps the same N-voter configuration.
//
// Goroutines owned here: the join loop, the leader's promotion loop, and
// one Serve goroutine per listener; Close stops all of them.
package node
