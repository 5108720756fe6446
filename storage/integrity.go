package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/continuum-mail/continuum/storage/scrub"
)

// Integrity: what the state database does about silent damage (see
// DESIGN.md "Damage at run time").
//
//   - Pebble's DataCorruption event no longer panics the process: it marks
//     the database damaged (Damaged), calls Options.OnCorruption once, and
//     the read fails with an error. The node stops in order on it.
//   - Scrub reads every block of every live sstable, then every value
//     (the blob files the large ones live in), at a bounded rate.
//   - DigestPaced computes Digest from a background view at a bounded rate,
//     for the replicated consistency check.

// noteCorruption records the first corruption and reports it.
func (db *DB) noteCorruption(err error) {
	db.damagedOnce.Do(func() {
		db.damaged.Store(&err)
		db.logger.Error("on-disk corruption in the state database", "err", err)
		if db.opts.OnCorruption != nil {
			db.opts.OnCorruption(err)
		}
	})
}

// Damaged returns the first corruption Pebble reported since Open, or nil.
func (db *DB) Damaged() error {
	if p := db.damaged.Load(); p != nil {
		return *p
	}
	return nil
}

// Scrub reads and checks every block of every live sstable, then every
// value (scrubValues: the blob files), at no more than bytesPerSec (0: no
// limit). A damaged table is reported as an error
// wrapping scrub.ErrDamaged and ErrCorrupt, and marks the database damaged
// (OnCorruption is called) as a damaged read would.
func (db *DB) Scrub(ctx context.Context, bytesPerSec int64) (scrub.Stats, error) {
	db.mu.RLock()
	if db.closed {
		db.mu.RUnlock()
		return scrub.Stats{}, ErrClosed
	}
	// The table list is taken under the lock; the files are read without
	// it (a Restore that removes them makes them "skipped").
	paths, err := scrub.List(db.pdb, db.fs, db.fs.PathJoin(db.dir, db.cur))
	db.mu.RUnlock()
	if err != nil {
		return scrub.Stats{}, err
	}
	st, err := scrub.Tables(ctx, db.fs, paths, bytesPerSec)
	if err == nil {
		var n int64
		var took time.Duration
		n, took, err = db.scrubValues(ctx, bytesPerSec)
		st.Bytes += n
		st.Took += took
	}
	if err != nil && ctx.Err() == nil && errors.Is(err, scrub.ErrDamaged) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
		db.noteCorruption(err)
	}
	return st, err
}

// scrubValues reads every value of the database from a background view at
// no more than bytesPerSec. Values of valueSeparationMin bytes or more (the
// message bytes) live in Pebble's blob files, which scrub.Tables does not
// open; reading a value makes Pebble read and check the blob file block
// that holds it. A read that fails is reported wrapping scrub.ErrDamaged;
// a Restore (which cancels the view) or ctx ends the pass with ctx's error.
func (db *DB) scrubValues(ctx context.Context, bytesPerSec int64) (int64, time.Duration, error) {
	s, vctx := db.BackgroundSnapshot(ctx)
	defer s.Close()
	p := scrub.NewPacer(bytesPerSec)
	var n int64
	err := s.scan(nil, nil, func(k, v []byte) error {
		n += int64(len(k) + len(v))
		p.Wait(vctx, int64(len(k)+len(v)))
		return vctx.Err()
	})
	if cerr := vctx.Err(); cerr != nil {
		return n, p.Elapsed(), cerr
	}
	if err != nil {
		return n, p.Elapsed(), fmt.Errorf("%w: reading the values: %v", scrub.ErrDamaged, err)
	}
	return n, p.Elapsed(), nil
}

// BackgroundSnapshot returns a view for a long background read (a
// consistency digest) and a context that Restore cancels before it swaps
// the database: the reader must watch it and Close the view promptly, so a
// snapshot install never waits for a digest.
func (db *DB) BackgroundSnapshot(parent context.Context) (*Snap, context.Context) {
	ctx, cancel := context.WithCancel(parent)
	s := db.Snapshot()
	db.bgMu.Lock()
	if db.bg == nil {
		db.bg = make(map[*Snap]context.CancelFunc)
	}
	db.bg[s] = cancel
	db.bgMu.Unlock()
	s.onClose = func() {
		db.bgMu.Lock()
		delete(db.bg, s)
		db.bgMu.Unlock()
		cancel()
	}
	return s, ctx
}

// cancelBackground cancels every background view's context.
func (db *DB) cancelBackground() {
	db.bgMu.Lock()
	defer db.bgMu.Unlock()
	for _, cancel := range db.bg {
		cancel()
	}
}

// DigestPaced is Digest, reading at no more than bytesPerSec (0: no limit)
// and stopping with ctx's error when ctx ends.
func (s *Snap) DigestPaced(ctx context.Context, bytesPerSec int64) ([]byte, error) {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	applied := metaKey(MetaApplied)
	p := scrub.NewPacer(bytesPerSec)
	err := s.scan([]byte{0}, []byte{byte(familyEnd)}, func(k, v []byte) error {
		if bytes.Equal(k, applied) {
			return nil
		}
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
		h.Write(k)
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
		h.Write(v)
		p.Wait(ctx, int64(len(k)+len(v)))
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("storage: digest: %w", err)
	}
	return h.Sum(nil), nil
}
