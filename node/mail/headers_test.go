package mail

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

// headerStore is a state database holding n messages of one mailbox,
// stored by raftfsm as the cluster stores them (header rows included
// unless noRows: then only the blobs, as stored before header rows).
type headerStore struct {
	db    *storage.DB
	svc   *Service
	shas  [][]byte
	heads []string
}

// realisticMessage is a message with a header block of about 1.5 KiB (three
// Received lines, a DKIM signature) and a text body of about 6 KiB.
func realisticMessage(i int) (string, string) {
	h := fmt.Sprintf("Return-Path: <sender%d@example.org>\r\n", i%50)
	for r := range 3 {
		h += fmt.Sprintf("Received: from relay%d.example.org (relay%d.example.org [192.0.2.%d])\r\n\tby mx.example.test with ESMTPS id %08x\r\n\tfor <alice@example.test>; Mon, 30 Nov 2026 12:%02d:%02d +0000\r\n", r, r, i%250, i*7+r, i%60, r)
	}
	h += "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=sel;\r\n\th=from:to:subject:date:message-id; bh=" + strings.Repeat("Ab9+", 11) + "=;\r\n\tb=" + strings.Repeat("Zm9vYmFy", 40) + "\r\n"
	h += fmt.Sprintf("From: Sender %d <sender%d@example.org>\r\nTo: Alice <alice@example.test>\r\nSubject: Message number %d about the quarterly figures\r\nDate: Mon, 30 Nov 2026 12:%02d:%02d +0000\r\nMessage-ID: <%d.%d@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n", i%50, i%50, i, i%60, i%60, i, i*31)
	var body strings.Builder
	for l := 0; body.Len() < 6<<10; l++ {
		fmt.Fprintf(&body, "Line %d of message %d: the figures for region %d went up by %d.%d percent.\r\n", l, i, l%17, (i*l)%23, l%10)
	}
	return h, body.String()
}

func newHeaderStore(t testing.TB, n int, noRows bool) *headerStore {
	t.Helper()
	db, err := storage.Open("db", storage.Options{FS: vfs.NewMem(), NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	hs := &headerStore{db: db, svc: New(db, nil, nil, Options{})}
	index := uint64(1)
	apply := func(c *commandpb.Command) *commandpb.Result {
		b := db.NewBatch()
		defer b.Close()
		res, _, err := raftfsm.ApplyCommand(b, index, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		index++
		return res
	}
	apply(&commandpb.Command{Op: &commandpb.Command_DomainAdd{DomainAdd: &commandpb.DomainAdd{Name: "example.test"}}})
	apply(&commandpb.Command{Op: &commandpb.Command_UserAdd{UserAdd: &commandpb.UserAdd{Email: "alice@example.test", PasswordHash: []byte("$argon2id$x")}}})
	for i := range n {
		h, body := realisticMessage(i)
		data := []byte(h + body)
		parsed, err := mimeparse.Parse(data, mimeparse.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		hs.shas = append(hs.shas, sum[:])
		hs.heads = append(hs.heads, h)
		blob := &commandpb.Blob{Sha256: sum[:], Zstd: storage.Compress(data), Size: uint64(len(data)), Parsed: parsed}
		if noRows {
			// What apply stored before header rows existed: the blob and
			// its parsed record only.
			b := db.NewBatch()
			if _, err := b.PutBlobCompressed(sum[:], blob.Zstd, blob.Size, parsed); err != nil {
				t.Fatal(err)
			}
			if err := b.Commit(false); err != nil {
				t.Fatal(err)
			}
			b.Close()
			continue
		}
		res := apply(&commandpb.Command{Op: &commandpb.Command_Deliver{Deliver: &commandpb.Deliver{
			Blob: blob, Recipients: []*commandpb.Recipient{{Email: "alice@example.test"}}, InternalDateUnix: 1_700_000_000}}})
		if res.GetCode() != commandpb.Code_CODE_OK || res.GetDeliveries()[0].GetCode() != commandpb.Code_CODE_OK {
			t.Fatalf("deliver %d: %v", i, res)
		}
	}
	return hs
}

func TestHeaderBlocks(t *testing.T) {
	for _, noRows := range []bool{false, true} {
		hs := newHeaderStore(t, 20, noRows)
		snap := hs.db.Snapshot()
		has, err := snap.HasHeaderBlock(hs.shas[0])
		snap.Close()
		if err != nil || has == noRows {
			t.Fatalf("noRows %v: header row present = %v, %v", noRows, has, err)
		}
		seen := 0
		err = hs.svc.HeaderBlocks(hs.shas, func(i int, block []byte) error {
			if string(block) != hs.heads[i] {
				return fmt.Errorf("message %d: header block %q, want %q", i, block, hs.heads[i])
			}
			seen++
			return nil
		})
		if err != nil || seen != len(hs.shas) {
			t.Fatalf("noRows %v: HeaderBlocks: %v after %d", noRows, err, seen)
		}
		one, err := hs.svc.HeaderBlock(hs.shas[3])
		if err != nil || string(one) != hs.heads[3] {
			t.Fatalf("noRows %v: HeaderBlock = %q, %v", noRows, one, err)
		}
	}
	hs := newHeaderStore(t, 1, false)
	for _, sha := range [][]byte{make([]byte, 32), []byte("short")} {
		if _, err := hs.svc.HeaderBlock(sha); !errors.Is(err, ErrNotFound) {
			t.Errorf("HeaderBlock(%x) = %v, want ErrNotFound", sha, err)
		}
	}
}

// BenchmarkHeaderBlocks: the header blocks of 10,000 messages (about 7.5
// KiB each, 1.5 KiB of header) through one view, as FETCH of header fields
// reads them. "decompress" is the path before header rows (whole message
// decompressed, parsed record read, header sliced out); "row" reads the
// header/ rows; "fallback" is HeaderBlock on data without the rows.
func BenchmarkHeaderBlocks(b *testing.B) {
	const n = 10_000
	withRows := newHeaderStore(b, n, false)
	without := newHeaderStore(b, n, true)
	run := func(b *testing.B, db *storage.DB, read func(r storage.Reader, sha []byte) ([]byte, error)) {
		b.ReportAllocs()
		for b.Loop() {
			s := db.Snapshot()
			total := 0
			for _, sha := range withRows.shas {
				h, err := read(s, sha)
				if err != nil {
					b.Fatal(err)
				}
				total += len(h)
			}
			s.Close()
			if total < n*1000 {
				b.Fatalf("%d header bytes", total)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/n, "µs/msg")
	}
	b.Run("decompress", func(b *testing.B) {
		run(b, withRows.db, func(r storage.Reader, sha []byte) ([]byte, error) {
			data, err := r.Blob(sha)
			if err != nil {
				return nil, err
			}
			p, err := r.Parsed(sha)
			if err != nil {
				return nil, err
			}
			return data[p.GetRoot().GetHeaderStart():p.GetRoot().GetHeaderEnd()], nil
		})
	})
	b.Run("row", func(b *testing.B) { run(b, withRows.db, headerBlock) })
	b.Run("rows-one-iterator", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s := withRows.db.Snapshot()
			total := 0
			err := headerBlocks(s, withRows.shas, func(_ int, h []byte) error { total += len(h); return nil })
			s.Close()
			if err != nil || total < n*1000 {
				b.Fatal(total, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/n, "µs/msg")
	})
	b.Run("fallback", func(b *testing.B) { run(b, without.db, headerBlock) })
}
