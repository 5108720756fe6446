package nodetest

import (
	"os"
	"sync/atomic"
	"syscall"

	"github.com/hashicorp/raft"
)

// diskFault is the log-append fault point of one node: while full is set,
// its Raft log refuses appends with ENOSPC, as a full disk would.
type diskFault struct{ full atomic.Bool }

type faultLogStore struct {
	raft.LogStore
	d *diskFault
}

func (f faultLogStore) StoreLog(l *raft.Log) error { return f.StoreLogs([]*raft.Log{l}) }

func (f faultLogStore) StoreLogs(logs []*raft.Log) error {
	if f.d.full.Load() {
		return &os.PathError{Op: "write", Path: "raft-log", Err: syscall.ENOSPC}
	}
	return f.LogStore.StoreLogs(logs)
}

// IsMonotonic keeps raft.MonotonicLogStore through the wrapper.
func (f faultLogStore) IsMonotonic() bool { return true }

// SetDiskFull makes node i's Raft log appends fail (or work again).
func (c *Cluster) SetDiskFull(i int, full bool) { c.disks[i].full.Store(full) }

func (c *Cluster) wrapLogStore(i int) func(raft.LogStore) raft.LogStore {
	return func(s raft.LogStore) raft.LogStore { return faultLogStore{LogStore: s, d: c.disks[i]} }
}
