package search

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"maps"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// FormatVersion is the layout of the index database. An index written with
// another version is deleted and rebuilt.
const FormatVersion = 4

// Format 4 (from 3): postings are merge operands under one key per token
// (postings.go), and a message whose tokens would cost over
// MaxDocIndexBytes is indexed without tokens and listed under 'l'. A
// format-3 database has another merger and is removed at Open (openDB).

// ErrNotFound is returned by View.Doc for a message the index does not hold.
var ErrNotFound = errors.New("search: not in the index")

// Key families of the index database (see doc.go).
const (
	famMeta   = 'm'
	famCursor = 'c'
	famDoc    = 'd'
	// 'p' held one trigram posting per message (FormatVersion 2); phrases
	// now narrow through the token postings (View.Candidates).
)

var (
	keyVersion = []byte{famMeta, 'v'}
	keyApplied = []byte{famMeta, 'a'}
)

// streamAbove is the message size above which the indexer streams the
// message (storage.OpenBlob) instead of reading it whole.
const streamAbove = 1 << 20

// batchMessages is how many messages one index batch holds before it is
// committed with the mailbox's cursor; batchBytes bounds its size too (a
// step stops adding messages once its batch holds that much, so a run of
// large text messages cannot build a batch of gigabytes).
const (
	batchMessages = 512
	batchBytes    = 32 << 20
)

// batchFull reports whether a step holding n messages in b must stop.
func batchFull(b *pebble.Batch, n int) bool {
	return n == batchMessages || (n > 0 && b.Len() >= batchBytes)
}

// Options configures Open.
type Options struct {
	Logger *slog.Logger
	// FullPassEvery is how often the indexer checks every mailbox even
	// without events (a restored snapshot publishes none). Default 5 min.
	FullPassEvery time.Duration
	// Lag is how long the indexer waits after a change before it indexes,
	// so that one step takes several deliveries to a mailbox and writes
	// one postings operand per token for all of them. Searches do not
	// wait for it (messages above a mailbox's watermark are scanned), and
	// WaitCaughtUp cuts it short. Default 1 s; negative: none.
	Lag time.Duration
	// BulkQuiet is how long a bulk import (Event.Bulk) must have been
	// quiet on this node before the indexer takes up the mailboxes it
	// wrote: an import does not share the CPU with indexing what it has
	// just written, and the index then takes each mailbox in long steps.
	// Searches stay exact meanwhile (they scan above the watermark);
	// WaitCaughtUp (and so `continuum reindex`) does not wait for it.
	// Default 10 s; negative: bulk changes are indexed like any other.
	BulkQuiet time.Duration
	// BulkMaxDefer bounds the wait: a mailbox an import keeps writing is
	// indexed at least this often, so a search in it never scans more
	// than that much of an import. Default 5 min.
	BulkMaxDefer time.Duration
}

// defaultLag is Options.Lag's default.
const defaultLag = time.Second

// Options.BulkQuiet's and Options.BulkMaxDefer's defaults.
const (
	defaultBulkQuiet    = 10 * time.Second
	defaultBulkMaxDefer = 5 * time.Minute
)

