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

	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage/scrub"
)

// flipMiddle XORs one byte in the middle of the largest sstable of the
// state directory cur under dir and returns its path.
func flipMiddle(t *testing.T, dir, cur string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, cur, "*.sst"))
	if len(m) == 0 {
		t.Fatal("no sstable")
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
	path := flipMiddle(t, dir, cur)

	var reported atomic.Int32
	db, err = Open(dir, Options{OnCorruption: func(error) { reported.Add(1) }})
	if err != nil {
		t.Fatalf("Open: %v (the seal skips blobs, so this damage passes it)", err)
	}
	st, err := db.Scrub(context.Background(), 64<<20)
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
		t.Fatal("every blob read back although a block under them is damaged")
	}
	if reported.Load() != 1 {
		t.Fatalf("OnCorruption called %d times; want once", reported.Load())
	}
	db.Close()
	if _, err := os.Stat(filepath.Join(dir, sealFile)); !os.IsNotExist(err) {
		t.Fatalf("a damaged database was sealed: %v", err)
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
