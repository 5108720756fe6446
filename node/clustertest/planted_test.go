package clustertest

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/storage/failpoint"
)

// Planted faults in the state machine (failpoints fsm/apply-diverge and
// fsm/apply-uid-stall, package failpoint, in raftfsm's addMessage; binaries
// built with -tags failpoints): each checker must be shown catching the
// fault it exists for. A checker that cannot fail proves nothing.

// logCount counts marker in node i's log (every start of it).
func logCount(c *Cluster, i int, marker string) int {
	b, _ := os.ReadFile(c.Nodes[i].LogPath)
	return strings.Count(string(b), marker)
}

// plantedLoad shortens a planted-fault scenario's load: a few seconds fire
// the fault many times.
func plantedLoad(r *run) {
	r.deadline = time.Now().Add(min(time.Until(r.deadline), 5*time.Second))
}

const (
	divergeMarker = "failpoint " + failpoint.ApplyDiverge + " fired"
	uidMarker     = "failpoint " + failpoint.ApplyUIDStall + " fired"

	addMessageHooks = "Add, in raftfsm/apply.go, func (t *tx) addMessage, right after the line `box.UidNext++`:\n" +
		"\tif failpoint.Hit(failpoint.ApplyUIDStall, t.index) { box.UidNext-- }\n" +
		"\tif failpoint.Hit(failpoint.ApplyDiverge, t.index) { box.HighestModseq++ }"
)

// TestCheckerCatchesPlantedDivergence: a binary built with -tags
// failpoints, run with fsm/apply-diverge=every(5) in one node's
// environment only, raises HIGHESTMODSEQ once more on that node for every
// message stored by an entry whose index is a multiple of 5. No mailbox
// invariant breaks and nothing is lost; the replica equality checker must
// report that node's digest different from the others', which agree.
func TestCheckerCatchesPlantedDivergence(t *testing.T) {
	const bad = 2 // n3; the environment, not the FSM, picks it
	fired := make([]int, 3)
	f := runScenario(t, scenario{
		tags:             "failpoints",
		expectDivergence: true,
		opts: Options{NodeEnv: func(i int) []string {
			if i == bad {
				return []string{failpoint.Env + "=" + failpoint.ApplyDiverge + "=every(5)"}
			}
			return nil
		}},
		faults: plantedLoad,
		check: func(r *run, ops []*Op, f *Figures) {
			for i := range r.c.Nodes {
				fired[i] = logCount(r.c, i, divergeMarker)
			}
		},
	})
	t.Logf("planted divergence fired %v times per node; replicas equal %v, applied %v, digests %v", fired, f.ReplicasEqual, f.Applied, f.Digests)
	if fired[bad] == 0 {
		t.Fatalf("the planted fault never fired on n%d: the hook is missing. %s", bad+1, addMessageHooks)
	}
	for i, n := range fired {
		if i != bad && n != 0 {
			t.Errorf("the planted divergence fired %d times on n%d, whose environment does not switch it on", n, i+1)
		}
	}
	if f.ReplicasEqual {
		t.Fatalf("n%d diverged %d times but the replica equality checker reports the replicas equal: it cannot see a divergence", bad+1, fired[bad])
	}
	for i := range f.Digests {
		if f.Applied[i] != f.Applied[0] {
			t.Errorf("applied indexes differ %v: the divergence must be in the state, at the same index", f.Applied)
		}
		if same := f.Digests[i] == f.Digests[(bad+1)%3]; same == (i == bad) {
			t.Errorf("digests %v: want n%d alone to differ", f.Digests, bad+1)
			break
		}
	}
}

// TestCheckerCatchesPlantedUIDReuse: a binary built with -tags failpoints
// and run with fsm/apply-uid-stall=every(7) on every node does not advance
// UIDNEXT for a message stored by an entry whose index is a multiple of 7,
// on every node alike: the next message to that mailbox
// reuses the UID and overwrites the row. The replicas stay equal; the
// mailbox invariants (MESSAGES against the rows, the size, UIDNEXT above
// the highest UID) must report it. Set-full sees the overwritten messages
// as lost, which the test allows.
func TestCheckerCatchesPlantedUIDReuse(t *testing.T) {
	var fired []int
	f := runScenario(t, scenario{
		tags:       "failpoints",
		expectLoss: true,
		opts:       Options{NodeEnv: func(int) []string { return []string{failpoint.Env + "=" + failpoint.ApplyUIDStall + "=every(7)"} }},
		faults:     plantedLoad,
		check: func(r *run, ops []*Op, f *Figures) {
			for i := range r.c.Nodes {
				fired = append(fired, logCount(r.c, i, uidMarker))
			}
		},
	})
	var inv []string
	for _, v := range f.Violations {
		if strings.HasPrefix(v, "invariant: ") {
			inv = append(inv, v)
		}
	}
	t.Logf("planted UID stalls fired %v times per node; %d invariant violations, lost %d; e.g.\n  %s", fired, len(inv), f.Lost, strings.Join(inv[:min(len(inv), 6)], "\n  "))
	if len(fired) == 0 || fired[0] == 0 {
		t.Fatalf("the planted fault never fired: the hook is missing. %s", addMessageHooks)
	}
	for i, n := range fired {
		if n == 0 {
			t.Errorf("the planted UID stall never fired on n%d: it must break every node alike", i+1)
		}
	}
	if len(inv) == 0 {
		t.Fatalf("UIDNEXT stalled %v times but the invariants checker reports nothing: it cannot see a reused UID", fired)
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		seen := false
		for _, v := range inv {
			seen = seen || strings.HasPrefix(v, "invariant: "+n+": ")
		}
		if !seen {
			t.Errorf("no invariant violation reported on %s, where the fault fired too", n)
		}
	}
}
