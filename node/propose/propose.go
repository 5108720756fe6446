package propose

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage/failpoint"
)

// Raft is what proposing needs of this node's consensus member
// (*consensus.Node).
type Raft interface {
	ID() string
	Leader() (id, addr string)
	IsLeader() bool
	// Stamp returns a monotone log time for an entry proposed now.
	Stamp() int64
	Apply(ctx context.Context, data []byte) (any, uint64, error)
	VerifyLeader(ctx context.Context) (uint64, error)
	CommitIndex() uint64
}

// Forwarder reaches the leader's Peer service (*peer.Router). Its errors
// are consensus's: ErrNotLeader when the callee proves nothing was proposed
// (it was not the leader, or could not be reached before the call),
// ErrUnknownOutcome when it may have been; ErrRejected passes through.
type Forwarder interface {
	// waitLocal says the proposer will wait for its own apply (the leader
	// then publishes the commit index at once); known is this node's
	// commit index (a leader ahead of it publishes too).
	Forward(ctx context.Context, leader string, data []byte, waitLocal bool) (*commandpb.Result, uint64, error)
	ReadIndex(ctx context.Context, leader string, known uint64) (uint64, error)
}

// Applied waits until this node has applied an index (consensus.Waiter).
type Applied interface {
	WaitApplied(ctx context.Context, index uint64) error
}

// Config is a node's proposal path.
type Config struct {
	Raft    Raft
	Forward Forwarder
	Applied Applied
	// Timeout bounds each Propose and Sync (apply-timeout; 0: the caller's
	// context only).
	Timeout time.Duration
	// LeaderWait bounds how long a request waits for a leader to appear.
	LeaderWait time.Duration
}

// ErrRejected means the state machine refused the command as a whole (it
// could not decode or apply it); retrying the same bytes will not help.
var ErrRejected = errors.New("propose: command rejected by the state machine")

// Wait says how far Propose waits.
type Wait int

const (
	// Committed: the entry is committed on a quorum and applied on the
	// leader (the Result is the leader's). Delivery uses it: an MTA never
	// reads back what it sent.
	Committed Wait = iota
	// AppliedHere: also applied on this node, so the caller reads its
	// own write.
	AppliedHere
)

// Proposer is a node's proposal path; see the package doc.
type Proposer struct{ cfg Config }

// New returns the proposal path for cfg.
func New(cfg Config) *Proposer { return &Proposer{cfg: cfg} }

// maxAttempts bounds the retries of a refusal that proved nothing was
// proposed.
const maxAttempts = 6

// Propose commits cmd through the leader and returns the state machine's
// result and the entry's log index. It clears cmd's log time: the leader
// stamps it.
func (p *Proposer) Propose(ctx context.Context, cmd *commandpb.Command, wait Wait) (*commandpb.Result, uint64, error) {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	cmd.TimeUnixNano = 0
	data, err := raftfsm.Encode(cmd)
	if err != nil {
		return nil, 0, err
	}
	res, idx, err := p.propose(ctx, data, wait == AppliedHere)
	if err != nil || wait == Committed {
		return res, idx, err
	}
	if err := p.cfg.Applied.WaitApplied(ctx, idx); err != nil {
		// Committed on a quorum, so durable, but not yet visible here:
		// the caller could not read its own write.
		return nil, idx, fmt.Errorf("%w: committed at %d but not applied here: %v", consensus.ErrUnknownOutcome, idx, err)
	}
	return res, idx, nil
}

