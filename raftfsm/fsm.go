package raftfsm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// EventKind says what an Event reports.
type EventKind int

// The event kinds, published after the batch that caused them committed.
const (
	MessageAdded EventKind = iota + 1
	FlagsChanged
	MessageExpunged
	MailboxCreated
	MailboxDeleted
	MailboxRenamed
	MailboxChanged // subscription or other attributes
)

func (k EventKind) String() string {
	switch k {
	case MessageAdded:
		return "MessageAdded"
	case FlagsChanged:
		return "FlagsChanged"
	case MessageExpunged:
		return "MessageExpunged"
	case MailboxCreated:
		return "MailboxCreated"
	case MailboxDeleted:
		return "MailboxDeleted"
	case MailboxRenamed:
		return "MailboxRenamed"
	case MailboxChanged:
		return "MailboxChanged"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one change to a mailbox, for IDLE and NOTIFY. Name is the
// mailbox's (new) name for the mailbox events.
type Event struct {
	Kind      EventKind
	UserID    uint64
	MailboxID uint64
	UID       uint32
	ModSeq    uint64
	Name      string
	// Bulk marks a change made by a bulk import (AppendBatch, continuum
	// import): the full-text index defers such mailboxes until the import
	// pauses (node/search).
	Bulk bool
}

// Options configures New. The zero value is valid.
type Options struct {
	// Logger; nil means slog.Default(). The component name "fsm" is added.
	Logger *slog.Logger
	// OnApply, when set, is called on the apply goroutine after every
	// committed batch with the last applied index and the batch's events. It
	// must not block for long and must not call back into the FSM.
	OnApply func(index uint64, events []Event)
	// OnFatal is called once when the FSM stops: a non-skippable unknown
	// operation or a storage error. The node should stop serving.
	OnFatal func(error)
	// SyncApply makes every apply batch commit with fsync. Not needed for
	// safety: see DESIGN.md.
	SyncApply bool
	// OnCheck is called on the apply goroutine right after a consistency
	// check entry is committed, before anything later is applied: the
	// database then holds exactly the state as of index, the same on every
	// replica. It must not block: take a view (storage.DB.
	// BackgroundSnapshot) and digest it elsewhere.
	OnCheck func(index uint64, c *commandpb.ConsistencyCheck)
	// NoJournal turns the archive journal off, for benchmarks that measure
	// its cost. Every replica must agree on it, or their digests differ;
	// nodes never set it.
	NoJournal bool
}

// Response is what the raft ApplyFuture of every log entry holds.
type Response struct {
	Result *commandpb.Result
	Err    error
}

// FSM is the replicated state machine: a raft.BatchingFSM over storage.DB.
// raft calls ApplyBatch, Snapshot and Restore from its single FSM goroutine;
// AppliedIndex and WaitApplied may be called from any goroutine.
type FSM struct {
	db     *storage.DB
	opts   Options
	logger *slog.Logger

	applyMu sync.Mutex // serialises ApplyBatch and Restore
	fatal   error      // set once; guarded by applyMu

	mu      sync.Mutex
	applied uint64
	term    uint64
	advance chan struct{} // closed and replaced whenever applied changes
}

var (
	_ raft.BatchingFSM = (*FSM)(nil)
	_ raft.FSMSnapshot = (*fsmSnapshot)(nil)
)

// New returns an FSM over db, resuming from its meta/applied.
func New(db *storage.DB, opts Options) (*FSM, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	f := &FSM{db: db, opts: opts, logger: opts.Logger.With("component", "fsm"), advance: make(chan struct{})}
	index, term, err := db.Applied()
	if err != nil {
		return nil, fmt.Errorf("raftfsm: %w", err)
	}
	f.applied, f.term = index, term
	return f, nil
}

// AppliedIndex returns the index of the last applied entry.
func (f *FSM) AppliedIndex() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.applied
}

// WaitApplied returns nil once the applied index is at least index, or the
// context's error.
func (f *FSM) WaitApplied(ctx context.Context, index uint64) error {
	for {
		f.mu.Lock()
		applied, ch := f.applied, f.advance
		f.mu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *FSM) setApplied(index, term uint64) {
	f.mu.Lock()
	f.applied, f.term = index, term
	close(f.advance)
	f.advance = make(chan struct{})
	f.mu.Unlock()
}

// Apply implements raft.FSM.
func (f *FSM) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch implements raft.BatchingFSM: every entry of the batch goes into
// one storage batch, with meta/applied, committed once. It returns one
// *Response per entry.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	out := make([]interface{}, len(logs))
	if f.fatal != nil {
		for i := range out {
			out[i] = &Response{Err: f.fatal}
		}
		return out
	}
	f.mu.Lock()
	applied, term := f.applied, f.term
	f.mu.Unlock()
	startApplied := applied

	b := f.db.NewBatch()
	defer func() { b.Close() }()
	var events []Event
	// flush commits what the batch holds, up to applied, and publishes it.
	// It runs once at the end, and also right after a consistency check
	// entry, so that the check sees the state as of exactly its index on
	// every replica, however raft cut the batches.
	flush := func() bool {
		if applied == startApplied {
			return true
		}
		err := b.SetApplied(applied, term)
		if err == nil {
			err = b.Commit(f.opts.SyncApply)
		}
		if err != nil {
			// None of the entries since the last flush is applied; raft
			// will hand them to us again after a restart.
			f.fail(fmt.Errorf("raftfsm: commit up to index %d: %w", applied, err))
			for j := range logs {
				if logs[j].Index > startApplied {
					out[j] = &Response{Err: f.fatal}
				}
			}
			return false
		}
		if f.opts.OnApply != nil {
			f.opts.OnApply(applied, events)
		}
		f.setApplied(applied, term)
		events, startApplied = nil, applied
		return true
	}
	for i, l := range logs {
		if f.fatal != nil {
			out[i] = &Response{Err: f.fatal}
			continue
		}
		if l.Index <= applied {
			out[i] = &Response{Err: ErrAlreadyApplied}
			continue
		}
		if l.Type != raft.LogCommand {
			applied, term = l.Index, l.Term
			out[i] = &Response{}
			continue
		}
		c, err := Decode(l.Data)
		if err != nil {
			f.logger.Error("malformed log entry", "index", l.Index, "err", err)
			applied, term = l.Index, l.Term
			out[i] = &Response{Err: fmt.Errorf("index %d: %w", l.Index, err)}
			continue
		}
		if c.Op == nil {
			if c.GetSkippable() {
				f.logger.Warn("skipping an unknown skippable operation", "index", l.Index)
				applied, term = l.Index, l.Term
				out[i] = &Response{}
				continue
			}
			f.fail(fmt.Errorf("%w at index %d", ErrUnknownOp, l.Index))
			out[i] = &Response{Err: f.fatal}
			continue
		}
		res, ev, err := applyCommand(b, l.Index, c, !f.opts.NoJournal)
		if err != nil {
			// A storage error leaves this entry's writes half done in the
			// batch: commit nothing of it.
			f.fail(fmt.Errorf("raftfsm: apply index %d: %w", l.Index, err))
			for j := range out {
				out[j] = &Response{Err: f.fatal}
			}
			return out
		}
		applied, term = l.Index, l.Term
		events = append(events, ev...)
		out[i] = &Response{Result: res}
		if cc := c.GetConsistencyCheck(); cc != nil {
			if !flush() {
				return out
			}
			b.Close()
			b = f.db.NewBatch()
			if f.opts.OnCheck != nil {
				f.opts.OnCheck(l.Index, cc)
			}
		}
	}
	flush()
	return out
}

// fail records the first fatal error and reports it; applyMu must be held.
func (f *FSM) fail(err error) {
	if f.fatal != nil {
		return
	}
	f.fatal = fmt.Errorf("%w: %w", ErrStopped, err)
	f.logger.Error("state machine stopped", "err", err)
	if f.opts.OnFatal != nil {
		f.opts.OnFatal(err)
	}
}

// Snapshot implements raft.FSM: a consistent view of the state database,
// streamed by Persist on raft's snapshot goroutine.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{snap: f.db.Snapshot()}, nil
}

