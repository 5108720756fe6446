// Package node wires one cluster member together and owns its lifecycle:
// New opens the stores and starts Raft, gossip and every listener; Run
// blocks until the context ends; Close stops everything in reverse order.
// It holds no business logic: that lives in node/mail, the protocols in
// node/smtpd and node/imapd, Raft in node/consensus.
//
// Listeners: the peer gRPC port (node to node: mutual TLS with node
// certificates; also the two admin calls a node forwards to the leader,
// from members only), the admin API on its own listener (admin
// certificates), Raft (node/consensus), gossip, HTTP, and SMTP/LMTP/IMAP
// with STARTTLS plus implicit-TLS smtps/imaps (secure.go, protocols.go).
// Without TLS material a node runs only with insecure-dev.
//
// Goroutines owned here: the join loop, the leader's promotion loop, and
// one Serve goroutine per listener; Close stops all of them.
package node
