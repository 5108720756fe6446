//go:build !faultdiverge

package raftfsm

// plantedDiverge is the switch of the planted fault in planted_diverge.go
// (build tag faultdiverge); 0 in every ordinary build.
func plantedDiverge(index uint64) uint64 { return 0 }
