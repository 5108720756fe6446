package raftlog

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// sealFile, inside the log's directory (Pebble ignores files it does not
// know), is written by a clean Close and checked, then removed, by the
// next Open: the log must be exactly what was sealed. It closes the gap
// storage/seal.go closes for the state: Pebble reads a MANIFEST record that
// fails its checksum as the end of the file, so damage there can open an
// older version of the log silently, without the entries of the newest
// flush. A Raft voter that forgets entries it acknowledged breaks Raft's
// safety. After a crash there is no seal and Pebble's WAL recovery
// (FormatWALSyncChunks) applies.
const sealFile = "CONTINUUM-SEAL"

// digest hashes every key and value of the database.
func digest(db *pebble.DB) (string, uint64, error) {
	it, err := db.NewIter(nil)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	var rows uint64
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return "", 0, err
		}
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(it.Key())))])
		h.Write(it.Key())
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
		h.Write(v)
		rows++
	}
	if err := it.Close(); err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), rows, nil
}

// seal writes the seal of the log as it is now (the database still open).
func (s *Store) seal() error {
	d, rows, err := digest(s.db)
	if err != nil {
		return err
	}
	body := fmt.Sprintf("%d %d %d %s\n", s.first.Load(), s.last.Load(), rows, d)
	path := s.fs.PathJoin(s.dir, sealFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o640); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// checkSeal compares the opened log with the seal of the last clean Close
// and removes the seal.
func (s *Store) checkSeal() error {
	path := s.fs.PathJoin(s.dir, sealFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
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
	got, rows, err := digest(s.db)
	if err != nil {
		return fmt.Errorf("%w: reading the log to check its seal: %v", ErrCorrupt, err)
	}
	if got != fields[3] {
		return fmt.Errorf("%w: the raft log is not what its last clean shutdown left (sealed: entries %s..%s, %s rows; found: entries %d..%d, %d rows): a file in %s was damaged",
			ErrCorrupt, fields[0], fields[1], fields[2], s.first.Load(), s.last.Load(), rows, s.dir)
	}
	s.logger.Info("raft log matches its shutdown seal", "first", s.first.Load(), "last", s.last.Load(), "rows", rows)
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDir(s.dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