// propose sends the encoded command to the leader, retrying only while the
// answer proves that nothing was proposed.
func (p *Proposer) propose(ctx context.Context, data []byte, waitLocal bool) (*commandpb.Result, uint64, error) {
	for attempt := 0; ; attempt++ {
		res, idx, err := p.proposeOnce(ctx, data, waitLocal)
		if err == nil || !errors.Is(err, consensus.ErrNotLeader) || attempt >= maxAttempts-1 || consensus.Ordered(ctx) {
			if errors.Is(err, consensus.ErrNotLeader) {
				err = fmt.Errorf("%w: %v", consensus.ErrNoLeader, err)
			}
			return res, idx, err
		}
		// The node we asked was not the leader: nothing was proposed, so
		// wait for the next leader and try again.
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("%w: %v", consensus.ErrNoLeader, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
}

func (p *Proposer) proposeOnce(ctx context.Context, data []byte, waitLocal bool) (*commandpb.Result, uint64, error) {
	leader, err := p.WaitLeader(ctx)
	if err != nil {
		return nil, 0, err
	}
	if leader == p.cfg.Raft.ID() {
		return p.Local(ctx, data)
	}
	if consensus.Ordered(ctx) {
		// Its place in the log's order is only known on this node.
		return nil, 0, consensus.ErrNotLeader
	}
	res, idx, err := p.cfg.Forward.Forward(ctx, leader, data, waitLocal)
	if err == nil && failpoint.Hit(failpoint.ProposeForward, 0) { // test-only (tag failpoints)
		// The leader took it, and the answer is lost on the way back.
		return nil, 0, fmt.Errorf("%w: %w", consensus.ErrUnknownOutcome, failpoint.ErrInjected)
	}
	return res, idx, err
}

// Local proposes an encoded, unstamped command on this node, which must be
// the leader: the leader's half of Propose, and the Forward RPC's handler.
func (p *Proposer) Local(ctx context.Context, data []byte) (*commandpb.Result, uint64, error) {
	if !p.cfg.Raft.IsLeader() {
		return nil, 0, consensus.ErrNotLeader
	}
	if err := raftfsm.CheckUnstamped(data); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrRejected, err)
	}
	resp, idx, err := p.cfg.Raft.Apply(ctx, raftfsm.Stamp(data, p.cfg.Raft.Stamp()))
	if err != nil {
		return nil, 0, err
	}
	fr, ok := resp.(*raftfsm.Response)
	if !ok || fr == nil {
		return nil, idx, fmt.Errorf("%w: no response from the state machine", ErrRejected)
	}
	if fr.Err != nil {
		return nil, idx, fmt.Errorf("%w: %v", ErrRejected, fr.Err)
	}
	return fr.Result, idx, nil
}

// Sync waits until this node has applied everything the leader had
// committed when Sync was called (read-index), so a read that follows
// never goes back in time.
func (p *Proposer) Sync(ctx context.Context) error {
	ctx, cancel := p.bound(ctx)
	defer cancel()
	idx, err := p.ReadIndex(ctx)
	if err != nil {
		return err
	}
	if err := p.cfg.Applied.WaitApplied(ctx, idx); err != nil {
		return fmt.Errorf("waiting for index %d: %v", idx, err)
	}
	return nil
}

// ReadIndex returns an index that a linearizable read must wait for: the
// leader's commit index, confirmed by a quorum. Asking changes nothing, so
// a failed attempt is retried like a refused proposal (maxAttempts, the
// same backoff): right after an election the new leader may not answer
// yet, or this node may know its ID from Raft before gossip has brought
// its gRPC address.
func (p *Proposer) ReadIndex(ctx context.Context) (uint64, error) {
	for attempt := 0; ; attempt++ {
		idx, err := p.readIndexOnce(ctx)
		if err == nil || attempt >= maxAttempts-1 || ctx.Err() != nil {
			return idx, err
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%w: %v", consensus.ErrNoLeader, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
}

func (p *Proposer) readIndexOnce(ctx context.Context) (uint64, error) {
	leader, err := p.WaitLeader(ctx)
	if err != nil {
		return 0, err
	}
	if leader == p.cfg.Raft.ID() {
		return p.cfg.Raft.VerifyLeader(ctx)
	}
	return p.cfg.Forward.ReadIndex(ctx, leader, p.cfg.Raft.CommitIndex())
}

// WaitLeader returns the leader's ID, waiting up to LeaderWait for one.
func (p *Proposer) WaitLeader(ctx context.Context) (string, error) {
	deadline := time.Now().Add(p.cfg.LeaderWait)
	for {
		if id, _ := p.cfg.Raft.Leader(); id != "" {
			return id, nil
		}
		if time.Now().After(deadline) {
			return "", consensus.ErrNoLeader
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %v", consensus.ErrNoLeader, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (p *Proposer) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.cfg.Timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, p.cfg.Timeout)
}
