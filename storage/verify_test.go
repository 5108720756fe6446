package storage

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/klauspost/compress/zstd"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// putUpload stores data as node/mail proposes a large message: a streamed
// zstd frame (1 MiB window) cut into 1 MiB chunks of upload id.
func putUpload(t testing.TB, db *DB, id, data []byte) uint32 {
	t.Helper()
	var frame bytes.Buffer
	enc, err := zstd.NewWriter(&frame, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(1<<20), zstd.WithEncoderCRC(true))
	if err != nil {
		t.Fatal(err)
	}
	enc.Write(data)
	enc.Close()
	f := frame.Bytes()
	var seq uint32
	commit(t, db, func(b *Batch) error {
		var u *storagepb.Upload
		for ; len(f) > 0; seq++ {
			n := min(len(f), 1<<20)
			if err := b.PutChunk(id, seq, f[:n], sum(f[:n]), u, 1); err != nil {
				return err
			}
			f = f[n:]
			if u, err = b.Upload(id); err != nil {
				return err
			}
		}
		return nil
	})
	return seq
}

func TestUploadContent(t *testing.T) {
	db := openTest(t, vfs.NewMem())
	data := make([]byte, 3<<20+123)
	_, _ = rand.NewChaCha8([32]byte{3}).Read(data)
	copy(data, "Subject: big\r\n\r\n")
	id := bytes.Repeat([]byte{1}, UploadIDSize)
	n := putUpload(t, db, id, data)
	s := db.Snapshot()
	defer s.Close()
	got, size, head, err := s.UploadContent(id, n, uint64(len(data)), 16)
	if err != nil || !bytes.Equal(got, sum(data)) || size != uint64(len(data)) || string(head) != "Subject: big\r\n\r\n" {
		t.Fatalf("UploadContent = %x, %d, %q, %v", got, size, head, err)
	}
	if _, _, _, err := s.UploadContent(id, n, uint64(len(data))-1, 16); !errors.Is(err, ErrBadContent) {
		t.Fatalf("UploadContent with max one byte short: %v, want ErrBadContent", err)
	}
	if _, _, _, err := s.UploadContent(id, n-1, uint64(len(data)), 16); !errors.Is(err, ErrBadContent) {
		t.Fatalf("UploadContent of a truncated frame: %v, want ErrBadContent", err)
	}
}

// BenchmarkUploadContent45MB: what apply now spends verifying a 45 MB
// incompressible chunked message (decode + SHA-256, one chunk at a time).
func BenchmarkUploadContent45MB(b *testing.B) {
	db := openTest(b, vfs.NewMem())
	data := make([]byte, 45<<20)
	_, _ = rand.NewChaCha8([32]byte{4}).Read(data)
	id := bytes.Repeat([]byte{2}, UploadIDSize)
	n := putUpload(b, db, id, data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		s := db.Snapshot()
		if _, size, _, err := s.UploadContent(id, n, uint64(len(data)), MaxHeaderBlock); err != nil || size != uint64(len(data)) {
			b.Fatal(size, err)
		}
		s.Close()
	}
}
