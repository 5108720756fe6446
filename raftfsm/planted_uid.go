//go:build faultuid

package raftfsm

import "log/slog"

// A planted fault for node/clustertest (TestCheckerCatchesPlantedUIDReuse):
// in a binary built with -tags faultuid, a message stored by a log entry
// whose index is a multiple of plantedUIDEvery does not advance its
// mailbox's UIDNEXT, so the next message stored there reuses (overwrites)
// its UID. It depends on the entry only, so every node breaks alike and the
// replicas stay equal: only the mailbox invariants can catch it. Never build
// a release with this tag.

const plantedUIDEvery = 7

// plantedUIDStall returns how much to take back from UIDNEXT after storing a
// message for the entry at index: 1 when the fault fires, else 0. The log
// line is how the test tells "the hook in addMessage is missing" from "the
// checker cannot see a reused UID".
func plantedUIDStall(index uint64) uint32 {
	if index == 0 || index%plantedUIDEvery != 0 {
		return 0
	}
	slog.Default().Warn("faultuid: planted fault leaves UIDNEXT where it was", "component", "fsm", "index", index)
	return 1
}
