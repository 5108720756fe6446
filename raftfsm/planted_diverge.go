//go:build faultdiverge

package raftfsm

import (
	"log/slog"
	"os"
)

// A planted fault for node/clustertest (TestCheckerCatchesPlantedDivergence):
// in a binary built with -tags faultdiverge, a process started with
// CONTINUUM_PLANTED_DIVERGE=1 raises a mailbox's HIGHESTMODSEQ by one more
// whenever it stores a message for a log entry whose index is a multiple of
// plantedDivergeEvery. No invariant breaks (HIGHESTMODSEQ only grows), but
// that node's state no longer equals the others': exactly what the replica
// equality checker must catch. The switch is the environment, never the
// node's identity, and only the test sets it for one node's process.
// Never build a release with this tag.

const plantedDivergeEvery = 5

var plantedDivergeOn = os.Getenv("CONTINUUM_PLANTED_DIVERGE") == "1"

// plantedDiverge returns how much more to raise HIGHESTMODSEQ for a message
// stored by the entry at index: 1 when the fault fires, else 0. The log line
// is how the test tells "the hook in addMessage is missing" from "the
// checker cannot see a divergence".
func plantedDiverge(index uint64) uint64 {
	if !plantedDivergeOn || index == 0 || index%plantedDivergeEvery != 0 {
		return 0
	}
	slog.Default().Warn("faultdiverge: planted fault raises HIGHESTMODSEQ on this node only", "component", "fsm", "index", index)
	return 1
}
