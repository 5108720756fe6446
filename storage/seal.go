package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// sealFile, beside CURRENT-STATE, is written by a clean Close and checked
// (then removed) by the next Open. It closes a gap Pebble cannot see: a
// MANIFEST that lost its last whole record (a truncated or damaged file
// cut at a record boundary) reads as a clean end of file, so Pebble opens
// without the sstables that record added, while the WAL that held their
// data is long gone: rows vanish silently (node/clustertest F14). A crash
// cannot produce that state — Pebble syncs the MANIFEST before it drops a
// WAL — so after a crash there is no seal and nothing to compare; after a
// clean stop, the state must be exactly what was sealed.
//
// The seal digests every row but the blob/ family, which it skips without
// reading (blob bytes are the bulk of the store; their existence is
// vouched for by blobref/ rows, and their bytes by Pebble's block
// checksums when read). Metadata and message rows are small, so the scan
// costs about a second per million messages, and any lost flush holds such
// rows.
const sealFile = "SEAL"

// metaDigest hashes every key and value of r outside the blob/ family.
func metaDigest(r reader) ([]byte, uint64, error) {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	var rows uint64
	row := func(k, v []byte) error {
		rows++
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(k)))])
		h.Write(k)
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
		h.Write(v)
		return nil
	}
	if err := r.scan([]byte{0}, []byte{byte(FamilyBlob)}, row); err != nil {
		return nil, 0, err
	}
	if err := r.scan([]byte{byte(FamilyBlob) + 1}, []byte{byte(familyEnd)}, row); err != nil {
		return nil, 0, err
	}
	return h.Sum(nil), rows, nil
}

// seal writes the seal of the closed-over state directory cur.
func (db *DB) seal(cur string) error {
	d, rows, err := metaDigest(reader{r: db.pdb})
	if err != nil {
		return err
	}
	applied, _, _ := reader{r: db.pdb}.applied()
	body := fmt.Sprintf("%s %d %d %s\n", cur, applied, rows, hex.EncodeToString(d))
	return db.writeFileSynced(sealFile, []byte(body))
}

// checkSeal compares the just-opened state with the seal of the last clean
// Close, then removes the seal (from now on the state changes). No seal:
// nothing to check (first start, or a crash).
func (db *DB) checkSeal(pdb *pebble.DB, cur string) error {
	path := db.fs.PathJoin(db.dir, sealFile)
	f, err := db.fs.Open(path)
	if err != nil {
		if oserrNotExist(err) {
			return nil
		}
		return err
	}
	b, err := io.ReadAll(io.LimitReader(f, 512))
	f.Close()
	if err != nil {
		return err
	}
	fields := strings.Fields(string(b))
	if len(fields) != 4 {
		return fmt.Errorf("%w: %s is malformed: %q", ErrCorrupt, sealFile, b)
	}
	if fields[0] == cur {
		want, err := hex.DecodeString(fields[3])
		if err != nil {
			return fmt.Errorf("%w: %s is malformed: %q", ErrCorrupt, sealFile, b)
		}
		got, rows, err := metaDigest(reader{r: pdb})
		if err != nil {
			return fmt.Errorf("%w: reading the state to check its seal: %v", ErrCorrupt, err)
		}
		applied, _, _ := reader{r: pdb}.applied()
		if !bytes.Equal(got, want) {
			return fmt.Errorf("%w: the state database is not what its last clean shutdown left "+
				"(sealed: applied %s, %s rows; found: applied %d, %d rows): a file in %s was damaged; "+
				"wipe the data directory and let the node rejoin",
				ErrCorrupt, fields[1], fields[2], applied, rows, db.dir)
		}
		db.logger.Info("state matches its shutdown seal", "applied", applied, "rows", rows)
	}
	// A seal of another state directory (a Restore swapped it) says
	// nothing about this one.
	if err := db.fs.Remove(path); err != nil {
		return err
	}
	return syncDir(db.fs, db.dir)
}

// writeFileSynced writes name in the DB directory atomically and durably.
func (db *DB) writeFileSynced(name string, body []byte) error {
	tmp := db.fs.PathJoin(db.dir, name+".tmp")
	f, err := db.fs.Create(tmp, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	if _, err = f.Write(body); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := db.fs.Rename(tmp, db.fs.PathJoin(db.dir, name)); err != nil {
		return err
	}
	return syncDir(db.fs, db.dir)
}

func syncDir(fs vfs.FS, dir string) error {
	d, err := fs.OpenDir(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
