// Package raftfsm is Continuum's replicated state machine: it applies the
// commands of the Raft log (proto/commandpb) to the state database
// (storage). Every node applies every entry, so every node holds the same
// users, mailboxes, messages and numbers.
//
// # Determinism contract
//
// The state after applying a log prefix is a function of that prefix only.
// Every node, every binary of the same command version, every Raft batching
// of the same entries, and a snapshot restore followed by the rest of the log
// produce byte-identical databases (storage.DB.Digest). Therefore apply code:
//
//   - reads no clock: the only time is Command.time_unix_nano, stamped by
//     the leader, made monotone through meta/log-time (the max so far);
//   - reads no random source, no network, no environment and not the node's
//     identity; every ID, UID, UIDVALIDITY and MODSEQ comes from a counter
//     in the database;
//   - never lets map iteration order, goroutine scheduling or a cache's
//     contents reach the state (caches are exact views of the batch);
//   - validates with ASCII-only case folding (strings.ToLower depends on the
//     Go release's Unicode tables) and with limits that are constants;
//   - does per entry, not per Raft batch, everything that writes (dedupe
//     expiry runs for every command), because nodes batch differently;
//   - checks before it writes: a command that fails with a Result code leaves
//     no trace but the log time.
//
// An entry that does not decode (Decode returns ErrMalformed) is answered
// with an error, logged, and counted as applied: it can never be applied by
// any version. An operation this binary does not know (a newer node proposed
// it) is skipped if the proposer marked it skippable; otherwise the FSM calls
// Options.OnFatal, does not advance past it, and refuses every later entry:
// guessing would fork the replicas. A storage error is fatal the same way.
// Domain failures (exists, not found, over quota, invalid, not empty,
// modified) are Result codes returned to the proposer, never errors.
//
// # The compliance archive
//
// Retention policies, legal holds, the vault of expunged-but-kept
// messages, the audit log and the hash-chained journal are state like any
// other, written by operations 50-55 (archive.go) and judged on log time
// only. VerifyJournal recomputes the chain over any storage view; a node,
// the CLI on a stopped node's directory, or a test can call it. DESIGN.md
// ("Archive") has the rules.
//
// # Goroutines
//
// raft calls ApplyBatch, Snapshot and Restore from its FSM goroutine; Persist
// runs on raft's snapshot goroutine over a consistent storage view taken by
// Snapshot. AppliedIndex and WaitApplied are safe from any goroutine;
// WaitApplied blocks on a channel closed at every advance, never polls. The
// package starts no goroutines. See DESIGN.md for the batch and durability
// rules.
package raftfsm
