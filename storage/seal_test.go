package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// TestSealCatchesRowsLostWhileStopped: a clean Close seals the state; rows
// that vanish before the next Open (as when a MANIFEST loses its last
// record) make Open fail with ErrCorrupt instead of serving less data.
func TestSealCatchesRowsLostWhileStopped(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	for _, name := range []string{"a.test", "b.test", "c.test"} {
		if err := b.PutDomain(&storagepb.Domain{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.SetApplied(7, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, sealFile)); err != nil {
		t.Fatalf("no seal after a clean Close: %v", err)
	}

	// A clean restart passes the check and consumes the seal.
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after a clean Close: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, sealFile)); !os.IsNotExist(err) {
		t.Fatalf("seal still there after Open: %v", err)
	}
	cur := db.cur
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// Damage while stopped: a row disappears behind storage's back.
	p, err := pebble.Open(filepath.Join(dir, cur), &pebble.Options{FormatMajorVersion: formatMajorVersion})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(stringKey(FamilyDomain, "b.test"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a damaged state: %v, want ErrCorrupt", err)
	}
}

// TestNoSealAfterCrash: without a clean Close there is no seal, and Open
// trusts Pebble's own recovery.
func TestNoSealAfterCrash(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	b.PutDomain(&storagepb.Domain{Name: "a.test"})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	// "Crash": close Pebble directly, skipping the seal.
	db.pdb.Close()
	db.closed = true
	if _, err := os.Stat(filepath.Join(dir, sealFile)); !os.IsNotExist(err) {
		t.Fatalf("seal written without a clean Close: %v", err)
	}
	db, err = Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after a crash: %v", err)
	}
	db.Close()
}
