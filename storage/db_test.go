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

func openTest(t testing.TB, fs vfs.FS) *DB {
	t.Helper()
	db, err := Open("db", Options{FS: fs, NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func commit(t testing.TB, db *DB, fn func(b *Batch) error) {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	if err := fn(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
}

func sum(data []byte) []byte { s := sha256.Sum256(data); return s[:] }

func TestBlobRefcount(t *testing.T) {
	db := openTest(t, vfs.NewMem())
	data := bytes.Repeat([]byte("Subject: hi\r\n\r\nbody\r\n"), 100)
	sha := sum(data)
	parsed := &storagepb.ParsedMessage{Envelope: &storagepb.Envelope{Subject: "hi"}}

	commit(t, db, func(b *Batch) error {
		for i, wantNew := range []bool{true, false, false} {
			created, err := b.PutBlob(sha, data, parsed)
			if err != nil {
				return err
			}
			if created != wantNew {
				return fmt.Errorf("PutBlob #%d created = %v, want %v", i, created, wantNew)
			}
		}
		return b.RefBlob(sha)
	})
	s := db.Snapshot()
	ref, err := s.BlobRef(sha)
	if err != nil || ref.Refs != 4 || ref.Size != uint64(len(data)) {
		t.Fatalf("BlobRef = %v, %v; want 4 refs of %d bytes", ref, err, len(data))
	}
	got, err := s.Blob(sha)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Blob = %d bytes, %v; want the data back", len(got), err)
	}
	if p, err := s.Parsed(sha); err != nil || p.GetEnvelope().GetSubject() != "hi" {
		t.Fatalf("Parsed = %v, %v", p, err)
	}
	// Stored once, compressed: one blob row, smaller than the data.
	n, stored := 0, 0
	_ = s.scan([]byte{byte(FamilyBlob)}, []byte{byte(FamilyBlob) + 1}, func(_, v []byte) error { n++; stored = len(v); return nil })
	if n != 1 || stored >= len(data) {
		t.Fatalf("blob rows = %d, stored %d bytes of %d", n, stored, len(data))
	}
	s.Close()

	for i := 0; i < 4; i++ {
		commit(t, db, func(b *Batch) error {
			deleted, err := b.ReleaseBlob(sha)
			if err == nil && deleted != (i == 3) {
				err = fmt.Errorf("release #%d deleted = %v", i, deleted)
			}
			return err
		})
	}
	s = db.Snapshot()
	defer s.Close()
	for _, f := range []func([]byte) error{
		func(h []byte) error { _, err := s.Blob(h); return err },
		func(h []byte) error { _, err := s.BlobRef(h); return err },
		func(h []byte) error { _, err := s.Parsed(h); return err },
	} {
		if err := f(sha); !errors.Is(err, ErrNotFound) {
			t.Errorf("after the last release: err = %v, want ErrNotFound", err)
		}
	}
	b := db.NewBatch()
	defer b.Close()
	if _, err := b.ReleaseBlob(sha); !errors.Is(err, ErrNotFound) {
		t.Errorf("release of a missing blob: %v, want ErrNotFound", err)
	}
}

// fill writes a bit of every family.
func fill(t testing.TB, db *DB, n int) {
	commit(t, db, func(b *Batch) error {
		if err := b.PutDomain(&storagepb.Domain{Name: "example.test"}); err != nil {
			return err
		}
		for u := 1; u <= n; u++ {
			uid, err := b.NextUserID()
			if err != nil {
				return err
			}
			if err := b.PutUser(&storagepb.User{Id: uid, Email: fmt.Sprintf("u%d@example.test", u)}); err != nil {
				return err
			}
			mid, _ := b.NextMailboxID()
			uv, _ := b.NextUIDValidity()
			mb := &storagepb.Mailbox{Id: mid, UserId: uid, Name: "INBOX", UidValidity: uv, UidNext: 1}
			for i := 0; i < 5; i++ {
				data := []byte(fmt.Sprintf("message %d %d", u, i%3))
				if _, err := b.PutBlob(sum(data), data, nil); err != nil {
					return err
				}
				mb.HighestModseq++
				m := &storagepb.Message{Uid: mb.UidNext, Blob: sum(data), Size: uint64(len(data)), Modseq: mb.HighestModseq}
				mb.UidNext++
				if err := b.PutMessage(mid, m, 0); err != nil {
					return err
				}
				if err := b.PutDedupe([]byte(fmt.Sprintf("k%d-%d", u, i)), &storagepb.Dedupe{MailboxId: mid, Uid: m.Uid, ExpiresUnixNano: int64(i)}); err != nil {
					return err
				}
			}
			if err := b.PutMailbox(mb); err != nil {
				return err
			}
		}
		if _, err := b.AdvanceLogTime(42); err != nil {
			return err
		}
		return b.SetApplied(uint64(n*10), 3)
	})
}

func TestReads(t *testing.T) {
	db := openTest(t, vfs.NewMem())
	fill(t, db, 2)
	s := db.Snapshot()
	defer s.Close()
	u, err := s.UserByEmail("u2@example.test")
	if err != nil || u.Id != 2 {
		t.Fatalf("UserByEmail = %v, %v", u, err)
	}
	mb, err := s.MailboxByName(2, "INBOX")
	if err != nil || mb.Id != 2 || mb.UidNext != 6 {
		t.Fatalf("MailboxByName = %v, %v", mb, err)
	}
	if _, err := s.MailboxByName(1, "Nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing mailbox: %v", err)
	}
	var uids []uint32
	if err := s.Messages(2, 2, 4, func(m *storagepb.Message) error { uids = append(uids, m.Uid); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(uids) != "[2 3 4]" {
		t.Fatalf("Messages(2..4) = %v", uids)
	}
	uids = nil
	if err := s.Messages(2, 4, 0, func(m *storagepb.Message) error { uids = append(uids, m.Uid); return nil }); err != nil || fmt.Sprint(uids) != "[4 5]" {
		t.Fatalf("Messages(4..*) = %v, %v", uids, err)
	}
	var seqs []uint64
	if err := s.Changes(2, 3, func(ms uint64, e *storagepb.ModSeqEntry) error { seqs = append(seqs, ms); return nil }); err != nil || fmt.Sprint(seqs) != "[4 5]" {
		t.Fatalf("Changes(since 3) = %v, %v", seqs, err)
	}
	if idx, term, err := db.Applied(); err != nil || idx != 20 || term != 3 {
		t.Fatalf("Applied = %d, %d, %v", idx, term, err)
	}
}

func TestExpireDedupe(t *testing.T) {
	db := openTest(t, vfs.NewMem())
	fill(t, db, 2) // 10 entries, expiring at 0..4
	var n int
	commit(t, db, func(b *Batch) error {
		var err error
		n, err = b.ExpireDedupe(3, 3) // 6 entries expire before 3; at most 3
		return err
	})
	if n != 3 {
		t.Fatalf("expired %d, want 3", n)
	}
	commit(t, db, func(b *Batch) error {
		var err error
		n, err = b.ExpireDedupe(3, 64)
		return err
	})
	if n != 3 {
		t.Fatalf("second pass expired %d, want 3", n)
	}
	s := db.Snapshot()
	defer s.Close()
	if _, err := s.Dedupe([]byte("k1-0")); !errors.Is(err, ErrNotFound) {
		t.Errorf("expired entry still there: %v", err)
	}
	if d, err := s.Dedupe([]byte("k1-3")); err != nil || d.Uid != 4 {
		t.Errorf("live entry: %v, %v", d, err)
	}
}

func TestSnapshotRestore(t *testing.T) {
	src := openTest(t, vfs.NewMem())
	fill(t, src, 20)
	want, err := src.Digest()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := src.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}

	dst := openTest(t, vfs.NewMem())
	fill(t, dst, 3) // different state, replaced wholesale
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	got, err := dst.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("digest after restore %x, want %x", got, want)
	}
	if idx, _, _ := dst.Applied(); idx != 200 {
		t.Fatalf("applied after restore %d, want 200", idx)
	}
	// The restored DB is writable and a second restore works too.
	fill(t, dst, 1)
	if err := dst.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got, _ := dst.Digest(); !bytes.Equal(got, want) {
		t.Fatal("digest after second restore differs")
	}
}

func TestRestoreSurvivesReopen(t *testing.T) {
	fs := vfs.NewMem()
	src := openTest(t, vfs.NewMem())
	fill(t, src, 4)
	var buf bytes.Buffer
	if err := src.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	want, _ := src.Digest()
	db, err := Open("db", Options{FS: fs, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openTest(t, fs)
	if got, _ := db.Digest(); !bytes.Equal(got, want) {
		t.Fatal("digest after reopen differs")
	}
	names, _ := fs.List("db")
	if len(names) != 2 { // CURRENT-STATE and one state directory
		t.Fatalf("db directory holds %v", names)
	}
}

func TestRestoreRejectsCorruptStream(t *testing.T) {
	src := openTest(t, vfs.NewMem())
	fill(t, src, 5)
	var buf bytes.Buffer
	if err := src.WriteSnapshot(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()

	dst := openTest(t, vfs.NewMem())
	fill(t, dst, 2)
	before, _ := dst.Digest()

	cases := map[string][]byte{
		"empty":           nil,
		"truncated":       good[:len(good)/2],
		"no trailer":      good[:len(good)-sha256.Size],
		"extra byte":      append(bytes.Clone(good), 0),
		"bad magic":       append([]byte("XNTMSNAP"), good[8:]...),
		"unknown version": func() []byte { b := bytes.Clone(good); b[11] = 9; return b }(),
	}
	for _, off := range []int{20, len(good) / 3, len(good) - 40, len(good) - 1} {
		b := bytes.Clone(good)
		b[off] ^= 0x10
		cases[fmt.Sprintf("bit flip at %d", off)] = b
	}
	for name, stream := range cases {
		err := dst.Restore(bytes.NewReader(stream))
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: Restore = %v, want ErrCorrupt", name, err)
		}
		if after, _ := dst.Digest(); !bytes.Equal(after, before) {
			t.Fatalf("%s: the live database changed", name)
		}
	}
	// And the refusal by a check leaves it intact too.
	refuse := errors.New("no")
	if err := dst.RestoreChecked(bytes.NewReader(good), func(live, staged Reader) error { return refuse }); !errors.Is(err, refuse) {
		t.Fatalf("RestoreChecked = %v", err)
	}
	if after, _ := dst.Digest(); !bytes.Equal(after, before) {
		t.Fatal("a refused restore changed the live database")
	}
}

func FuzzRestore(f *testing.F) {
	src := openTest(f, vfs.NewMem())
	fill(f, src, 1)
	var buf bytes.Buffer
	if err := src.WriteSnapshot(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:30])
	f.Fuzz(func(t *testing.T, stream []byte) {
		db := openTest(t, vfs.NewMem())
		if err := db.Restore(bytes.NewReader(stream)); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Restore: %v, want ErrCorrupt", err)
			}
			return
		}
		// Accepted: it must re-serialise to the same bytes.
		var out bytes.Buffer
		if err := db.WriteSnapshot(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), stream) {
			t.Fatal("an accepted stream does not round-trip")
		}
	})
}
