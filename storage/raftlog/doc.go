// Package raftlog is the durable Raft log and stable store of a Continuum
// node: a raft.LogStore, raft.StableStore and raft.MonotonicLogStore for
// hashicorp/raft v1.8, kept in its own Pebble database, apart from the
// database the FSM applies into.
//
// # Key layout
//
//	'l' + index (8 bytes, big-endian)  one log entry
//	's' + key (raw bytes)              one stable-store value (current term, vote, ...)
//
// Big-endian indexes make key order equal index order, so the log is one
// contiguous key range: FirstIndex and LastIndex are its ends, DeleteRange is
// a single Pebble range deletion, and Open recovers both ends with two seeks.
//
// # Log value format
//
// Each log value is self-describing and checksummed:
//
//	version (1 byte, = 1) | index uvarint | term uvarint | type (1 byte) |
//	appended_at varint (unix ns, 0 = zero time) | len uvarint + data |
//	len uvarint + extensions | CRC-32C (4 bytes, big-endian) of all the above
//
// GetLog verifies the checksum, the version and that the index inside the
// value matches the key; any mismatch is an error wrapping ErrCorrupt, never
// a panic and never a silently wrong entry. Pebble already checksums its WAL
// and blocks; this checksum also covers bugs above Pebble (a value written
// under the wrong key, a truncated copy) and makes the format explicit for
// future versions. Stable values are stored raw: Get returns exactly what
// Set stored. A time before 1678 or after 2262 does not fit in int64
// nanoseconds and does not round-trip; raft stamps entries with time.Now.
//
// # Sync contract
//
// Unless Options.NoSync is set, StoreLogs, StoreLog, DeleteRange, Set and
// SetUint64 return only after their batch is committed and fsync'd to the
// WAL. Raft counts a follower's reply, and the leader counts its own entry,
// toward the commit quorum on the strength of that return, so Continuum's
// promise that an acknowledged message is durable on a majority of sites
// rests on it. StoreLogs writes its whole slice as one atomic batch: after a
// crash either all of it or none of it is present. NoSync exists for tests
// and benchmarks only.
//
// # Index cache
//
// FirstIndex and LastIndex are served from atomics (0, 0 when empty), set at
// Open from the keys, widened by StoreLogs and recomputed from the database
// after each DeleteRange. Writes hold a mutex so that the cache and the
// database change together; reads take no lock.
//
// # Goroutines
//
// The package starts none of its own; Pebble runs its background flushes
// and compactions until Close. All methods are safe for concurrent use, but
// Close must happen after raft has shut down.
package raftlog
