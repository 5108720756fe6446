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
// integrity.go and rebuild.go, archive.go, console.go, metrics*.go,
// disaster.go and recover.go (archive replicas, the cluster identity,
// recovery from a lost majority).
//
// Listeners: the peer gRPC port (node to node: mutual TLS with node
// certificates; also the two admin calls a node forwards to the leader,
// from members only), the admin API on its own listener (admin
// certificates), Raft (node/consensus), gossip, HTTP, and SMTP/LMTP/IMAP
// with STARTTLS plus implicit-TLS smtps/imaps (secure.go, protocols.go).
// Without TLS material a node runs only with insecure-dev.
//
// Goroutines owned here: node/cluster's join and reconcile loops (started
// by New, stopped by Close after Raft), one Serve goroutine per listener,
// the disaster loop (disaster.go: the stale-identity check, the progress
// record, the recovery's audit entry), and the integrity goroutines (scrub loop,
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
// # Memory (memory.go; issue 19)
//
// A node's budget: 256 MiB above its idle resident size (idle: 60–80 MB),
// whatever the size of the messages (up to the 50 MiB SIZE), spent as:
//
//   - Pebble, outside Go's heap (malloc'd): the state database's block
//     cache, 32 MiB (storage.DefaultCacheSize), and its 4 MiB memtables;
//     the Raft log's 8 MiB cache and 4 MiB memtables; the full-text
//     index's 32 MiB cache (66b63e4) and 32 MiB memtables (node/search).
//     At most ≈ 150 MiB together when every cache is full and every
//     memtable is full with one more flushing (72 MiB of caches, 80 of
//     memtables).
//   - Go: the runtime's soft limit GoMemoryLimit (192 MiB, whole runtime,
//     set by `continuum serve` unless GOMEMLIMIT is given). What one big
//     message holds on its way: ≤ 4 chunks of 1 MiB on the proposer
//     (node/mail; the spooled message is a mapped file, each MiB dropped
//     from the resident set once compressed), one zstd window of 1 MiB per
//     encoder and decoder; Raft ≤ consensus.AppendBudget (16 MiB) per
//     AppendEntries RPC — per follower on the leader, on the follower
//     while it decodes and writes it — and per FSM batch; one stored chunk
//     per reader for FETCH and the indexer (storage.DB.OpenBlob).
//
// The budget does not grow with the number of messages: every cache is
// sized, and the per-message figures are bounded by chunk counts.
// docs/notes/large-messages.md has the measured figures.
//
// # Integrity (integrity.go, rebuild.go)
//
// A replica is compared, not trusted:
//
//   - Start-up: the state database and the Raft log each compare
//     themselves with the seal of their last clean shutdown (storage/seal.go,
//     storage/raftlog/seal.go); the log is read whole and every entry's CRC
//     checked. Damage refuses the start with the file and the remedy.
//   - Scrub: every block of every sstable of both databases, and every
//     value of the state (its blob files), is read and its checksum checked, first 1 s after start, then every scrub-interval
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
//
// # Disaster recovery (disaster.go, recover.go; issue 20)
//
// An archive replica (--role archive) is a permanent non-voter: its role
// is recorded in DataDir/identity.json at first start and enforced at
// every start; the leader's promotion policy (node/cluster) promotes only
// gossip role "voter"; mail.Options.ReadOnly makes it answer SMTP/LMTP
// 421 and serve IMAP read-only through the cut-off path, and refuse every
// proposal. `continuum recover` (RecoverPlan, offline) rewrites a stopped
// survivor's Raft configuration to itself alone (consensus.Recover), renews
// UIDVALIDITY, and gives the cluster a new identity (Identity.Cluster)
// that supersedes the old one. Started again, the node leads, records the
// recovery in the audit log and journal (ClusterRecovered) and takes mail.
// A node with Raft state whose identity a live member supersedes exits
// (ErrStaleCluster); the leader refuses its join (cluster.CheckIdentity).
// Every node records the leader's commit index in DataDir/progress.json
// every 2 s, so a recovery can tell how far the lost majority was ahead.
package node