// Index is one node's full-text index over its state database.
type Index struct {
	db    *pebble.DB
	dir   string
	state *storage.DB
	log   *slog.Logger
	opts  Options

	mu       sync.Mutex
	dirty    map[uint64]uint64 // mailboxID → userID, from events
	all      bool              // check every mailbox
	wipe     bool              // Reindex asked: wipe before the next pass
	notified uint64            // last applied index whose events are in dirty
	// deferred holds the mailboxes bulk imports changed (mailboxID →
	// userID) until no bulk event has come for Options.BulkQuiet (since
	// lastBulk) or the first of them has waited Options.BulkMaxDefer
	// (since deferredAt); a pass holding any of them back records no
	// applied index.
	deferred   map[uint64]uint64
	lastBulk   time.Time
	deferredAt time.Time

	kick   chan struct{}
	hurry  chan struct{} // WaitCaughtUp: stop lagging
	eager  atomic.Int32  // WaitCaughtUp calls in progress
	cancel context.CancelFunc
	done   chan struct{}

	// figures (metrics)
	indexed     atomic.Uint64 // messages indexed
	removed     atomic.Uint64 // messages removed
	indexNanos  atomic.Int64  // time spent extracting and writing
	mailBytes   atomic.Uint64 // raw bytes of the messages indexed
	passes      atomic.Uint64
	appliedSeen atomic.Uint64 // index applied as last recorded

	// vocab holds the vocabulary keys added by the batch being built;
	// known, vocabulary keys the index database holds (committed), so
	// addTokens need not look each token up again: a cache, cleared when
	// it reaches maxKnown entries and when the index or a mailbox is
	// dropped (indexer goroutine only).
	vocab map[string]struct{}
	known map[string]struct{}
	// whole is the mailbox whose every vocabulary key known holds (0:
	// none; mailbox IDs start at 1): a token of it that known lacks is new,
	// and addTokens adds it without looking it up (loadVocabulary).
	whole uint64
	// tooBig is the last mailbox whose vocabulary did not fit the cache
	// (loadVocabulary does not try it again).
	tooBig uint64
	// post collects the postings changes of the step being built.
	post stepPostings
}

// cacheSize is the index database's block cache.
const cacheSize = 32 << 20

// maxKnown bounds the vocabulary cache (about 70 bytes an entry).
const maxKnown = 200_000

// commit commits a step's batch and then adds the vocabulary keys it
// wrote to the cache of known ones.
func (x *Index) commit(b *pebble.Batch) error {
	if err := b.Commit(pebble.NoSync); err != nil {
		return err
	}
	if x.known == nil || len(x.known)+len(x.vocab) > maxKnown {
		x.known, x.whole = make(map[string]struct{}, len(x.vocab)), 0
	}
	for k := range x.vocab {
		x.known[k] = struct{}{}
	}
	return nil
}