type fsmSnapshot struct{ snap *storage.Snap }

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.snap.WriteSnapshot(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("raftfsm: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) Release() { _ = s.snap.Close() }

// Restore implements raft.FSM: it replaces the state database with the
// snapshot, refusing one that would move a mailbox's UIDVALIDITY, UIDNEXT or
// HIGHESTMODSEQ (or an ID counter) backwards, then reloads the applied index
// and wakes waiters.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	if err := f.db.RestoreChecked(rc, checkMonotone); err != nil {
		f.logger.Error("snapshot restore failed", "err", err)
		return fmt.Errorf("raftfsm: restore: %w", err)
	}
	index, term, err := f.db.Applied()
	if err != nil {
		return fmt.Errorf("raftfsm: restore: %w", err)
	}
	f.logger.Info("restored from snapshot", "index", index, "term", term)
	f.setApplied(index, term)
	return nil
}

// ErrBackwards is wrapped by Restore's refusal of a snapshot that would lower
// a number clients rely on never going down.
var ErrBackwards = errors.New("raftfsm: snapshot would move numbers backwards")

func checkMonotone(live, staged storage.Reader) error {
	lc, sc := live.(interface {
		Counter(string) (uint64, error)
	}), staged.(interface {
		Counter(string) (uint64, error)
	})
	for _, name := range []string{storage.MetaNextUserID, storage.MetaNextMailboxID, storage.MetaNextUIDValidity} {
		a, err := lc.Counter(name)
		if err != nil {
			return err
		}
		b, err := sc.Counter(name)
		if err != nil {
			return err
		}
		if b < a {
			return fmt.Errorf("%w: %s %d < %d", ErrBackwards, name, b, a)
		}
	}
	users, err := live.Users()
	if err != nil {
		return err
	}
	for _, u := range users {
		mbs, err := live.Mailboxes(u.GetId())
		if err != nil {
			return err
		}
		for _, m := range mbs {
			n, err := staged.Mailbox(m.GetUserId(), m.GetId())
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if lowered(m, n) {
				return fmt.Errorf("%w: mailbox %d: uidvalidity %d→%d, uidnext %d→%d, highestmodseq %d→%d",
					ErrBackwards, m.GetId(), m.GetUidValidity(), n.GetUidValidity(),
					m.GetUidNext(), n.GetUidNext(), m.GetHighestModseq(), n.GetHighestModseq())
			}
		}
	}
	return nil
}

func lowered(old, new *storagepb.Mailbox) bool {
	return new.GetUidValidity() < old.GetUidValidity() || new.GetUidNext() < old.GetUidNext() ||
		new.GetHighestModseq() < old.GetHighestModseq()
}
