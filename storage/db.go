package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/continuum-mail/continuum/storage/scrub"
)

var (
	// ErrNotFound is returned by every typed read of a row that does not exist.
	ErrNotFound = errors.New("storage: not found")

	// ErrCorrupt is wrapped by every error caused by a stored value, a
	// snapshot stream or a directory that does not decode.
	ErrCorrupt = errors.New("storage: corrupt data")

	// ErrClosed is returned by methods called after Close.
	ErrClosed = errors.New("storage: closed")
)

// formatMajorVersion is pinned rather than pebble.FormatNewest: opening a
// database ratchets its format irreversibly, so FormatNewest would let a
// dependency bump make a data directory unreadable by the previous binary.
// Raise it deliberately, in its own change.
//
// FormatValueSeparation (raised from FormatWALSyncChunks, which
// storage/raftlog keeps) is what value separation needs (see
// valueSeparation). A state directory written by an older binary is
// ratcheted up at its first Open by this one (Pebble does it, keeping the
// data); from then on binaries that pin FormatWALSyncChunks cannot open it
// (Pebble refuses a format newer than it knows): a node is not
// downgraded past this change without a snapshot install from a peer.
const formatMajorVersion = pebble.FormatValueSeparation

// valueSeparation keeps values of valueSeparationMin bytes or more (message
// blobs, chunks) in Pebble blob files, out of the sstables: a compaction
// rewrites the keys and a small handle per value, not the message bytes,
// so a 10 KiB message is written about once more after its flush instead
// of once per level it descends (the compactions rewriting message bytes
// cost as much CPU as the FSM's apply itself, docs/notes/bench.md round
// 3). Blob files whose values are mostly dead (expunged mail) are
// rewritten once they are an hour old and a fifth garbage.
func valueSeparation() pebble.ValueSeparationPolicy {
	return pebble.ValueSeparationPolicy{
		Enabled:               true,
		MinimumSize:           valueSeparationMin,
		MaxBlobReferenceDepth: 10,
		RewriteMinimumAge:     time.Hour,
		TargetGarbageRatio:    0.2,
	}
}

const valueSeparationMin = 1024

// currentFile names the file in the DB directory that holds the name of the
// live state directory. Restore replaces it with a rename, which is what
// makes the swap atomic across a crash.
const currentFile = "CURRENT-STATE"

// Options configures Open. The zero value is the production configuration.
type Options struct {
	// Logger receives pebble's messages; nil means slog.Default().
	Logger *slog.Logger
	// NoSync makes every commit skip fsync, whatever its caller asks. For
	// tests and benchmarks only.
	NoSync bool
	// FS is the filesystem; nil means the OS filesystem.
	FS vfs.FS
	// CacheSize is pebble's block cache size in bytes; 0 means pebble's
	// default.
	CacheSize int64
	// OnCorruption is called, once, when Pebble finds a damaged block
	// while the database is open (any read, a compaction, a scrub). It must
	// not block: Pebble calls it on the read path. The read itself fails
	// with an error; nothing damaged is returned. nil: only logged.
	OnCorruption func(error)

	// format overrides formatMajorVersion (and turns value separation off
	// below FormatValueSeparation): tests that write a directory as an
	// older binary did.
	format pebble.FormatMajorVersion
}

// DB is the state database of one node. See doc.go for the key layout and the
// locking rule.
type DB struct {
	dir    string
	fs     vfs.FS
	opts   Options
	logger *slog.Logger

	// mu guards pdb and cur. Every Snap and Batch holds it for reading from
	// creation until Close; Restore holds it for writing only around the
	// swap of pdb.
	mu     sync.RWMutex
	pdb    *pebble.DB
	cur    string // name of the live state directory inside dir
	closed bool
	// filter answers "certainly absent" for blobref/ and dedupe/ keys of
	// pdb (keyfilter.go); rebuilt with pdb, guarded by mu like it. nil:
	// no filter, every lookup goes to Pebble.
	filter *keyFilter

	restoreMu sync.Mutex // one Restore at a time

	// damaged holds the first corruption Pebble reported (integrity.go);
	// once set, Close does not seal.
	damaged     atomic.Pointer[error]
	damagedOnce sync.Once
	// bgMu guards bg: the cancel functions of background views, which
	// Restore cancels before it swaps the database (integrity.go).
	bgMu sync.Mutex
	bg   map[*Snap]context.CancelFunc

	// floorMu guards the dedupe expiry floor that committed batches hand
	// to the next one (see Batch.ExpireDedupe); Restore resets it.
	floorMu          sync.Mutex
	dedupeFloor      int64
	dedupeFloorKnown bool
}