// Open opens (or creates) the index in dir over state and starts its
// indexer goroutine, which first catches up with the state. An index of
// another FormatVersion is wiped first.
func Open(dir string, state *storage.DB, opts Options) (*Index, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.FullPassEvery <= 0 {
		opts.FullPassEvery = 5 * time.Minute
	}
	if opts.Lag == 0 {
		opts.Lag = defaultLag
	}
	if opts.BulkQuiet == 0 {
		opts.BulkQuiet = defaultBulkQuiet
	}
	if opts.BulkMaxDefer <= 0 {
		opts.BulkMaxDefer = defaultBulkMaxDefer
	}
	// Every step adds a postings operand per distinct token (format 4;
	// format 3 added a key per message and token), spread over the whole
	// mailbox's key range, so each memtable flush overlaps everything
	// below it: with Pebble's defaults (4 MiB memtables, the oldest
	// format's row blocks) compacting the index cost more CPU than
	// delivering the message (docs/notes/bench.md). Larger memtables
	// flush less often; the columnar format (as storage's) writes faster.
	// The indexer looks up every token new to a mailbox's vocabulary
	// (mostly misses) and reads postings on search: with Pebble's default
	// 8 MiB cache those reads went to the files for their index blocks.
	db, removed, err := openDB(dir, &pebble.Options{Logger: quietPebble{}, MemTableSize: 32 << 20, CacheSize: cacheSize, FormatMajorVersion: pebble.FormatWALSyncChunks})
	if err != nil {
		return nil, fmt.Errorf("search: open %s: %w", dir, err)
	}
	if removed {
		opts.Logger.Warn("full-text index of an older format removed: rebuilding", "component", "search", "dir", dir)
	}
	x := &Index{db: db, dir: dir, state: state, log: opts.Logger.With("component", "search"), opts: opts,
		dirty: map[uint64]uint64{}, deferred: map[uint64]uint64{}, all: true, kick: make(chan struct{}, 1), hurry: make(chan struct{}, 1), done: make(chan struct{})}
	if err := x.checkVersion(); err != nil {
		db.Close()
		return nil, err
	}
	if v, ok, _ := x.getU64(keyApplied); ok {
		x.appliedSeen.Store(v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	x.kick <- struct{}{}
	go x.run(ctx)
	return x, nil
}

func (x *Index) checkVersion() error {
	v, ok, err := x.getU64(keyVersion)
	if err != nil {
		return err
	}
	if ok && v == FormatVersion {
		return nil
	}
	if ok {
		x.log.Warn("index of another format: rebuilding", "found", v, "want", FormatVersion)
	}
	b := x.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte{0}, []byte{0xff}, nil); err != nil {
		return err
	}
	b.Set(keyVersion, u64(FormatVersion), nil)
	return b.Commit(pebble.Sync)
}

// Close stops the indexer and closes the database.
func (x *Index) Close() error {
	x.cancel()
	<-x.done
	return x.db.Close()
}

// Notify is raftfsm's OnApply hook (through the node): it records which
// mailboxes changed and wakes the indexer. It never blocks.
func (x *Index) Notify(index uint64, events []Event) {
	x.mu.Lock()
	for _, e := range events {
		if len(x.dirty)+len(x.deferred) > 100_000 {
			x.all = true
			break
		}
		if e.Bulk && x.opts.BulkQuiet > 0 {
			now := time.Now()
			if len(x.deferred) == 0 {
				x.deferredAt = now
			}
			x.deferred[e.MailboxID] = e.UserID
			x.lastBulk = now
			continue
		}
		x.dirty[e.MailboxID] = e.UserID
	}
	x.notified = max(x.notified, index)
	x.mu.Unlock()
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

// Event is the part of a raftfsm.Event the index needs (raftfsm is not
// imported: the node adapts).
type Event struct {
	UserID, MailboxID uint64
	Bulk              bool // written by a bulk import (see Options.BulkQuiet)
}

// Reindex drops the whole index and rebuilds it in the background;
// searches scan meanwhile (mailbox by mailbox, as each is rebuilt).
func (x *Index) Reindex() error {
	// The indexer goroutine wipes, between two passes, so no pass in
	// flight writes a cursor over the wiped index.
	x.mu.Lock()
	x.wipe = true
	x.appliedSeen.Store(0)
	x.mu.Unlock()
	select {
	case x.kick <- struct{}{}:
	default:
	}
	return nil
}

func (x *Index) wipeAll() error {
	x.known, x.whole, x.tooBig = nil, 0, 0
	b := x.db.NewBatch()
	defer b.Close()
	// Everything but the meta family (format version).
	if err := b.DeleteRange([]byte{0}, []byte{famMeta}, nil); err != nil {
		return err
	}
	if err := b.DeleteRange([]byte{famMeta + 1}, []byte{0xff}, nil); err != nil {
		return err
	}
	b.Delete(keyApplied, nil)
	return b.Commit(pebble.Sync)
}

// WaitCaughtUp blocks until the index has processed everything applied up
// to index (a full pass at or after it), or ctx ends. For tests and the
// reindex command.
func (x *Index) WaitCaughtUp(ctx context.Context, index uint64) error {
	x.eager.Add(1)
	defer x.eager.Add(-1)
	select {
	case x.hurry <- struct{}{}:
	default:
	}
	// Deferred bulk mailboxes wait for no event: wake the indexer.
	select {
	case x.kick <- struct{}{}:
	default:
	}
	for {
		if x.appliedSeen.Load() >= index {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Applied returns the state index the index last recorded as fully
// processed.
func (x *Index) Applied() uint64 { return x.appliedSeen.Load() }

func (x *Index) run(ctx context.Context) {
	defer close(x.done)
	t := time.NewTicker(x.opts.FullPassEvery)
	defer t.Stop()
	for {
		var quiet <-chan time.Time
		if d, ok := x.bulkWait(); ok {
			quiet = time.After(d)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			x.mu.Lock()
			x.all = true
			x.mu.Unlock()
		case <-quiet:
		case <-x.kick:
			if !x.lag(ctx) {
				return
			}
		}
		if err := x.pass(ctx); err != nil && ctx.Err() == nil {
			x.log.Error("indexing pass failed; retrying", "err", err)
			x.mu.Lock()
			x.all = true
			x.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			select {
			case x.kick <- struct{}{}:
			default:
			}
		}
	}
}

// bulkWait returns how long the deferred bulk mailboxes still wait, when
// there are any.
func (x *Index) bulkWait() (time.Duration, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.bulkWaitLocked()
}

func (x *Index) bulkWaitLocked() (time.Duration, bool) {
	if len(x.deferred) == 0 {
		return 0, false
	}
	quiet := x.opts.BulkQuiet - time.Since(x.lastBulk)
	limit := x.opts.BulkMaxDefer - time.Since(x.deferredAt)
	return max(0, min(quiet, limit)), true
}

// lag waits Options.Lag after a change, unless someone waits for the
// index (WaitCaughtUp) or a wipe is asked; false when ctx ended.
func (x *Index) lag(ctx context.Context) bool {
	x.mu.Lock()
	wipe := x.wipe
	x.mu.Unlock()
	if x.opts.Lag <= 0 || wipe || x.eager.Load() > 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(x.opts.Lag)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-x.hurry:
	}
	return true
}

// pass brings the mailboxes marked dirty (or all of them) up to date with
// a state snapshot at or after the last notified index.
func (x *Index) pass(ctx context.Context) error {
	x.mu.Lock()
	if x.wipe {
		if err := x.wipeAll(); err != nil {
			x.mu.Unlock()
			return err
		}
		x.wipe, x.all = false, true
		x.log.Info("full-text index wiped: rebuilding")
	}
	dirty, all, notified := x.dirty, x.all, x.notified
	x.dirty, x.all = map[uint64]uint64{}, false
	// Bulk mailboxes wait until the import has been quiet, unless someone
	// waits for the index.
	if d, ok := x.bulkWaitLocked(); ok && (d == 0 || x.eager.Load() > 0) {
		for k, v := range x.deferred {
			dirty[k] = v
		}
		x.deferred = map[uint64]uint64{}
	}
	held := maps.Clone(x.deferred)
	x.mu.Unlock()
	restore := func() {
		x.mu.Lock()
		for k, v := range dirty {
			x.dirty[k] = v
		}
		x.all = x.all || all
		x.mu.Unlock()
	}
	if all {
		// The state's applied index before the scan: every change up to it
		// is in the snapshots the pass reads.
		idx, _, err := x.state.Applied()
		if err != nil {
			restore()
			return err
		}
		notified = max(notified, idx)
		boxes, err := x.allMailboxes()
		if err != nil {
			restore()
			return err
		}
		for k := range held {
			delete(boxes, k)
		}
		dirty = boxes
	}
	for mbox, user := range dirty {
		if ctx.Err() != nil {
			restore()
			return ctx.Err()
		}
		if err := x.syncMailbox(ctx, user, mbox); err != nil {
			restore()
			return err
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.wipe && len(held) == 0 && notified > x.appliedSeen.Load() {
		if err := x.db.Set(keyApplied, u64(notified), pebble.NoSync); err != nil {
			return err
		}
		x.appliedSeen.Store(notified)
	}
	x.passes.Add(1)
	return nil
}

// allMailboxes lists every mailbox of the state and every mailbox the
// index has a cursor for (those gone from the state are dropped by
// syncMailbox).
func (x *Index) allMailboxes() (map[uint64]uint64, error) {
	out := map[uint64]uint64{}
	snap := x.state.Snapshot()
	users, err := snap.Users()
	if err == nil {
		for _, u := range users {
			boxes, berr := snap.Mailboxes(u.Id)
			if berr != nil {
				err = berr
				break
			}
			for _, b := range boxes {
				out[b.Id] = b.UserId
			}
		}
	}
	snap.Close()
	if err != nil {
		return nil, err
	}
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte{famCursor}, UpperBound: []byte{famCursor + 1}})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		c := decodeCursor(it.Value())
		if _, ok := out[c.mailbox]; !ok {
			out[c.mailbox] = c.user
		}
	}
	return out, it.Error()
}

// cursor is how far a mailbox is indexed.
//
// A mailbox is built in UID order first (building: every message with a
// UID ≤ hw is indexed), from a start MODSEQ noted when the build began;
// then it follows the mailbox's modseq/ entries from modseq on (live
// entries are new or changed messages, tombstones expunges). In both
// phases every message of the state with a UID ≤ hw is in the index:
// searches scan only the messages above hw.
type cursor struct {
	mailbox     uint64
	user        uint64
	modseq      uint64 // entries up to here are processed (0 while building)
	startModseq uint64 // building: the mailbox's HIGHESTMODSEQ when the build began
	hw          uint32
	uidValidity uint32
	building    bool
}

func cursorKey(mbox uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{famCursor}, mbox)
}

func (c cursor) encode() []byte {
	b := make([]byte, 0, 41)
	b = binary.BigEndian.AppendUint64(b, c.mailbox)
	b = binary.BigEndian.AppendUint64(b, c.user)
	b = binary.BigEndian.AppendUint64(b, c.modseq)
	b = binary.BigEndian.AppendUint64(b, c.startModseq)
	b = binary.BigEndian.AppendUint32(b, c.hw)
	b = binary.BigEndian.AppendUint32(b, c.uidValidity)
	if c.building {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	return b
}

func decodeCursor(v []byte) cursor {
	if len(v) < 41 {
		return cursor{}
	}
	return cursor{
		mailbox:     binary.BigEndian.Uint64(v[0:]),
		user:        binary.BigEndian.Uint64(v[8:]),
		modseq:      binary.BigEndian.Uint64(v[16:]),
		startModseq: binary.BigEndian.Uint64(v[24:]),
		hw:          binary.BigEndian.Uint32(v[32:]),
		uidValidity: binary.BigEndian.Uint32(v[36:]),
		building:    v[40] == 1,
	}
}

func (x *Index) getCursor(mbox uint64) (cursor, bool, error) {
	v, closer, err := x.db.Get(cursorKey(mbox))
	if errors.Is(err, pebble.ErrNotFound) {
		return cursor{}, false, nil
	}
	if err != nil {
		return cursor{}, false, err
	}
	defer closer.Close()
	return decodeCursor(v), true, nil
}

// syncMailbox brings one mailbox's part of the index up to date.
func (x *Index) syncMailbox(ctx context.Context, user, mbox uint64) error {
	c, ok, err := x.getCursor(mbox)
	if err != nil {
		return err
	}
	snap := x.state.Snapshot()
	box, err := snap.Mailbox(user, mbox)
	snap.Close()
	if errors.Is(err, storage.ErrNotFound) {
		if ok {
			return x.dropMailbox(mbox)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if ok && c.uidValidity != box.UidValidity {
		if err := x.dropMailbox(mbox); err != nil {
			return err
		}
		ok = false
	}
	if !ok {
		c = cursor{mailbox: mbox, user: user, uidValidity: box.UidValidity, building: true, startModseq: box.HighestModseq}
	}
	for c.building {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if c, err = x.buildStep(user, c); err != nil {
			return err
		}
	}
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		more := false
		if c, more, err = x.followStep(user, c); err != nil || !more {
			return err
		}
	}
}

// buildStep indexes the next batchMessages messages in UID order.
func (x *Index) buildStep(user uint64, c cursor) (cursor, error) {
	snap := x.state.Snapshot()
	defer snap.Close()
	b := x.db.NewBatch()
	defer b.Close()
	x.vocab, x.post = map[string]struct{}{}, stepPostings{}
	n := 0
	last := c.hw
	errFull := errors.New("full")
	err := snap.Messages(c.mailbox, c.hw+1, 0, func(m *storagepb.Message) error {
		if batchFull(b, n) {
			return errFull
		}
		if _, err := x.addMessage(b, snap, c.mailbox, m); err != nil {
			return err
		}
		n++
		last = m.Uid
		return nil
	})
	if err != nil && !errors.Is(err, errFull) {
		return c, err
	}
	c.hw = last
	if err == nil { // the end of the mailbox: follow modseq/ from the start
		c.building = false
		c.modseq = c.startModseq
	}
	if err := x.post.write(b, c.mailbox); err != nil {
		return c, err
	}
	b.Set(cursorKey(c.mailbox), c.encode(), nil)
	return c, x.commit(b)
}

// followStep applies up to batchMessages modseq/ entries above the
// cursor; more reports whether there may be others.
func (x *Index) followStep(user uint64, c cursor) (cursor, bool, error) {
	snap := x.state.Snapshot()
	defer snap.Close()
	box, err := snap.Mailbox(user, c.mailbox)
	if errors.Is(err, storage.ErrNotFound) {
		return c, false, nil // deleted meanwhile: the next pass drops it
	}
	if err != nil {
		return c, false, err
	}
	// A plain batch: an indexed one costs a skiplist insert per key (14%
	// of a node's CPU under delivery load); the step's own writes that it
	// reads back (has, removeMessage) are kept in st instead.
	b := x.db.NewBatch()
	defer b.Close()
	st := step{b: b, added: map[uint32]string{}, removed: map[uint32]bool{}}
	x.vocab, x.post = map[string]struct{}{}, stepPostings{}
	if box.HighestModseq-c.modseq >= wholeVocabAfter && x.whole != c.mailbox && x.tooBig != c.mailbox {
		if err := x.loadVocabulary(c.mailbox); err != nil {
			return c, false, err
		}
	}
	n := 0
	errFull := errors.New("full")
	err = snap.Changes(c.mailbox, c.modseq, func(modseq uint64, e *storagepb.ModSeqEntry) error {
		if batchFull(b, n) {
			return errFull
		}
		n++
		if e.Expunged {
			if err := x.removeMessage(&st, c.mailbox, e.Uid); err != nil {
				return err
			}
		} else if !x.has(&st, c.mailbox, e.Uid) {
			m, err := snap.Message(c.mailbox, e.Uid)
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			text, err := x.addMessage(b, snap, c.mailbox, m)
			if err != nil {
				return err
			}
			if text != nil {
				st.added[e.Uid] = *text
				delete(st.removed, e.Uid)
			}
		}
		c.modseq = modseq
		return nil
	})
	more := errors.Is(err, errFull)
	if err != nil && !more {
		return c, false, err
	}
	if !more {
		// Every entry of this snapshot is processed: every message it
		// holds is indexed.
		c.modseq = max(c.modseq, box.HighestModseq)
		if box.UidNext > 0 {
			c.hw = max(c.hw, box.UidNext-1)
		}
	}
	if err := x.post.write(b, c.mailbox); err != nil {
		return c, false, err
	}
	b.Set(cursorKey(c.mailbox), c.encode(), nil)
	return c, more, x.commit(b)
}

// wholeVocabAfter is how many changes a mailbox must have waiting before
// a step reads its whole vocabulary into the cache first: in a long step
// (an import's catch-up) most tokens new to the cache are new to the
// mailbox, and each would otherwise cost a Get that misses (a third of
// the indexer's CPU in an import's catch-up, docs/notes/migrate.md).
const wholeVocabAfter = 64

// loadVocabulary replaces the cache of known vocabulary keys with mailbox
// mbox's and, when they all fit, records that the cache holds the whole
// of it (x.whole); when they do not, it records that too (x.tooBig) and
// the tokens are looked up one by one as before.
func (x *Index) loadVocabulary(mbox uint64) error {
	lo, hi := mboxKey(famVocab, mbox), mboxKey(famVocab, mbox+1)
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	x.known, x.whole = map[string]struct{}{}, 0
	for it.First(); it.Valid(); it.Next() {
		if len(x.known) >= maxKnown/2 {
			// Half the cache at most: the step's own new tokens must
			// fit too, or commit empties the cache at once.
			x.tooBig = mbox
			return it.Error()
		}
		x.known[string(it.Key())] = struct{}{}
	}
	if err := it.Error(); err != nil {
		return err
	}
	x.whole = mbox
	return nil
}

// step is one followStep's batch and what it wrote, so the step reads
// its own writes without an indexed batch.
type step struct {
	b       *pebble.Batch
	added   map[uint32]string // UID → Doc.Text of documents added in b
	removed map[uint32]bool   // UIDs whose document b deletes
}

// has reports whether the index holds uid's document, counting the step's
// own writes.
func (x *Index) has(st *step, mbox uint64, uid uint32) bool {
	if _, ok := st.added[uid]; ok {
		return true
	}
	if st.removed[uid] {
		return false
	}
	_, closer, err := x.db.Get(docKey(mbox, uid))
	if err != nil {
		return false
	}
	closer.Close()
	return true
}

// addMessage writes m's document, postings and tokens into b and returns
// the document's text (nil when the blob is gone: nothing was written).
func (x *Index) addMessage(b *pebble.Batch, r storage.Reader, mbox uint64, m *storagepb.Message) (*string, error) {
	start := time.Now()
	parsed, err := r.Parsed(m.Blob)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	var d *Doc
	size := m.Size
	if m.Size > streamAbove {
		// A large message is streamed (one chunk at a time) and only the
		// ranges the text comes from are kept.
		br, err := x.state.OpenBlob(m.Blob)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		d, err = ExtractReader(br, br.Size, parsed)
		br.Close()
		if err != nil {
			return nil, err
		}
	} else {
		data, err := r.Blob(m.Blob)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		d, size = Extract(data, parsed), uint64(len(data))
	}
	if err := b.Set(docKey(mbox, m.Uid), storage.Compress(d.encode()), nil); err != nil {
		return nil, err
	}
	text := d.Text()
	if err := x.addTokens(b, mbox, m.Uid, text, x.vocab); err != nil {
		return nil, err
	}
	x.indexed.Add(1)
	x.mailBytes.Add(size)
	x.indexNanos.Add(int64(time.Since(start)))
	return &text, nil
}

// removeMessage deletes uid's document, postings and tokens in st's
// batch; the text comes from the step's own addition, else the stored
// document.
func (x *Index) removeMessage(st *step, mbox uint64, uid uint32) error {
	if st.removed[uid] {
		return nil
	}
	text, ok := st.added[uid]
	if !ok {
		v, closer, err := x.db.Get(docKey(mbox, uid))
		if errors.Is(err, pebble.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		d, derr := decodeDocFrame(v)
		closer.Close()
		if derr == nil {
			text, ok = d.Text(), true
		}
	}
	b := st.b
	if ok {
		if err := x.removeTokens(b, mbox, uid, text); err != nil {
			return err
		}
	}
	delete(st.added, uid)
	st.removed[uid] = true
	x.removed.Add(1)
	return b.Delete(docKey(mbox, uid), nil)
}

func (x *Index) dropMailbox(mbox uint64) error {
	x.known, x.whole, x.tooBig = nil, 0, 0 // its vocabulary goes
	b := x.db.NewBatch()
	defer b.Close()
	for _, f := range []byte{famDoc, famVocab, famGram, famToken, famLong} {
		lo := binary.BigEndian.AppendUint64([]byte{f}, mbox)
		hi := binary.BigEndian.AppendUint64([]byte{f}, mbox+1)
		if err := b.DeleteRange(lo, hi, nil); err != nil {
			return err
		}
	}
	b.Delete(cursorKey(mbox), nil)
	return b.Commit(pebble.NoSync)
}

func docKey(mbox uint64, uid uint32) []byte {
	k := binary.BigEndian.AppendUint64(make([]byte, 0, 13), mbox)
	return binary.BigEndian.AppendUint32(append([]byte{famDoc}, k...), uid)
}

// trigramSet returns the distinct trigram hashes of s (runes, as Folded).
func trigramSet(s string) []uint32 {
	seen := map[uint32]struct{}{}
	var out []uint32
	var w [3]rune
	n := 0
	for _, r := range s {
		w[0], w[1], w[2] = w[1], w[2], r
		n++
		if n < 3 {
			continue
		}
		t := trigram(w)
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
		}
	}
	return out
}

func trigram(w [3]rune) uint32 {
	h := fnv.New32a()
	var b [12]byte
	binary.BigEndian.PutUint32(b[0:], uint32(w[0]))
	binary.BigEndian.PutUint32(b[4:], uint32(w[1]))
	binary.BigEndian.PutUint32(b[8:], uint32(w[2]))
	h.Write(b[:])
	return h.Sum32()
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (x *Index) getU64(k []byte) (uint64, bool, error) {
	v, closer, err := x.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, false, nil
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// Stats are the index's figures for metrics.
type Stats struct {
	DiskBytes       int64   // the index database's files
	Indexed         uint64  // messages indexed since start
	Removed         uint64  // messages removed since start
	IndexSeconds    float64 // time spent indexing since start
	IndexedBytes    uint64  // raw message bytes indexed since start
	AppliedIndex    uint64  // state index fully processed
	Passes          uint64
	PendingMailboxs int
}

// Stats returns the current figures.
func (x *Index) Stats() Stats {
	x.mu.Lock()
	pending := len(x.dirty)
	x.mu.Unlock()
	return Stats{
		DiskBytes:       dirSize(x.dir),
		Indexed:         x.indexed.Load(),
		Removed:         x.removed.Load(),
		IndexSeconds:    time.Duration(x.indexNanos.Load()).Seconds(),
		IndexedBytes:    x.mailBytes.Load(),
		AppliedIndex:    x.appliedSeen.Load(),
		Passes:          x.passes.Load(),
		PendingMailboxs: pending,
	}
}

// Memory reports the index database's block cache and memtable bytes (as
// storage.DB.Memory). Not after Close.
func (x *Index) Memory() (cache, memtables int64) {
	m := x.db.Metrics()
	return m.BlockCache.Size, int64(m.MemTable.Size)
}

// Flush writes the memtable out, so DiskBytes counts everything.
func (x *Index) Flush() error { return x.db.Flush() }

func dirSize(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf(format, args...))
}

// ReindexAndWait is Reindex, then waits up to wait for the rebuild to
// process everything the state had applied when it began. It returns that
// index and whether it was reached.
func (x *Index) ReindexAndWait(ctx context.Context, wait time.Duration) (target uint64, caughtUp bool, err error) {
	target, _, err = x.state.Applied()
	if err != nil {
		return 0, false, err
	}
	if err := x.Reindex(); err != nil {
		return target, false, err
	}
	if wait <= 0 {
		return target, false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	return target, x.WaitCaughtUp(ctx, target) == nil, nil
}

// Compact compacts the whole index (benchmarks measure its settled size).
func (x *Index) Compact() error {
	return x.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true)
}
