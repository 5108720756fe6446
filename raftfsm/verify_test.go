package raftfsm

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/storage"
)

// TestChunkedBlobWholeHashVerified (issue 19): a chunked blob is stored
// only if the message its chunks hold has the SHA-256 (and size) the
// command names. Chunks whose own hashes all match but that hold another
// message are refused, and nothing is stored under the wrong hash: the
// real message with that hash, delivered later, gets its own bytes.
func TestChunkedBlobWholeHashVerified(t *testing.T) {
	h := newHarness(t)
	h.setup("a@example.test")
	real := blob("the message the hash belongs to")
	other := blob("some other message, its chunks sent under the first one's hash")

	chunks, b := chunked(other, 5, 3)
	for _, c := range chunks {
		h.must(OK, c)
	}
	lie := proto.Clone(b).(*commandpb.Blob)
	lie.Sha256 = real.Sha256
	before := h.digest()
	h.must(INVALID, deliver(lie, rcpt("a@example.test")))
	if !bytes.Equal(h.digest(), before) {
		t.Fatal("a refused chunked Deliver changed the state")
	}
	short := proto.Clone(b).(*commandpb.Blob)
	short.Size--
	h.must(INVALID, deliver(short, rcpt("a@example.test")))
	long := proto.Clone(b).(*commandpb.Blob)
	long.Size++
	h.must(INVALID, deliver(long, rcpt("a@example.test")))

	// The upload is still open and intact: the truthful command adopts it.
	h.must(OK, deliver(b, rcpt("a@example.test")))
	// The real message, chunked, is stored with its own bytes.
	rc, rb := chunked(real, 6, 2)
	for _, c := range rc {
		h.must(OK, c)
	}
	h.must(OK, deliver(rb, rcpt("a@example.test")))
	s := h.snap()
	for _, m := range []*commandpb.Blob{real, other} {
		got, err := s.Blob(m.Sha256)
		if err != nil || !bytes.Equal(got, m.Data) {
			t.Errorf("Blob(%x) = %q, %v; want %q", m.Sha256[:4], got, err, m.Data)
		}
	}
}

// TestChunkedBlobNotAFrame: chunks that are not a zstd frame (each chunk's
// own hash correct) are refused as invalid, not as a storage failure.
func TestChunkedBlobNotAFrame(t *testing.T) {
	h := newHarness(t)
	h.setup("a@example.test")
	garbage := bytes.Repeat([]byte("not zstd "), 100)
	sum := sha256.Sum256(garbage)
	id := bytes.Repeat([]byte{9}, storage.UploadIDSize)
	h.must(OK, cmd(&commandpb.BlobChunk{UploadId: id, Seq: 0, Data: garbage}))
	b := &commandpb.Blob{Sha256: sum[:], Size: uint64(len(garbage)), UploadId: id, Chunks: 1, ChunkSha256: [][]byte{sum[:]}}
	h.must(INVALID, deliver(b, rcpt("a@example.test")))
}

// TestChunkedBlobHeaderRow: a chunked blob gets its header row from the
// verification's decoded prefix.
func TestChunkedBlobHeaderRow(t *testing.T) {
	h := newHarness(t)
	h.setup("a@example.test")
	hdr := "From: b@example.test\r\nSubject: big\r\n\r\n"
	m := parsedBlob(hdr, strings.Repeat("a fairly long body line\r\n", 4000), false)
	chunks, b := chunked(m, 7, 4)
	for _, c := range chunks {
		h.must(OK, c)
	}
	h.must(OK, deliver(b, rcpt("a@example.test")))
	if got, has := h.headerRow(m.Sha256); !has || got != hdr {
		t.Fatalf("chunked blob: header row %q (present %v), want %q", got, has, hdr)
	}
}
