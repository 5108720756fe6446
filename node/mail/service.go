package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/continuum-mail/continuum/node/propose"
	"github.com/continuum-mail/continuum/node/search"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/storage"
)

// Proposer is the node's one proposal path (*propose.Proposer): it
// commits a command through the leader, bounded by apply-timeout, and with
// propose.AppliedHere waits for this node's apply; Sync is the read-index
// wait.
type Proposer interface {
	Propose(ctx context.Context, cmd *commandpb.Command, wait propose.Wait) (*commandpb.Result, uint64, error)
	Sync(ctx context.Context) error
}

// Health tells whether this node is cut off from the cluster.
type Health interface {
	LeaderlessFor() time.Duration
}

// Options configures a Service.
type Options struct {
	Logger *slog.Logger
	// CutOffAfter is how long without a leader before the node is cut off.
	CutOffAfter time.Duration
	// MaxMessageBytes is the largest message accepted (SMTP SIZE, APPENDLIMIT).
	MaxMessageBytes int64
	// ReadOnly marks an archive replica: it is always "cut off" for the
	// protocols (SMTP/LMTP 421, IMAP read-only from the local replica), so
	// it never accepts mail alone, whatever the leader's state.
	ReadOnly bool
}

// Service is the mail operations of one node.
type Service struct {
	db     *storage.DB
	prop   Proposer
	health Health
	feed   *Feed
	index  atomic.Pointer[search.Index] // full-text index; nil: scan
	opts   Options
	log    *slog.Logger
	auth   *authCache
}

// New returns a Service over the local state database.
func New(db *storage.DB, prop Proposer, health Health, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 50 << 20
	}
	return &Service{db: db, prop: prop, health: health, feed: NewFeed(), opts: opts, log: opts.Logger.With("component", "mail"), auth: newAuthCache()}
}

// Feed returns the node's change feed; raftfsm's OnApply publishes into it.
func (s *Service) Feed() *Feed { return s.feed }

// MaxMessageBytes is the largest message this node accepts.
func (s *Service) MaxMessageBytes() int64 { return s.opts.MaxMessageBytes }

// CutOff reports whether the node has had no leader for longer than the
// bound, or is an archive replica (Options.ReadOnly): SMTP greets 421 and
// IMAP turns read-only.
func (s *Service) CutOff() bool {
	if s.opts.ReadOnly {
		return true
	}
	if s.health == nil {
		return false
	}
	return s.health.LeaderlessFor() > s.opts.CutOffAfter
}

// propose commits cmd and waits until this node has applied it, so the
// caller's next read sees it. The returned error is one of this package's.
func (s *Service) propose(ctx context.Context, cmd *commandpb.Command) (*commandpb.Result, error) {
	return s.proposeWait(ctx, cmd, true)
}

// proposeWait is propose; waitLocal false skips the wait for the local
// apply. Delivery uses that: its promise is "committed on a quorum and
// applied on the leader" (the result comes from the leader's apply), and
// an MTA never reads back what it sent, so the follower's apply lag need
// not be added to every SMTP transaction.
func (s *Service) proposeWait(ctx context.Context, cmd *commandpb.Command, waitLocal bool) (*commandpb.Result, error) {
	res, _, err := s.proposeAt(ctx, cmd, waitLocal)
	return res, err
}

// proposeAt is proposeWait that also returns the entry's log index. An
// operator's request (WithActor) is wrapped for the audit log here.
func (s *Service) proposeAt(ctx context.Context, cmd *commandpb.Command, waitLocal bool) (*commandpb.Result, uint64, error) {
	if s.opts.ReadOnly {
		return nil, 0, ErrUnavailable // an archive replica writes nothing
	}
	cmd = audited(ctx, cmd)
	wait := propose.Committed
	if waitLocal {
		wait = propose.AppliedHere
	}
	res, idx, err := s.prop.Propose(ctx, cmd, wait)
	if err != nil {
		return nil, idx, proposeError(err)
	}
	return res, idx, nil
}

// Sync waits until this node has applied everything the leader had
// committed when Sync was called (read-index), so a read that follows
// never goes back in time. It returns ErrUnavailable when no leader can
// confirm; the caller may then serve local state read-only.
func (s *Service) Sync(ctx context.Context) error {
	if err := s.prop.Sync(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// read runs fn on a fresh snapshot, mapping storage.ErrNotFound.
func (s *Service) read(fn func(r storage.Reader) error) error {
	snap := s.db.Snapshot()
	defer snap.Close()
	err := fn(snap)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}
