package storage

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// TestKeyFilter: a key added is never reported absent, across the growth
// of the filter; keys never added mostly are.
func TestKeyFilter(t *testing.T) {
	f := newKeyFilter(0)
	key := func(i int) []byte {
		s := sha256.Sum256([]byte(fmt.Sprint(i)))
		return bytesKey(FamilyBlobRef, s[:])
	}
	const n = 3 * filterMinKeys // three parts
	for i := 0; i < n; i++ {
		f.add(key(i))
	}
	if len(f.parts) < 2 {
		t.Fatalf("%d parts after %d keys", len(f.parts), n)
	}
	for i := 0; i < n; i++ {
		if f.absent(key(i)) {
			t.Fatalf("key %d added but reported absent", i)
		}
	}
	fp := 0
	for i := n; i < 2*n; i++ {
		if !f.absent(key(i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.02 {
		t.Errorf("false-positive rate %.4f", rate)
	}
}

// TestKeyFilterState: blob references and dedupe entries are found through
// a batch after a commit, after a reopen (the filter rebuilt from the
// database) and after a Restore (rebuilt from the restored state), and a
// missing one is not found.
func TestKeyFilterState(t *testing.T) {
	fs := vfs.NewMem()
	db, err := Open("state", Options{FS: fs, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	put := func(db *DB, i int) {
		b := db.NewBatch()
		defer b.Close()
		data := []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))
		sum := sha256.Sum256(data)
		if _, err := b.PutBlob(sum[:], data, nil); err != nil {
			t.Fatal(err)
		}
		if err := b.PutDedupe([]byte(fmt.Sprint("key", i)), &storagepb.Dedupe{MailboxId: 1, Uid: uint32(i + 1), ExpiresUnixNano: 1 << 62}); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
	}
	check := func(db *DB, what string, present, absent []int) {
		t.Helper()
		b := db.NewBatch()
		defer b.Close()
		for _, i := range present {
			sum := sha256.Sum256([]byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)))
			if r, err := b.BlobRef(sum[:]); err != nil || r.Refs != 1 {
				t.Errorf("%s: blob %d: %v %v", what, i, r, err)
			}
			if d, err := b.Dedupe([]byte(fmt.Sprint("key", i))); err != nil || d.Uid != uint32(i+1) {
				t.Errorf("%s: dedupe %d: %v %v", what, i, d, err)
			}
		}
		for _, i := range absent {
			sum := sha256.Sum256([]byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)))
			if _, err := b.BlobRef(sum[:]); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: blob %d present: %v", what, i, err)
			}
		}
	}
	put(db, 1)
	put(db, 2)
	check(db, "committed", []int{1, 2}, []int{3})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open("state", Options{FS: fs, NoSync: true, Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db, "reopened", []int{1, 2}, []int{3})

	src, err := Open("src", Options{FS: fs, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	put(src, 7)
	var buf bytes.Buffer
	if err := src.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	if err := db.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	check(db, "restored", []int{7}, []int{1, 2})
}
