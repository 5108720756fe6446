// Package node wires one cluster member together and owns its lifecycle:
// New opens the stores and starts Raft, gossip and every listener; Run
// blocks until the context ends; Close stops everything in reverse order.
// It holds no business logic: that lives in node/mail, the protocols in
// node/smtpd and node/imapd, Raft in node/consensus, the membership policy
// (bootstrap, join, promotion, autopilot, transfer, removal, the
// wiped-voter rule) in node/cluster.
//
// Files: node.go (Options, Node, New, Run), state.go (the stores, Raft and
// gossip), close.go (Close), status.go (accessors, Ready, Info, the admin
// adapter), ops.go (the admin adapter's operations, Restore), secure.go
// (gRPC listeners and their gates), protocols*.go (SMTP, LMTP, IMAP),
// integrity.go and rebuild.go, archive.go, console.go, metrics*.go.
//
// Listeners: the peer gRPC port (node to node: mutual TLS with node
// certificates; also the two admin calls a node forwards to the leader,
// from members only), the admin API on its own listener (admin
// certificates), Raft (node/consensus), gossip, HTTP, and SMTP/LMTP/IMAP
// with STARTTLS plus implicit-TLS smtps/imaps (secure.go, protocols.go).
// Without TLS material a node runs only with insecure-dev.
//
// Goroutines owned here: node/cluster's join and reconcile loops (started
// by New, stopped by Close after Raft), one Serve goroutine per listener, and the integrity goroutines (scrub loop,
// check schedule, one digest and its comparison at a time); Close stops
// all of them, the integrity ones before the stores close.
//
// # Full-text index
//
// DataDir/index is node/search's Pebble database: derived from this node's
// state, never replicated, digested or backed up. New opens it before the
// FSM; OnApply tells it which mailboxes changed (Notify never blocks); its
// own goroutine catches up with the state at start and after every batch;
// Close stops it after Raft and before the state database. node/mail uses
// it for SEARCH; `continuum reindex` (admin RPC) rebuilds it on a live node.
//
// # Integrity (integrity.go, rebuild.go)
//
// A replica is compared, not trusted:
//
//   - Start-up: the state database and the Raft log each compare
//     themselves with the seal of their last clean shutdown (storage/seal.go,
//     storage/raftlog/seal.go); the log is read whole and every entry's CRC
//     checked. Damage refuses the start with the file and the remedy.
//   - Scrub: every block of every sstable of both databases is read and its
//     checksum checked, first 1 s after start, then every scrub-interval
//     (default 6 h), at scrub-rate (default 32 MiB/s). A flipped bit is
//     found within 1 s + (state + log bytes) / scrub-rate of a start, and
//     within scrub-interval + that of happening on a running node.
//   - Damage met at run time (a scrub, a read, a compaction) never panics
//     and is never served: the read fails, and the node quarantines itself.
//   - Consistency check: the leader proposes a ConsistencyCheck entry every
//     consistency-check-interval (default 1 h) and on `continuum cluster
//     check`. Every replica digests its state as of exactly that index in
//     the background (consistency-check-rate, default 64 MiB/s), then reads
//     the other voters' digests (Peer.Info). Agreeing with any other voter
//     clears it; disagreeing with two or more voters that agree with each
//     other quarantines it; otherwise ("no majority") it is logged and
//     shown, and no one is quarantined, since no one can tell who is right.
//   - Quarantine: QUARANTINE is written in the data directory with the
//     reason, the node turns unready, stops in order and exits non-zero. It
//     refuses to start while QUARANTINE exists.
//   - Healing is one command, run by the operator on the stopped node:
//     `continuum node rebuild --data DIR` moves state, raft-log, snapshots,
//     index and QUARANTINE into DIR/damaged-TIME (or deletes them with
//     --discard). Started again with its --join, the node is re-admitted by
//     the leader as a non-voter (the wiped-voter rule), installs a snapshot,
//     and is promoted once caught up. Healing is not automatic: a node that
//     wiped itself on every damage it met could throw away the last good
//     copy when several sites are hurt at once; an operator decides.
package node
