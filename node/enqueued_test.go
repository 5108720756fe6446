package node_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/raftfsm"
)

// TestEnqueuedKeepsProposalOrder: a proposer that proposes each entry once
// the one before it is queued (consensus.WithEnqueued), not committed, gets
// its entries in the log in that order while several are in flight — what
// continuum import's ordered pipeline relies on.
func TestEnqueuedKeepsProposalOrder(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 3})
	r := c.Nodes[c.WaitLeader(10*time.Second)].Raft()
	ctx := c.Ctx(time.Minute)
	const n = 40
	idx := make([]uint64, n)
	errs := make([]error, n)
	queuedAt := make([]time.Time, n)
	doneAt := make([]time.Time, n)
	var wg sync.WaitGroup
	var prev chan struct{}
	for i := range n {
		if prev != nil {
			<-prev
		}
		cmd := &commandpb.Command{Op: &commandpb.Command_DomainAdd{DomainAdd: &commandpb.DomainAdd{Name: fmt.Sprintf("d%d.test", i)}}}
		data, err := raftfsm.Encode(cmd)
		if err != nil {
			t.Fatal(err)
		}
		queued := make(chan struct{})
		var once sync.Once
		mark := func() {
			once.Do(func() {
				queuedAt[i] = time.Now()
				close(queued)
			})
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer mark() // refused before it was queued: do not hold the next one forever
			_, idx[i], errs[i] = r.Apply(consensus.WithEnqueued(ctx, mark), raftfsm.Stamp(data, r.Stamp()))
			doneAt[i] = time.Now()
		}()
		prev = queued
	}
	wg.Wait()
	overlapped := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("entry %d: %v", i, errs[i])
		}
		if i > 0 && idx[i] <= idx[i-1] {
			t.Fatalf("entry %d at index %d, entry %d at %d: out of the proposal order", i, idx[i], i-1, idx[i-1])
		}
		if i > 0 && queuedAt[i].Before(doneAt[i-1]) {
			overlapped++
		}
	}
	// The point of the hook: the next entry goes before the previous one
	// has committed (a commit takes a replication round trip and fsyncs;
	// the next proposal follows the hook at once).
	if overlapped == 0 {
		t.Fatalf("no entry was queued before the one before it committed: not pipelined")
	}
	t.Logf("%d entries in proposal order, %d queued while the one before was in flight", n, overlapped)
}
