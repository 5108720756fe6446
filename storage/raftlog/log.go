package raftlog

import (
	"errors"
	"fmt"
	"math"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

// FirstIndex returns the index of the first stored entry, or 0 if the log is
// empty. It reads the in-memory cache.
func (s *Store) FirstIndex() (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return s.first.Load(), nil
}

// LastIndex returns the index of the last stored entry, or 0 if the log is
// empty. It reads the in-memory cache.
func (s *Store) LastIndex() (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	return s.last.Load(), nil
}

// GetLog reads the entry at index into log. It returns raft.ErrLogNotFound
// if there is none, and an error wrapping ErrCorrupt if the stored value does
// not decode.
func (s *Store) GetLog(index uint64, log *raft.Log) error {
	if s.closed.Load() {
		return ErrClosed
	}
	var kb [logKeyLen]byte
	v, closer, err := s.db.Get(appendLogKey(kb[:0], index))
	if errors.Is(err, pebble.ErrNotFound) {
		return raft.ErrLogNotFound
	}
	if err != nil {
		return fmt.Errorf("raftlog: get log %d: %w", index, err)
	}
	err = decodeLog(index, v, log)
	_ = closer.Close() // decodeLog copied what it keeps
	return err
}

// StoreLog stores one entry. See StoreLogs.
func (s *Store) StoreLog(log *raft.Log) error {
	return s.StoreLogs([]*raft.Log{log})
}

// StoreLogs stores the entries in one batch, committed atomically and (unless
// Options.NoSync) fsync'd before it returns: raft acknowledges entries to the
// leader on the strength of this return.
func (s *Store) StoreLogs(logs []*raft.Log) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if len(logs) == 0 {
		return nil
	}
	lo, hi := uint64(math.MaxUint64), uint64(0)
	size := 0
	for i, l := range logs {
		if l == nil {
			return fmt.Errorf("raftlog: store logs: entry %d is nil", i)
		}
		lo, hi = min(lo, l.Index), max(hi, l.Index)
		size = max(size, encodedLogSize(l))
	}

	b := s.db.NewBatch()
	defer b.Close()
	// Batch.Set copies key and value, so one scratch buffer serves all.
	var kb [logKeyLen]byte
	scratch := make([]byte, 0, size)
	for _, l := range logs {
		scratch = appendLog(scratch[:0], l)
		if err := b.Set(appendLogKey(kb[:0], l.Index), scratch, nil); err != nil {
			return fmt.Errorf("raftlog: store logs: %w", err)
		}
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := b.Commit(s.wo); err != nil {
		return fmt.Errorf("raftlog: store logs [%d, %d]: %w", lo, hi, err)
	}
	// Only widen the range: storing inside it (an overwrite) changes
	// neither end. raft truncates with DeleteRange before it rewrites a
	// suffix, and DeleteRange recomputes both ends.
	if f := s.first.Load(); f == 0 || lo < f {
		s.first.Store(lo)
	}
	if hi > s.last.Load() {
		s.last.Store(hi)
	}
	return nil
}

// DeleteRange deletes the entries with index in [min, max], inclusive, in one
// range deletion committed like StoreLogs. raft uses it for compaction after a
// snapshot (a prefix), for conflict truncation on a follower (a suffix), and
// to clear the whole log after restoring a user snapshot (see IsMonotonic).
func (s *Store) DeleteRange(min, max uint64) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if min > max {
		return nil
	}
	start := appendLogKey(nil, min)
	end := logKeyUpper // max+1 would wrap around
	if max < math.MaxUint64 {
		end = appendLogKey(nil, max+1)
	}

	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(start, end, nil); err != nil {
		return fmt.Errorf("raftlog: delete range [%d, %d]: %w", min, max, err)
	}
	if err := b.Commit(s.wo); err != nil {
		return fmt.Errorf("raftlog: delete range [%d, %d]: %w", min, max, err)
	}
	// Recompute rather than reason about the ends: it is two seeks, this
	// runs once per snapshot or truncation, and it stays right even if the
	// deleted range does not touch either end.
	if err := s.loadIndexes(); err != nil {
		return fmt.Errorf("raftlog: delete range [%d, %d]: reload indexes: %w", min, max, err)
	}
	return nil
}

// IsMonotonic reports that the store must not hold gaps between indexes, so
// that raft clears the log with DeleteRange after restoring a user snapshot
// instead of relying on a gap (raft.MonotonicLogStore; hashicorp/raft#697).
// A range deletion makes clearing the whole log cheap here.
func (s *Store) IsMonotonic() bool { return true }
