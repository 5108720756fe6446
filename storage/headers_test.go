package storage

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

func headerParsed(start, end int) *storagepb.ParsedMessage {
	return &storagepb.ParsedMessage{Root: &storagepb.Part{HeaderStart: uint64(start), HeaderEnd: uint64(end), BodyStart: uint64(end)}}
}

// TestHeaderBlock: the row when there is one, the same bytes cut from the
// message (inline and chunked) when there is none, and gone with the blob.
func TestHeaderBlock(t *testing.T) {
	db := openTest(t, vfs.NewMem())
	hdr := "From: a@example.test\r\nSubject: hello\r\n\r\n"
	small := []byte(hdr + "body\r\n")
	// A message whose frame spans several chunks.
	rnd := make([]byte, 300_000)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(rnd)
	big := append([]byte(hdr+strings.Repeat("line\r\n", 100)), rnd...)
	frame := Compress(big)
	upload := bytes.Repeat([]byte{7}, UploadIDSize)
	noRow := []byte(hdr + "another body\r\n") // stored without the row: data from before it existed

	commit(t, db, func(b *Batch) error {
		if _, err := b.PutBlob(sum(small), small, headerParsed(0, len(hdr))); err != nil {
			return err
		}
		if err := b.PutHeaderBlock(sum(small), small[:len(hdr)]); err != nil {
			return err
		}
		if _, err := b.PutBlob(sum(noRow), noRow, headerParsed(0, len(hdr))); err != nil {
			return err
		}
		var u *storagepb.Upload
		for seq := 0; len(frame) > 0; seq++ {
			n := min(len(frame), 1<<16)
			if err := b.PutChunk(upload, uint32(seq), frame[:n], sum(frame[:n]), u, 1); err != nil {
				return err
			}
			frame = frame[n:]
			var err error
			if u, err = b.Upload(upload); err != nil {
				return err
			}
		}
		if len(u.GetChunkSha256()) < 2 {
			t.Fatalf("test frame is %d chunks, want several", len(u.GetChunkSha256()))
		}
		_, err := b.PutBlobChunked(sum(big), upload, u, uint64(len(big)), headerParsed(0, len(hdr)))
		return err
	})

	s := db.Snapshot()
	for name, sha := range map[string][]byte{"row": sum(small), "inline": sum(noRow), "chunked": sum(big)} {
		got, err := s.HeaderBlock(sha)
		if err != nil || string(got) != hdr {
			t.Errorf("%s: HeaderBlock = %q, %v; want %q", name, got, err, hdr)
		}
	}
	for name, sha := range map[string][]byte{"row": sum(small), "inline": sum(noRow)} {
		has, err := s.HasHeaderBlock(sha)
		if err != nil || has != (name == "row") {
			t.Errorf("%s: HasHeaderBlock = %v, %v", name, has, err)
		}
	}
	if _, err := s.HeaderBlock(sum([]byte("nothing"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("HeaderBlock of a missing blob: %v, want ErrNotFound", err)
	}
	// HeaderBlocks: every kind, a repeat, in an order that is not the hashes'.
	list := [][]byte{sum(big), sum(small), sum(noRow), sum(small)}
	seen := make([]bool, len(list))
	err := s.HeaderBlocks(list, func(i int, block []byte) error {
		if string(block) != hdr || seen[i] {
			t.Errorf("HeaderBlocks: entry %d: %q (seen before %v)", i, block, seen[i])
		}
		seen[i] = true
		return nil
	})
	if err != nil || slices.Contains(seen, false) {
		t.Errorf("HeaderBlocks: %v, seen %v", err, seen)
	}
	if err := s.HeaderBlocks([][]byte{sum(small), sum([]byte("nothing"))}, func(int, []byte) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("HeaderBlocks with a missing blob: %v, want ErrNotFound", err)
	}
	s.Close()

	commit(t, db, func(b *Batch) error {
		_, err := b.ReleaseBlob(sum(small))
		return err
	})
	s = db.Snapshot()
	defer s.Close()
	if has, err := s.HasHeaderBlock(sum(small)); err != nil || has {
		t.Errorf("after the last release: HasHeaderBlock = %v, %v", has, err)
	}
	if _, err := s.HeaderBlock(sum(small)); !errors.Is(err, ErrNotFound) {
		t.Errorf("after the last release: HeaderBlock err = %v, want ErrNotFound", err)
	}
}

// TestPutHeaderBlockBounds: an empty or oversized block stores no row, and
// a bad blob id is an error.
func TestPutHeaderBlockBounds(t *testing.T) {
	db := openTest(t, vfs.NewMem())
	a, c := sum([]byte("a")), sum([]byte("c"))
	commit(t, db, func(b *Batch) error {
		if err := b.PutHeaderBlock(a, nil); err != nil {
			return err
		}
		if err := b.PutHeaderBlock(c, make([]byte, MaxHeaderBlock+1)); err != nil {
			return err
		}
		if err := b.PutHeaderBlock([]byte("short"), []byte("x")); err == nil {
			t.Error("PutHeaderBlock with a 5-byte id: no error")
		}
		return nil
	})
	s := db.Snapshot()
	defer s.Close()
	for _, sha := range [][]byte{a, c} {
		if has, err := s.HasHeaderBlock(sha); err != nil || has {
			t.Errorf("HasHeaderBlock = %v, %v; want no row", has, err)
		}
	}
}
