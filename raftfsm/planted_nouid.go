//go:build !faultuid

package raftfsm

// plantedUIDStall is the switch of the planted fault in planted_uid.go
// (build tag faultuid); 0 in every ordinary build.
func plantedUIDStall(index uint64) uint32 { return 0 }
