package storage

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cockroachdb/pebble/v2"

	"github.com/continuum-mail/continuum/storage/failpoint"
)

// The snapshot stream (WriteSnapshot, Restore):
//
//	header   "CNTMSNAP" | uint32 version (1) | uint32 flags (0)
//	records  uvarint len(key) | key | uvarint len(value) | value   (keys strictly ascending)
//	end      uvarint 0
//	count    uint64 number of records
//	trailer  SHA-256 of every byte above
//
// Integers are big-endian. Keys must parse (ParseKey) and be at most
// MaxKeySize bytes; values at most maxValueSize.
const (
	streamMagic   = "CNTMSNAP"
	streamVersion = 1
	maxValueSize  = 1 << 30
	// restoreBatchSize is how much a restore buffers before committing a
	// batch into the staged database.
	restoreBatchSize = 4 << 20
)

// Digest returns a SHA-256 over every key and value in key order, except
// meta/applied: a digest describes the state, not how far the log has been
// read (a configuration entry advances meta/applied and changes nothing else).
// Blobs are hashed as stored, compressed.
func (db *DB) Digest() ([]byte, error) {
	s := db.Snapshot()
	defer s.Close()
	return s.Digest()
}

// Digest is DB.Digest over this view.
func (s *Snap) Digest() ([]byte, error) {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	applied := metaKey(MetaApplied)
	err := s.scan([]byte{0}, []byte{byte(familyEnd)}, func(k, v []byte) error {
		if bytes.Equal(k, applied) {
			return nil
		}
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
		h.Write(k)
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
		h.Write(v)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: digest: %w", err)
	}
	return h.Sum(nil), nil
}

// WriteSnapshot writes a consistent snapshot of the whole database to w in
// the stream format above. It holds a read view (and so the read lock) until
// it returns.
func (db *DB) WriteSnapshot(w io.Writer) error {
	s := db.Snapshot()
	defer s.Close()
	return s.WriteSnapshot(w)
}

// WriteSnapshot writes this view in the snapshot stream format.
func (s *Snap) WriteSnapshot(w io.Writer) error {
	if failpoint.Hit(failpoint.StorageSnapshot, 0) { // test-only (tag failpoints)
		return fmt.Errorf("storage: snapshot: %w", failpoint.ErrInjected)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	h := sha256.New()
	mw := io.MultiWriter(bw, h)
	hdr := make([]byte, 0, 16)
	hdr = append(hdr, streamMagic...)
	hdr = binary.BigEndian.AppendUint32(hdr, streamVersion)
	hdr = binary.BigEndian.AppendUint32(hdr, 0)
	if _, err := mw.Write(hdr); err != nil {
		return fmt.Errorf("storage: write snapshot: %w", err)
	}
	var count uint64
	var n [256]byte
	err := s.scan([]byte{0}, []byte{byte(familyEnd)}, func(k, v []byte) error {
		count++
		rec := binary.AppendUvarint(n[:0], uint64(len(k)))
		rec = append(rec, k...)
		rec = binary.AppendUvarint(rec, uint64(len(v)))
		if _, err := mw.Write(rec); err != nil {
			return err
		}
		_, err := mw.Write(v)
		return err
	})
	if err == nil {
		tail := append([]byte{0}, binary.BigEndian.AppendUint64(nil, count)...)
		_, err = mw.Write(tail)
	}
	if err == nil {
		_, err = bw.Write(h.Sum(nil))
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("storage: write snapshot: %w", err)
	}
	return nil
}

// Restore replaces the database with the snapshot stream r. See
// RestoreChecked.
func (db *DB) Restore(r io.Reader) error { return db.RestoreChecked(r, nil) }

// RestoreChecked reads r fully into a fresh pebble directory beside the live
// one, verifies its framing, key order and checksum, calls check (when not
// nil) with the live and the staged state, and only then swaps the staged
// directory in: CURRENT-STATE is replaced by a rename under the write lock,
// so a crash leaves either the old or the new state, never a mixture. Any
// error leaves the live database untouched. Errors caused by the stream wrap
// ErrCorrupt.
func (db *DB) RestoreChecked(r io.Reader, check func(live, staged Reader) error) error {
	db.restoreMu.Lock()
	defer db.restoreMu.Unlock()

	db.mu.RLock()
	closed, cur := db.closed, db.cur
	db.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	n, _ := parseStateDirName(cur)
	name := stateDirName(n + 1)
	path := db.fs.PathJoin(db.dir, name)
	if err := db.fs.RemoveAll(path); err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	staged, err := db.openPebble(path)
	if err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			_ = staged.Close()
			_ = db.fs.RemoveAll(path)
		}
	}()
	if err := readStream(r, staged, !db.opts.NoSync); err != nil {
		return fmt.Errorf("storage: restore: %w", err)
	}
	if check != nil {
		live := db.Snapshot()
		ss := staged.NewSnapshot()
		err := check(live, reader{r: ss})
		_ = ss.Close()
		_ = live.Close()
		if err != nil {
			return fmt.Errorf("storage: restore refused: %w", err)
		}
	}

	db.cancelBackground()
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return ErrClosed
	}
	if err := db.writeCurrent(name); err != nil {
		db.mu.Unlock()
		return fmt.Errorf("storage: restore: switch to %s: %w", name, err)
	}
	old, oldName := db.pdb, db.cur
	db.pdb, db.cur = staged, name
	// No batch is open (the write lock): the filter is rebuilt for the new
	// state before any can be; without one every lookup reads Pebble.
	filter, ferr := buildKeyFilter(staged)
	if ferr != nil {
		db.logger.Warn("no key filter for the restored state (lookups read Pebble)", "err", ferr)
	}
	db.filter = filter
	db.floorMu.Lock()
	db.dedupeFloorKnown = false
	db.floorMu.Unlock()
	swapped = true
	db.mu.Unlock()

	if err := old.Close(); err != nil {
		db.logger.Error("closing the replaced state database", "dir", oldName, "err", err)
	}
	if err := db.fs.RemoveAll(db.fs.PathJoin(db.dir, oldName)); err != nil {
		db.logger.Warn("cannot remove the replaced state directory", "dir", oldName, "err", err)
	}
	db.logger.Info("state restored from snapshot", "dir", name)
	return nil
}

