// Package scrub finds silent damage in a Pebble database before anyone
// reads it, and turns damage found at run time into an orderly report
// instead of Pebble's default (a fatal log line, a panic).
//
// Pebble checks a block's CRC32C when it reads it, so a flipped bit in a
// block nobody reads — an old message's blob, a mailbox nobody opens — goes
// unnoticed until the day it is needed, perhaps after the other replicas are
// gone. Tables reads every block of every live sstable at a bounded rate,
// so on a database of S bytes at R bytes/s every bit is checked within S/R
// plus the pause between passes (the node's scrub loop; see node/doc.go).
//
// Tables opens each table file directly (read only, through the same vfs.FS
// as Pebble), so it competes with nothing but the disk; a table that a
// compaction removed since the listing is skipped: its data lives on in the
// compaction's output, which the next pass reads. The footer of a table is
// not a checksummed block; a flip there makes the table unreadable instead,
// which Tables reports as damage too.
//
// Listener returns the pebble.EventListener that routes Pebble's
// DataCorruption event (raised on any read of a damaged block: a user read,
// a compaction, a flush) to a callback. Pebble calls it synchronously on
// the read path, so the callback must not block.
package scrub

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrDamaged is wrapped by every error that reports a damaged file.
var ErrDamaged = errors.New("on-disk corruption")

// Stats describes one pass of Tables.
type Stats struct {
	Tables  int           // tables read whole
	Skipped int           // tables removed by a compaction before they were read
	Bytes   int64         // bytes read
	Took    time.Duration // wall time, pauses included
}

// List returns the paths of db's live local sstables, whose files are in
// dir on fs.
func List(db *pebble.DB, fs vfs.FS, dir string) ([]string, error) {
	if fs == nil {
		fs = vfs.Default
	}
	levels, err := db.SSTables()
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, level := range levels {
		for _, t := range level {
			if t.BackingType == pebble.BackingTypeLocal {
				paths = append(paths, fs.PathJoin(dir, fmt.Sprintf("%06d.sst", uint64(t.BackingSSTNum))))
			}
		}
	}
	return paths, nil
}

// Tables reads and checks every block of the tables at paths (from List)
// at no more than bytesPerSec (0: no limit). It returns the first damaged
// table as an error wrapping ErrDamaged and naming the file, or ctx's
// error. A table gone since the listing is skipped.
func Tables(ctx context.Context, fs vfs.FS, paths []string, bytesPerSec int64) (Stats, error) {
	if fs == nil {
		fs = vfs.Default
	}
	var st Stats
	p := NewPacer(bytesPerSec)
	for _, path := range paths {
		n, err := checkTable(ctx, fs, path, p)
		st.Bytes += n
		switch {
		case err == nil:
			st.Tables++
		case errors.Is(err, errGone):
			st.Skipped++
		default:
			st.Took = p.Elapsed()
			return st, err
		}
	}
	st.Took = p.Elapsed()
	return st, nil
}

var errGone = errors.New("table removed")

func checkTable(ctx context.Context, fs vfs.FS, path string, lim *Pacer) (int64, error) {
	f, err := fs.Open(path)
	if err != nil {
		if oserror.IsNotExist(err) {
			return 0, errGone
		}
		return 0, err
	}
	rf := &pacedFile{File: f, ctx: ctx, lim: lim}
	readable, err := sstable.NewSimpleReadable(rf)
	if err != nil {
		f.Close()
		return 0, err
	}
	r, err := sstable.NewReader(ctx, readable, sstable.ReaderOptions{})
	if err != nil {
		readable.Close()
		if cerr := ctx.Err(); cerr != nil {
			return rf.n, cerr
		}
		return rf.n, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	err = r.ValidateBlockChecksums()
	r.Close() // closes readable
	if cerr := ctx.Err(); cerr != nil {
		return rf.n, cerr
	}
	if err != nil {
		return rf.n, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	return rf.n, nil
}

// pacedFile counts what is read and paces it.
type pacedFile struct {
	vfs.File
	ctx context.Context
	lim *Pacer
	n   int64
}

func (p *pacedFile) ReadAt(b []byte, off int64) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.File.ReadAt(b, off)
	p.n += int64(n)
	p.lim.Wait(p.ctx, int64(n))
	return n, err
}

// Pacer keeps a reader's average rate since its creation at or below a
// bound, by sleeping. It is not safe for concurrent use.
type Pacer struct {
	rate  int64
	start time.Time
	total int64
}

// NewPacer returns a pacer for bytesPerSec (0 or less: no limit).
func NewPacer(bytesPerSec int64) *Pacer { return &Pacer{rate: bytesPerSec, start: time.Now()} }

// Wait accounts n more bytes and sleeps until the average rate is back
// under the bound, or ctx ends.
func (l *Pacer) Wait(ctx context.Context, n int64) {
	l.total += n
	if l.rate <= 0 {
		return
	}
	due := l.start.Add(time.Duration(float64(l.total) / float64(l.rate) * float64(time.Second)))
	if d := time.Until(due); d > time.Millisecond {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
}

// Elapsed is the time since the pacer was made.
func (l *Pacer) Elapsed() time.Duration { return time.Since(l.start) }

// Listener returns an event listener that calls onCorruption with an error
// wrapping ErrDamaged, naming the file, whenever Pebble finds a damaged
// block. Pebble's default would log fatally (a panic here).
func Listener(onCorruption func(error)) *pebble.EventListener {
	return &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			onCorruption(fmt.Errorf("%w: %s: %v", ErrDamaged, info.Path, info.Details))
		},
	}
}
