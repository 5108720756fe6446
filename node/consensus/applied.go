package consensus

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"
)

// FSMIndex is what Waiter needs from the state machine.
type FSMIndex interface {
	AppliedIndex() uint64
	WaitApplied(ctx context.Context, index uint64) error
}

// Waiter waits for "applied up to index" the way a read must: the state
// machine only sees command and configuration entries, so after an election
// the leader's no-op entry (and barriers) would leave the FSM's applied
// index one short of the commit index for ever. Waiter counts an index as
// applied when every entry above the FSM's applied index, up to it, is
// committed here and is of a type the FSM never receives.
type Waiter struct {
	raft *Node
	fsm  FSMIndex
}

// NewWaiter returns a Waiter over n and fsm.
func NewWaiter(n *Node, fsm FSMIndex) *Waiter { return &Waiter{raft: n, fsm: fsm} }

// AppliedIndex returns the FSM's applied index.
func (w *Waiter) AppliedIndex() uint64 { return w.fsm.AppliedIndex() }

// WaitApplied returns once index is applied in the sense above.
func (w *Waiter) WaitApplied(ctx context.Context, index uint64) error {
	for {
		applied := w.fsm.AppliedIndex()
		if applied >= index || w.onlyNonFSM(applied, index) {
			return nil
		}
		wctx, cancel := context.WithTimeout(ctx, 25*time.Millisecond)
		err := w.fsm.WaitApplied(wctx, index)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}

// onlyNonFSM reports whether (applied, index] are committed here and hold no
// entry the FSM would receive. It reads at most 64 entries: a longer gap is
// real apply lag, worth waiting for.
func (w *Waiter) onlyNonFSM(applied, index uint64) bool {
	if index-applied > 64 || w.raft.CommitIndex() < index {
		return false
	}
	var l raft.Log
	for i := applied + 1; i <= index; i++ {
		if err := w.raft.logs.GetLog(i, &l); err != nil {
			return false
		}
		if l.Type == raft.LogCommand || l.Type == raft.LogConfiguration {
			return false
		}
	}
	return true
}
