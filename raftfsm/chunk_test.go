package raftfsm

import (
	"bytes"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/storage"
)

const INCOMPLETE = commandpb.Code_CODE_INCOMPLETE

// familyCount counts the rows of one key family (through the snapshot
// stream's decoder-independent scan: Digest order).
func (h *harness) familyCount(f storage.Family) int {
	h.t.Helper()
	var buf bytes.Buffer
	if err := h.db.WriteSnapshot(&buf); err != nil {
		h.t.Fatal(err)
	}
	// Parse the stream: header 16 bytes, then uvarint-framed records.
	r := bytes.NewReader(buf.Bytes()[16:])
	n := 0
	for {
		kl, err := readUvarint(r)
		if err != nil || kl == 0 {
			return n
		}
		k := make([]byte, kl)
		io.ReadFull(r, k)
		vl, _ := readUvarint(r)
		r.Seek(int64(vl), io.SeekCurrent)
		if storage.Family(k[0]) == f {
			n++
		}
	}
}

func readUvarint(r *bytes.Reader) (uint64, error) {
	var x uint64
	var s uint
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		if b < 0x80 {
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
}

func TestChunkedDeliver(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test", "b@example.test")
	msg := blob("a large message, as far as this test is concerned")
	chunks, b := chunked(msg, 1, 3)

	// Not every chunk yet: INCOMPLETE, and nothing visible.
	h.must(OK, chunks[2])
	h.must(OK, chunks[0])
	h.must(OK, chunks[0]) // a retried chunk changes nothing
	before := h.digest()
	h.must(INCOMPLETE, deliver(b, rcpt("a@example.test")))
	if got := h.digest(); !bytes.Equal(got, before) {
		t.Fatal("an incomplete upload's Deliver changed the state")
	}
	if n := len(h.messages(h.mailbox(ids[0], "INBOX").Id)); n != 0 {
		t.Fatalf("%d messages visible before the upload completed", n)
	}

	h.must(OK, chunks[1])
	res := h.must(OK, deliver(b, rcpt("a@example.test"), rcpt("b@example.test")))
	for _, d := range res.Deliveries {
		if d.Code != OK {
			t.Fatalf("delivery %v", d)
		}
	}
	if h.blobRefs(b.Sha256) != 2 {
		t.Fatalf("blob refs %d, want 2", h.blobRefs(b.Sha256))
	}
	s := h.db.Snapshot()
	got, err := s.Blob(b.Sha256)
	s.Close()
	if err != nil || !bytes.Equal(got, msg.Data) {
		t.Fatalf("Blob = %q, %v; want the message", got, err)
	}
	br, err := h.db.OpenBlob(b.Sha256)
	if err != nil {
		t.Fatal(err)
	}
	streamed, err := io.ReadAll(br)
	br.Close()
	if err != nil || !bytes.Equal(streamed, msg.Data) || br.Size != int64(len(msg.Data)) {
		t.Fatalf("OpenBlob = %q (size %d), %v", streamed, br.Size, err)
	}
	if h.familyCount(storage.FamilyChunk) != 3 || h.familyCount(storage.FamilyUpload) != 0 || h.familyCount(storage.FamilyUploadExp) != 0 {
		t.Fatalf("chunks %d, uploads %d, upload-exp %d after adoption", h.familyCount(storage.FamilyChunk),
			h.familyCount(storage.FamilyUpload), h.familyCount(storage.FamilyUploadExp))
	}

	// The same message again in a new upload: stored once, the upload dropped.
	chunks2, b2 := chunked(msg, 2, 2)
	for _, c := range chunks2 {
		h.must(OK, c)
	}
	h.must(OK, appendMsg(ids[0], h.mailbox(ids[0], "INBOX").Id, b2))
	if h.blobRefs(b.Sha256) != 3 || h.familyCount(storage.FamilyChunk) != 3 || h.familyCount(storage.FamilyUpload) != 0 {
		t.Fatalf("refs %d, chunks %d, uploads %d: want the existing blob referenced and the new upload dropped",
			h.blobRefs(b.Sha256), h.familyCount(storage.FamilyChunk), h.familyCount(storage.FamilyUpload))
	}
	// A late retry of an adopted chunk does not reopen its upload.
	h.must(OK, chunks[1])
	if h.familyCount(storage.FamilyUpload) != 0 {
		t.Fatal("a retried chunk of an adopted upload opened an upload")
	}

	// Expunging every copy deletes the chunks with the blob.
	for _, id := range ids {
		box := h.mailbox(id, "INBOX")
		h.must(OK, cmd(&commandpb.StoreFlags{UserId: id, MailboxId: box.Id, Uids: all(), Op: commandpb.FlagOp_FLAG_OP_ADD, Flags: []string{`\Deleted`}}))
		h.must(OK, cmd(&commandpb.Expunge{UserId: id, MailboxId: box.Id}))
	}
	if h.blobRefs(b.Sha256) != 0 || h.familyCount(storage.FamilyChunk) != 0 || h.familyCount(storage.FamilyBlobChunks) != 0 {
		t.Fatalf("after expunge: refs %d, chunks %d, blob-chunks %d", h.blobRefs(b.Sha256),
			h.familyCount(storage.FamilyChunk), h.familyCount(storage.FamilyBlobChunks))
	}
}

func TestChunkMismatchAndLimits(t *testing.T) {
	h := newHarness(t)
	h.setup("a@example.test")
	chunks, b := chunked(blob("x"), 3, 2)
	for _, c := range chunks {
		h.must(OK, c)
	}
	bad := proto.Clone(b).(*commandpb.Blob)
	bad.ChunkSha256 = [][]byte{b.ChunkSha256[1], b.ChunkSha256[0]}
	h.must(INVALID, deliver(bad, rcpt("a@example.test")))
	short := proto.Clone(b).(*commandpb.Blob)
	short.Chunks = 1
	h.must(INVALID, deliver(short, rcpt("a@example.test")))
	h.must(INVALID, cmd(&commandpb.BlobChunk{UploadId: b.UploadId, Seq: 0, Data: make([]byte, MaxChunkBytes+1)}))
	h.must(INVALID, cmd(&commandpb.BlobChunk{UploadId: b.UploadId[:3], Data: []byte("x")}))
	h.must(OK, deliver(b, rcpt("a@example.test")))
}

// An upload abandoned mid-stream is deleted by apply once log time passes
// its expiry, on every node alike; a Deliver naming it then is INCOMPLETE.
func TestAbandonedUploadExpires(t *testing.T) {
	h := newHarness(t)
	h.setup("a@example.test")
	chunks, b := chunked(blob("abandoned"), 4, 3)
	h.must(OK, chunks[0])
	h.must(OK, chunks[1])
	if h.familyCount(storage.FamilyChunk) != 2 || h.familyCount(storage.FamilyUpload) != 1 {
		t.Fatal("upload not stored")
	}
	h.now += uploadTTL - 1e9
	h.must(OK, domainAdd("still.test"))
	if h.familyCount(storage.FamilyUpload) != 1 {
		t.Fatal("upload expired early")
	}
	h.now += 2e9
	h.must(OK, domainAdd("later.test")) // any command collects
	for _, f := range []storage.Family{storage.FamilyChunk, storage.FamilyUpload, storage.FamilyUploadExp} {
		if n := h.familyCount(f); n != 0 {
			t.Fatalf("%v rows left after expiry: %d", f, n)
		}
	}
	h.must(OK, chunks[2])
	h.must(INCOMPLETE, deliver(b, rcpt("a@example.test")))
}
