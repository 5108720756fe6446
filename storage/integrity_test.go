package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage/scrub"
)

// flipMiddle XORs one byte in the middle of the largest sstable of the
// state directory cur under dir and returns its path.
func flipMiddle(t *testing.T, dir, cur string) string {
	t.Helper()
	return flipLargest(t, dir, cur, "*.sst")
}

// flipLargest flips a byte in the middle of the largest file of the state
// directory cur matching glob.
func flipLargest(t *testing.T, dir, cur, glob string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, cur, glob))
	if len(m) == 0 {
		t.Fatalf("no %s file", glob)
	}
	sort.Slice(m, func(i, j int) bool {
		a, _ := os.Stat(m[i])
		b, _ := os.Stat(m[j])
		return a.Size() > b.Size()
	})
	f, err := os.OpenFile(m[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	b := make([]byte, 1)
	off := fi.Size() / 2
	f.ReadAt(b, off)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	return m[0]
}

// TestScrubFindsDamageNobodyRead: a flipped byte inside a blob block passes
// the start-up seal check (which skips blobs), is found by Scrub, and a
// read of the damaged block fails with an error and reports the damage
// instead of panicking; the damaged database is not sealed at Close.
func TestScrubFindsDamageNobodyRead(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Messages under valueSeparationMin stay in the sstables (larger ones
	// go to blob files: TestScrubFindsDamageInBlobFile).
	var shas [][]byte
	b := db.NewBatch()
	for i := 0; i < 3000; i++ {
		body := make([]byte, 800)
		rand.Read(body)
		sum := sha256.Sum256(body)
		shas = append(shas, sum[:])
		if _, err := b.PutBlob(sum[:], body, &storagepb.ParsedMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	b.SetApplied(1, 1)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	cur := db.cur
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	path := flipMiddle(t, dir, cur)

	db, reported := reopenAndScrub(t, dir, path, shas, 64<<20, "every blob read back although a block under them is damaged")
	if reported.Load() != 1 {
		t.Fatalf("OnCorruption called %d times; want once", reported.Load())
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, sealFile)); !os.IsNotExist(err) {
		t.Fatalf("a damaged database was sealed: %v", err)
	}
}

// TestScrubFindsDamageInBlobFile: message bytes live in Pebble blob files
// (value separation), which are not sstables; a flipped byte in one is found
// by Scrub before anyone reads the message, and reported once.
func TestScrubFindsDamageInBlobFile(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var shas [][]byte
	b := db.NewBatch()
	for i := 0; i < 300; i++ {
		body := make([]byte, 8<<10)
		rand.Read(body)
		sum := sha256.Sum256(body)
		shas = append(shas, sum[:])
		if _, err := b.PutBlob(sum[:], body, &storagepb.ParsedMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	b.SetApplied(1, 1)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	cur := db.cur
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var sst, blob int64
	for glob, n := range map[string]*int64{"*.sst": &sst, "*.blob": &blob} {
		m, _ := filepath.Glob(filepath.Join(dir, cur, glob))
		for _, p := range m {
			fi, _ := os.Stat(p)
			*n += fi.Size()
		}
	}
	if blob < 300*(8<<10) || sst >= blob/4 {
		t.Fatalf("blob files %d bytes, sstables %d bytes: want the 2.4 MB of message bytes in blob files", blob, sst)
	}
	path := flipLargest(t, dir, cur, "*.blob")

	db, _ = reopenAndScrub(t, dir, path, shas, 0, "every blob read back although a block of the blob file under them is damaged")
	defer db.Close()
}

// TestOpenRatchetsOlderFormat: a state directory written before value
// separation (FormatWALSyncChunks, no blob files) opens with its data,
// ratcheted to formatMajorVersion, and new large values then go to blob
// files while the old ones stay readable.
func TestOpenRatchetsOlderFormat(t *testing.T) {
	dir := t.TempDir()
	put := func(db *DB, n int) [][]byte {
		var shas [][]byte
		b := db.NewBatch()
		defer b.Close()
		for i := 0; i < n; i++ {
			body := make([]byte, 8<<10)
			rand.Read(body)
			sum := sha256.Sum256(body)
			shas = append(shas, sum[:])
			if _, err := b.PutBlob(sum[:], body, &storagepb.ParsedMessage{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		return shas
	}
	db, err := Open(dir, Options{format: pebble.FormatWALSyncChunks})
	if err != nil {
		t.Fatal(err)
	}
	old := put(db, 100)
	cur := db.cur
	db.Close()
	if m, _ := filepath.Glob(filepath.Join(dir, cur, "*.blob")); len(m) != 0 {
		t.Fatalf("blob files %v written at the old format", m)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open of the older format: %v", err)
	}
	if got := db.pdb.FormatMajorVersion(); got != formatMajorVersion {
		t.Fatalf("format %v after Open, want %v", got, formatMajorVersion)
	}
	fresh := put(db, 100)
	db.Close()
	if m, _ := filepath.Glob(filepath.Join(dir, cur, "*.blob")); len(m) == 0 {
		t.Fatal("no blob file after the ratchet: value separation is off")
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := db.Snapshot()
	defer s.Close()
	for _, sha := range append(old, fresh...) {
		if _, err := s.Blob(sha); err != nil {
			t.Fatalf("blob %x: %v", sha[:4], err)
		}
	}
	if st, err := db.Scrub(context.Background(), 0); err != nil || st.Tables == 0 {
		t.Fatalf("Scrub = %+v, %v", st, err)
	}
}

// TestScrubCleanDatabase: a healthy database scrubs clean, every table read.
func TestScrubCleanDatabase(t *testing.T) {
	db, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	b := db.NewBatch()
	for _, name := range []string{"a.test", "b.test"} {
		b.PutDomain(&storagepb.Domain{Name: name})
	}
	b.Commit(true)
	b.Close()
	db.pdb.Flush()
	st, err := db.Scrub(context.Background(), 0)
	if err != nil || st.Tables == 0 || st.Bytes == 0 {
		t.Fatalf("Scrub = %+v, %v; want at least one table read, no error", st, err)
	}
}

// reopenAndScrub opens dir, where a byte of path was flipped, scrubs it at
// rate, and checks that Scrub finds the damage, that it is reported once,
// and that some of the blobs shas fails to read (else it fails with
// noneFailed). The caller closes the DB.
func reopenAndScrub(t *testing.T, dir, path string, shas [][]byte, rate int64, noneFailed string) (*DB, *atomic.Int32) {
	t.Helper()
	reported := new(atomic.Int32)
	db, err := Open(dir, Options{OnCorruption: func(error) { reported.Add(1) }})
	if err != nil {
		t.Fatalf("Open: %v (the seal skips blobs, so this damage passes it)", err)
	}
	st, err := db.Scrub(context.Background(), rate)
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, scrub.ErrDamaged) {
		t.Fatalf("Scrub = %+v, %v; want the damage of %s", st, err, path)
	}
	if reported.Load() != 1 || db.Damaged() == nil {
		t.Fatalf("OnCorruption called %d times, Damaged() = %v; want once and set", reported.Load(), db.Damaged())
	}
	failed := 0
	s := db.Snapshot()
	for _, sha := range shas {
		if _, err := s.Blob(sha); err != nil {
			failed++
		}
	}
	s.Close()
	if failed == 0 {
		t.Fatal(noneFailed)
	}
	return db, reported
}
