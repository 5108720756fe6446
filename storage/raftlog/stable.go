package raftlog

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Set stores val under key, committed like StoreLogs: raft keeps its current
// term and vote here, and a vote forgotten in a crash can elect two leaders
// in one term.
func (s *Store) Set(key, val []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.db.Set(stableKey(key), val, s.wo); err != nil {
		return fmt.Errorf("raftlog: set %q: %w", key, err)
	}
	return nil
}

// Get returns a copy of the value stored under key, or ErrKeyNotFound
// (unwrapped; see its doc) if none is.
func (s *Store) Get(key []byte) ([]byte, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	v, closer, err := s.db.Get(stableKey(key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrKeyNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("raftlog: get %q: %w", key, err)
	}
	out := append([]byte{}, v...)
	_ = closer.Close()
	return out, nil
}

// SetUint64 stores val under key as 8 big-endian bytes.
func (s *Store) SetUint64(key []byte, val uint64) error {
	return s.Set(key, binary.BigEndian.AppendUint64(nil, val))
}

// GetUint64 returns the value SetUint64 stored under key. For a missing key
// it returns 0 and ErrKeyNotFound, as raft-boltdb does; raft treats that as
// "term 0, no vote".
func (s *Store) GetUint64(key []byte) (uint64, error) {
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: stable key %q holds %d bytes, want 8", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}