// hashingReader hashes every byte read through it.
type hashingReader struct {
	r *bufio.Reader
	h hash.Hash
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

func (hr *hashingReader) ReadByte() (byte, error) {
	c, err := hr.r.ReadByte()
	if err == nil {
		hr.h.Write([]byte{c})
	}
	return c, err
}

// readN reads exactly n bytes into buf (reused), growing it as data arrives
// so that a forged length cannot allocate more than the stream holds.
func readN(r io.Reader, n uint64, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for n > 0 {
		chunk := min(n, 1<<16)
		l := len(buf)
		buf = append(buf, make([]byte, chunk)...)
		if _, err := io.ReadFull(r, buf[l:]); err != nil {
			return nil, err
		}
		n -= chunk
	}
	return buf, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: snapshot stream: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// readStream decodes a snapshot stream into pdb, which must be empty.
func readStream(r io.Reader, pdb *pebble.DB, sync bool) error {
	hr := &hashingReader{r: bufio.NewReaderSize(r, 1<<16), h: sha256.New()}
	eof := func(err error) error {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("truncated")
		}
		return err
	}
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(hr, hdr); err != nil {
		return eof(err)
	}
	if string(hdr[:8]) != streamMagic {
		return corrupt("bad magic %q", hdr[:8])
	}
	if v := binary.BigEndian.Uint32(hdr[8:]); v != streamVersion {
		return corrupt("unknown version %d", v)
	}
	if f := binary.BigEndian.Uint32(hdr[12:]); f != 0 {
		return corrupt("unknown flags %#x", f)
	}
	var (
		count     uint64
		prev, key []byte
		val       []byte
	)
	batch := pdb.NewBatch()
	defer func() { _ = batch.Close() }()
	for {
		klen, err := binary.ReadUvarint(hr)
		if err != nil {
			return eof(err)
		}
		if klen == 0 {
			break
		}
		if klen > MaxKeySize {
			return corrupt("key of %d bytes", klen)
		}
		if key, err = readN(hr, klen, key); err != nil {
			return eof(err)
		}
		if _, err := ParseKey(key); err != nil {
			return corrupt("record %d: %v", count, err)
		}
		if prev != nil && bytes.Compare(key, prev) <= 0 {
			return corrupt("record %d: keys out of order", count)
		}
		vlen, err := binary.ReadUvarint(hr)
		if err != nil {
			return eof(err)
		}
		if vlen > maxValueSize {
			return corrupt("value of %d bytes", vlen)
		}
		if val, err = readN(hr, vlen, val); err != nil {
			return eof(err)
		}
		if err := batch.Set(key, val, nil); err != nil {
			return err
		}
		prev = append(prev[:0], key...)
		count++
		if batch.Len() >= restoreBatchSize {
			if err := batch.Commit(pebble.NoSync); err != nil {
				return err
			}
			_ = batch.Close()
			batch = pdb.NewBatch()
		}
	}
	var cnt [8]byte
	if _, err := io.ReadFull(hr, cnt[:]); err != nil {
		return eof(err)
	}
	if c := binary.BigEndian.Uint64(cnt[:]); c != count {
		return corrupt("count %d, read %d records", c, count)
	}
	want := hr.h.Sum(nil)
	got := make([]byte, sha256.Size)
	if _, err := io.ReadFull(hr.r, got); err != nil {
		return eof(err)
	}
	if !bytes.Equal(got, want) {
		return corrupt("checksum mismatch")
	}
	if _, err := hr.r.ReadByte(); err != io.EOF {
		if err == nil {
			return corrupt("data after the trailer")
		}
		return err
	}
	wo := pebble.NoSync
	if sync {
		wo = pebble.Sync
	}
	// Committing with Sync syncs the WAL, which holds the earlier unsynced
	// batches too.
	if err := batch.Set(metaKey(restoreMarker), nil, nil); err != nil {
		return err
	}
	if err := batch.Delete(metaKey(restoreMarker), nil); err != nil {
		return err
	}
	return batch.Commit(wo)
}

// restoreMarker is a meta row written and deleted in the last restore batch
// so that batch is never empty (an empty batch commit does not sync).
const restoreMarker = "restore-marker"
