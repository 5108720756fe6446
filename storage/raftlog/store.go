package raftlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/storage/scrub"
)

var (
	// ErrCorrupt is wrapped by every error caused by a stored value or key
	// that does not decode: bad checksum, unknown version, wrong length.
	ErrCorrupt = errors.New("raftlog: corrupt record")

	// ErrKeyNotFound is returned by Get and GetUint64 for a stable key that
	// was never set. Its message is exactly "not found", unlike the other
	// sentinels, because hashicorp/raft v1.8 recognises a missing key by
	// comparing err.Error() == "not found" (NewRaft, HasExistingState,
	// requestVote); it must therefore never be wrapped. raft-boltdb uses the
	// same text.
	ErrKeyNotFound = errors.New("not found")

	// ErrClosed is returned by every method called after Close.
	ErrClosed = errors.New("raftlog: store closed")
)

// Compile-time checks of the interfaces raft looks for.
var (
	_ raft.LogStore          = (*Store)(nil)
	_ raft.StableStore       = (*Store)(nil)
	_ raft.MonotonicLogStore = (*Store)(nil)
)

// formatMajorVersion is pinned to a named version instead of
// pebble.FormatNewest: opening a database ratchets its on-disk format
// irreversibly, so FormatNewest would let a routine dependency bump make the
// data directory unreadable by the previous binary, i.e. break rollback.
// FormatWALSyncChunks is the first version whose WAL records carry the synced
// offset, which lets replay tell a torn unsynced tail (normal after a crash)
// from corruption inside synced data (must not be skipped) — the distinction
// a Raft log cares about most. Raise it deliberately, in its own change.
const formatMajorVersion = pebble.FormatWALSyncChunks

// Options configures Open. The zero value is the production configuration.
type Options struct {
	// Logger receives pebble's messages; nil means slog.Default(). Pass
	// slog.New(slog.DiscardHandler) for silence.
	Logger *slog.Logger

	// OnCorruption is called, once, when Pebble finds a damaged block of
	// the log while it is open (a read, a compaction, Scrub). It must not
	// block. The read fails; nothing damaged is returned. nil: only logged.
	OnCorruption func(error)

	// NoSync commits writes without fsync. A crash may then lose
	// acknowledged entries and votes, which breaks Raft's safety: use it
	// only in tests and benchmarks.
	NoSync bool

	// FS is the filesystem pebble uses; nil means the OS filesystem. Tests
	// use vfs.NewCrashableMem to simulate power loss.
	FS vfs.FS
}

// Store is a raft.LogStore and raft.StableStore backed by one Pebble
// database. Its methods are safe for concurrent use, but Close must not race
// with them: shut raft down first.
type Store struct {
	db *pebble.DB
	wo *pebble.WriteOptions

	// writeMu serialises the writes that change the log range with the
	// update of first and last, so that the cache never disagrees with the
	// database as seen by a later reader. raft calls StoreLogs from its main
	// goroutine and DeleteRange from its snapshot goroutine.
	writeMu sync.Mutex
	// first and last cache FirstIndex and LastIndex; both are 0 when the
	// log is empty. Read without the lock.
	first, last atomic.Uint64

	closed atomic.Bool

	dir         string
	fs          vfs.FS
	logger      *slog.Logger
	damagedOnce sync.Once
	damaged     atomic.Bool
}

// Scrub reads and checks every block of the log's live sstables at no more
// than bytesPerSec (0: no limit); see storage/scrub. A damaged table is an
// error wrapping ErrCorrupt and scrub.ErrDamaged.
func (s *Store) Scrub(ctx context.Context, bytesPerSec int64) (scrub.Stats, error) {
	if s.closed.Load() {
		return scrub.Stats{}, ErrClosed
	}
	paths, err := scrub.List(s.db, s.fs, s.dir)
	if err != nil {
		return scrub.Stats{}, err
	}
	st, err := scrub.Tables(ctx, s.fs, paths, bytesPerSec)
	if err != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return st, err
}

// Open opens or creates the store in dir.
func Open(dir string, opts Options) (*Store, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	po := &pebble.Options{
		FormatMajorVersion: formatMajorVersion,
		Logger:             pebbleLogger{logger.With("component", "raftlog")},
		FS:                 opts.FS,
	}
	log := logger.With("component", "raftlog")
	s := &Store{wo: pebble.Sync, dir: dir, fs: opts.FS, logger: log}
	if s.fs == nil {
		s.fs = vfs.Default
	}
	po.EventListener = scrub.Listener(func(err error) {
		s.damaged.Store(true)
		s.damagedOnce.Do(func() {
			log.Error("on-disk corruption in the raft log", "err", err)
			if opts.OnCorruption != nil {
				opts.OnCorruption(err)
			}
		})
	})
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	s.db = db
	if opts.NoSync {
		s.wo = pebble.NoSync
	}
	if err := s.loadIndexes(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	if err := s.checkSeal(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("raftlog: open %s: %w", dir, err)
	}
	return s, nil
}

// Close closes the database. A second Close returns ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}
	// A log found damaged while open is not sealed: the seal would bless
	// it. A seal that cannot be written only weakens the next start.
	if !s.damaged.Load() && s.fs == vfs.Default {
		if err := s.seal(); err != nil {
			s.logger.Warn("cannot seal the raft log at shutdown", "err", err)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("raftlog: close: %w", err)
	}
	return nil
}

// loadIndexes sets first and last from the keys in the database. It reads
// keys only, so a corrupt value does not stop Open; GetLog reports it.
func (s *Store) loadIndexes() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKeyLower, UpperBound: logKeyUpper})
	if err != nil {
		return err
	}
	var first, last uint64
	if it.First() {
		if first, err = parseLogKey(it.Key()); err == nil && it.Last() {
			last, err = parseLogKey(it.Key())
		}
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	s.first.Store(first)
	s.last.Store(last)
	return nil
}

// pebbleLogger adapts slog to pebble.Logger. Pebble's Infof lines are
// internal housekeeping, so they go to Debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf must not return: pebble calls it on broken invariants and carries
// on as if the process had stopped. Panicking (rather than os.Exit, which is
// what pebble's default logger does) keeps the stack trace and lets deferred
// cleanup in the caller run.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic("raftlog: pebble: " + msg)
}

// Verify reads every log entry and checks its checksum, its index and that
// the indexes have no gap: a node runs it at start, so a damaged log stops
// it with a clear error instead of a panic deep inside raft later
// (docs/TESTPLAN.md F14). It costs one sequential read of the log.
func (s *Store) Verify() error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: logKeyLower, UpperBound: logKeyUpper})
	if err != nil {
		return err
	}
	defer it.Close()
	var l raft.Log
	var prev uint64
	for ok := it.First(); ok; ok = it.Next() {
		idx, err := parseLogKey(it.Key())
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if prev != 0 && idx != prev+1 {
			return fmt.Errorf("%w: entries %d to %d are missing", ErrCorrupt, prev+1, idx-1)
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("%w: entry %d: %v", ErrCorrupt, idx, err)
		}
		if err := decodeLog(idx, v, &l); err != nil {
			return err
		}
		prev = idx
	}
	return it.Error()
}

// DiskSpace returns the bytes the log's database uses on disk.
func (s *Store) DiskSpace() int64 { return int64(s.db.Metrics().DiskSpaceUsage()) }

// Memory reports the log database's block cache and memtable bytes (as
// storage.DB.Memory).
func (s *Store) Memory() (cache, memtables int64) {
	if s.closed.Load() {
		return 0, 0
	}
	m := s.db.Metrics()
	return m.BlockCache.Size, int64(m.MemTable.Size)
}
