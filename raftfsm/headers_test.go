package raftfsm

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// parsedBlob is a blob whose parsed record names its header block, as
// mimeparse computes it; zstd selects the proposer-compressed form.
func parsedBlob(header, body string, zstd bool) *commandpb.Blob {
	data := []byte(header + body)
	sum := sha256.Sum256(data)
	b := &commandpb.Blob{Sha256: sum[:], Parsed: &storagepb.ParsedMessage{Root: &storagepb.Part{
		HeaderEnd: uint64(len(header)), BodyStart: uint64(len(header)), BodyEnd: uint64(len(data))}}}
	if zstd {
		b.Zstd, b.Size = storage.Compress(data), uint64(len(data))
	} else {
		b.Data = data
	}
	return b
}

func (h *harness) headerRow(sha []byte) (string, bool) {
	h.t.Helper()
	s := h.snap()
	defer s.Close()
	has, err := s.HasHeaderBlock(sha)
	if err != nil {
		h.t.Fatal(err)
	}
	got, err := s.HeaderBlock(sha)
	if err != nil {
		h.t.Fatal(err)
	}
	return string(got), has
}

// TestHeaderBlockStoredAtApply: a new blob's header block is stored apart,
// whatever form the proposer sent the bytes in, and goes with the blob.
func TestHeaderBlockStoredAtApply(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test")
	hdr := "From: b@example.test\r\nSubject: hi\r\n\r\n"
	inline := parsedBlob(hdr, "inline body\r\n", false)
	packed := parsedBlob(hdr, strings.Repeat("packed body\r\n", 50), true)
	h.must(OK, deliver(inline, rcpt("a@example.test")))
	h.must(OK, appendMsg(ids[0], h.mailbox(ids[0], "INBOX").Id, packed))
	for name, b := range map[string]*commandpb.Blob{"inline": inline, "zstd": packed} {
		if got, has := h.headerRow(b.Sha256); !has || got != hdr {
			t.Errorf("%s: header row %q (present %v), want %q", name, got, has, hdr)
		}
	}
	// A second reference to the blob changes nothing in the row.
	before := h.familyCount(storage.FamilyHeader)
	h.must(OK, deliver(inline, rcpt("a@example.test")))
	if n := h.familyCount(storage.FamilyHeader); n != before || n != 2 {
		t.Errorf("header rows %d after a dedupe, want %d", n, before)
	}

	// Expunging every copy deletes the rows with the blobs.
	box := h.mailbox(ids[0], "INBOX")
	h.must(OK, cmd(store(ids[0], box.Id, all(), commandpb.FlagOp_FLAG_OP_ADD, `\Deleted`)))
	h.must(OK, cmd(&commandpb.Expunge{UserId: ids[0], MailboxId: box.Id}))
	if n := h.familyCount(storage.FamilyHeader); n != 0 {
		t.Errorf("%d header rows after the blobs went", n)
	}
}

// TestHeaderBlockNotStored: no row when the parsed record names no header
// or one out of range, or one over the bound; reads then cut it from the
// message and get the same bytes.
func TestHeaderBlockNotStored(t *testing.T) {
	h := newHarness(t)
	h.setup("a@example.test")
	huge := "X-Long: " + strings.Repeat("y", storage.MaxHeaderBlock) + "\r\n\r\n"
	long := parsedBlob(huge, "body\r\n", true)
	noRoot := blob("no root in the parsed record")
	outOfRange := parsedBlob("Subject: x\r\n\r\n", "b\r\n", false)
	outOfRange.Parsed.Root.HeaderEnd = uint64(len(outOfRange.Data) + 1)
	for _, b := range []*commandpb.Blob{long, noRoot, outOfRange} {
		h.must(OK, deliver(b, rcpt("a@example.test")))
	}
	if got, has := h.headerRow(long.Sha256); has || got != huge {
		t.Errorf("oversized header: row present %v, HeaderBlock %d bytes, want %d cut from the message", has, len(got), len(huge))
	}
	if got, has := h.headerRow(noRoot.Sha256); has || got != "" {
		t.Errorf("no root: row present %v, HeaderBlock %q", has, got)
	}
	s := h.snap()
	defer s.Close()
	if has, err := s.HasHeaderBlock(outOfRange.Sha256); err != nil || has {
		t.Errorf("out-of-range header: row present %v, %v", has, err)
	}
	if _, err := s.HeaderBlock(outOfRange.Sha256); err == nil {
		t.Error("HeaderBlock of a blob whose parsed offsets lie past its end: no error")
	}
}