// Open opens or creates the state database in dir.
func Open(dir string, opts Options) (*DB, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	db := &DB{dir: dir, fs: fs, opts: opts, logger: opts.Logger.With("component", "storage")}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	cur, err := db.readCurrent()
	if errors.Is(err, ErrNotFound) {
		cur = stateDirName(1)
		if err = db.writeCurrent(cur); err != nil {
			return nil, fmt.Errorf("storage: open %s: %w", dir, err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	db.removeStale(cur)
	pdb, err := db.openPebble(fs.PathJoin(dir, cur))
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	if err := db.checkSeal(pdb, cur); err != nil {
		pdb.Close()
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	if db.filter, err = buildKeyFilter(pdb); err != nil {
		pdb.Close()
		return nil, fmt.Errorf("storage: open %s: %w", dir, err)
	}
	db.pdb, db.cur = pdb, cur
	return db, nil
}

func (db *DB) openPebble(path string) (*pebble.DB, error) {
	format := formatMajorVersion
	if db.opts.format != 0 {
		format = db.opts.format
	}
	po := &pebble.Options{
		FormatMajorVersion: format,
		Logger:             pebbleLogger{db.logger},
		FS:                 db.opts.FS,
		CacheSize:          db.opts.CacheSize,
		EventListener:      scrub.Listener(db.noteCorruption),
	}
	if format >= pebble.FormatValueSeparation {
		po.Experimental.ValueSeparationPolicy = valueSeparation
	}
	// Apply reads many keys that do not exist (a new dedupe key, a new
	// blob): bloom filters answer those without reading data blocks.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	if po.CacheSize == 0 {
		// Pebble's default (8 MiB) sends apply's index and filter block
		// reads to the disk; mail stores are read-heavy.
		po.CacheSize = DefaultCacheSize
	}
	return pebble.Open(path, po)
}

// DefaultCacheSize is the block cache used when Options.CacheSize is 0.
// It is a node's largest fixed memory cost outside Go's heap (Pebble
// allocates it with malloc), so it is sized for the node's budget (package
// node, "Memory"), not for the store: every read of a big message's chunks
// (apply's check, the indexer, FETCH) passes 1 MiB blocks through it, and
// Pebble v2.1 has no per-read option to skip the cache, so at 128 MiB it
// filled with chunk blocks after three 45 MB messages and stayed full.
// 32 MiB still keeps apply's index and filter blocks warm.
const DefaultCacheSize = 32 << 20

func stateDirName(n uint64) string { return fmt.Sprintf("state-%06d", n) }

func parseStateDirName(s string) (uint64, bool) {
	rest, ok := strings.CutPrefix(s, "state-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	return n, err == nil && n > 0 && stateDirName(n) == s
}

func (db *DB) readCurrent() (string, error) {
	f, err := db.fs.Open(db.fs.PathJoin(db.dir, currentFile))
	if err != nil {
		if oserrNotExist(err) {
			return "", ErrNotFound
		}
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 64))
	if err != nil {
		return "", err
	}
	name := strings.TrimSuffix(string(b), "\n")
	if _, ok := parseStateDirName(name); !ok {
		return "", fmt.Errorf("%w: %s holds %q", ErrCorrupt, currentFile, b)
	}
	return name, nil
}

// writeCurrent points CURRENT-STATE at name: write a temporary file, sync it,
// rename it over the old one, sync the directory.
func (db *DB) writeCurrent(name string) error {
	tmp := db.fs.PathJoin(db.dir, currentFile+".tmp")
	f, err := db.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err = f.Write([]byte(name + "\n")); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := db.fs.Rename(tmp, db.fs.PathJoin(db.dir, currentFile)); err != nil {
		return err
	}
	d, err := db.fs.OpenDir(db.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeStale deletes state directories other than cur: leftovers of a
// Restore that crashed before or after its swap.
func (db *DB) removeStale(cur string) {
	names, err := db.fs.List(db.dir)
	if err != nil {
		return
	}
	for _, n := range names {
		if n == cur || n == currentFile || n == sealFile {
			continue
		}
		if _, ok := parseStateDirName(n); ok || n == currentFile+".tmp" {
			if err := db.fs.RemoveAll(db.fs.PathJoin(db.dir, n)); err != nil {
				db.logger.Warn("cannot remove stale state directory", "dir", n, "err", err)
			}
		}
	}
}

// Close closes the database. Every Snap and Batch must be closed first.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed {
		return ErrClosed
	}
	db.closed = true
	// Flush first, so the seal describes what the sstables hold; a seal
	// that cannot be written only weakens the next start's check. A
	// database found damaged is never sealed: the seal would bless it.
	if err := db.Damaged(); err != nil {
		db.logger.Error("not sealing a damaged state database", "err", err)
	} else if err := db.pdb.Flush(); err == nil {
		if err := db.seal(db.cur); err != nil {
			db.logger.Warn("cannot seal the state database at shutdown", "err", err)
		}
	}
	if err := db.pdb.Close(); err != nil {
		return fmt.Errorf("storage: close: %w", err)
	}
	return nil
}

// Snap is a consistent, read-only view of the database. It holds the DB's
// read lock until Close, so keep it for one request's reads and close it
// before writing to a network peer.
type Snap struct {
	reader
	snap *pebble.Snapshot
	db   *DB
	once sync.Once
	// onClose, when set, runs after the view is released.
	onClose func()
}

var _ Reader = (*Snap)(nil)
var _ Reader = (*Batch)(nil)

// Snapshot returns a consistent read view. It must not be called after Close,
// nor by a goroutine that already holds an open Snap or Batch (a waiting
// Restore would make the second read lock wait for ever).
func (db *DB) Snapshot() *Snap {
	db.mu.RLock()
	s := db.pdb.NewSnapshot()
	return &Snap{reader: reader{r: s}, snap: s, db: db}
}

// Close releases the view and the DB's read lock. A second Close is a no-op.
func (s *Snap) Close() error {
	var err error
	s.once.Do(func() {
		err = s.snap.Close()
		s.db.mu.RUnlock()
		if s.onClose != nil {
			s.onClose()
		}
	})
	return err
}

// Applied returns the last applied Raft index and term; 0, 0 for a new
// database.
func (db *DB) Applied() (index, term uint64, err error) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return 0, 0, ErrClosed
	}
	return reader{r: db.pdb}.applied()
}

func (r reader) applied() (index, term uint64, err error) {
	v, err := r.getRaw(metaKey(MetaApplied))
	if errors.Is(err, ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("%w: meta/applied of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
}

// pebbleLogger adapts slog to pebble.Logger; pebble's Infof lines are
// housekeeping and go to Debug.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) { p.l.Debug(fmt.Sprintf(format, args...)) }

func (p pebbleLogger) Errorf(format string, args ...any) { p.l.Error(fmt.Sprintf(format, args...)) }

// Fatalf must not return: pebble calls it on broken invariants.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "fatal", true)
	panic("storage: pebble: " + msg)
}

// Memory reports what Pebble holds in memory for the state database: the
// block cache's bytes and the memtables' (with large batches queued as
// memtables). Both are outside Go's heap except those batches.
func (db *DB) Memory() (cache, memtables int64) {
	db.mu.RLock()
	defer db.mu.RUnlock()
	if db.closed {
		return 0, 0
	}
	m := db.pdb.Metrics()
	return m.BlockCache.Size, int64(m.MemTable.Size)
}
