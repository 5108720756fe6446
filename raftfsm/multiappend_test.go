package raftfsm

import (
	"bytes"
	"slices"
	"testing"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/storage"
)

func appendAll(userID, mailboxID uint64, items ...*commandpb.AppendItem) *commandpb.Command {
	return &commandpb.Command{Op: &commandpb.Command_AppendAll{AppendAll: &commandpb.AppendBatch{UserId: userID, MailboxId: mailboxID, Items: items}}}
}

// TestAppendAll (MULTIAPPEND, RFC 3502 §3): every message stored with
// consecutive UIDs, or — when any one of them is refused — none, the
// state unchanged to the byte.
func TestAppendAll(t *testing.T) {
	h := newHarness(t)
	uid := h.setup("a@example.test")[0]
	inbox := h.mailbox(uid, "INBOX")
	item := func(body string, flags ...string) *commandpb.AppendItem {
		return &commandpb.AppendItem{Blob: blob(body), Flags: flags, InternalDateUnix: 946684800}
	}
	res := h.must(OK, appendAll(uid, inbox.Id, item("one", `\Seen`), item("two"), item("three", "$Label1")))
	if !slices.Equal(res.Uids, []uint32{1, 2, 3}) || res.UidValidity != inbox.UidValidity {
		t.Fatalf("result %v, want UIDs 1–3", res)
	}
	msgs := h.messages(inbox.Id)
	if len(msgs) != 3 || !slices.Equal(msgs[0].Flags, []string{`\Seen`}) || !slices.Equal(msgs[2].Flags, []string{"$Label1"}) || res.Modseq != msgs[2].Modseq {
		t.Fatalf("stored %v", msgs)
	}

	bad := blob("bad")
	bad.Sha256 = bad.Sha256[:4]
	upload := blob("up")
	upload.UploadId = []byte("u1")
	before := h.digest()
	for _, x := range []struct {
		what string
		want commandpb.Code
		c    *commandpb.Command
	}{
		{"a bad blob among good ones", INVALID, appendAll(uid, inbox.Id, item("four"), &commandpb.AppendItem{Blob: bad}, item("five"))},
		{"bad flags on the last", INVALID, appendAll(uid, inbox.Id, item("four"), item("five", `\bogus`))},
		{"an uploaded blob", INVALID, appendAll(uid, inbox.Id, item("four"), &commandpb.AppendItem{Blob: upload})},
		{"a dedupe key", INVALID, appendAll(uid, inbox.Id, item("four"), &commandpb.AppendItem{Blob: blob("five"), DedupeKey: []byte("k")})},
		{"no messages", INVALID, appendAll(uid, inbox.Id)},
		{"another user's mailbox", NOTFOUND, appendAll(77, inbox.Id, item("four"))},
		{"no such mailbox", NOTFOUND, appendAll(uid, 999, item("four"))},
	} {
		h.must(x.want, x.c)
		if !bytes.Equal(h.digest(), before) {
			t.Fatalf("%s: the state changed", x.what)
		}
	}

	// Over quota together though each would fit alone: none is stored.
	used := h.user("a@example.test").UsedBytes
	size := uint64(len(blob("four").Data))
	h.must(OK, cmd(&commandpb.QuotaSet{Email: "a@example.test", QuotaBytes: used + size + size/2}))
	before = h.digest()
	h.must(OVERQUOTA, appendAll(uid, inbox.Id, item("four"), item("five")))
	if !bytes.Equal(h.digest(), before) {
		t.Fatal("over quota: the state changed")
	}
	res = h.must(OK, appendAll(uid, inbox.Id, item("four")))
	if !slices.Equal(res.Uids, []uint32{4}) || len(h.messages(inbox.Id)) != 4 {
		t.Fatalf("after the refusals: %v", res)
	}
}

func appendAllUploaded(userID, mailboxID uint64, items ...*commandpb.AppendItem) *commandpb.Command {
	return &commandpb.Command{Op: &commandpb.Command_AppendAllUploaded{AppendAllUploaded: &commandpb.AppendBatch{UserId: userID, MailboxId: mailboxID, Items: items}}}
}

// TestAppendAllUploaded: a MULTIAPPEND whose items name uploads (and one
// inline) stores them all in one entry, adopting each upload; refused —
// one upload incomplete, one named twice, over quota together — nothing
// is stored and the uploads stay for a retry (or expiry), the state
// unchanged to the byte.
func TestAppendAllUploaded(t *testing.T) {
	h := newHarness(t)
	uid := h.setup("a@example.test")[0]
	inbox := h.mailbox(uid, "INBOX")
	m1, m2 := blob("first large message of a MULTIAPPEND"), blob("second large message of a MULTIAPPEND")
	c1, b1 := chunked(m1, 1, 3)
	c2, b2 := chunked(m2, 2, 2)
	item := func(b *commandpb.Blob) *commandpb.AppendItem {
		return &commandpb.AppendItem{Blob: b, InternalDateUnix: 946684800}
	}
	for _, c := range c1 {
		h.must(OK, c)
	}
	h.must(OK, c2[0])

	before := h.digest()
	for _, x := range []struct {
		what string
		want commandpb.Code
		c    *commandpb.Command
	}{
		{"an incomplete upload after a complete one", INCOMPLETE, appendAllUploaded(uid, inbox.Id, item(b1), item(blob("inline")), item(b2))},
		{"one upload named twice", INVALID, appendAllUploaded(uid, inbox.Id, item(b1), item(b1))},
		{"uploads in append_all", INVALID, appendAll(uid, inbox.Id, item(b1))},
	} {
		h.must(x.want, x.c)
		if !bytes.Equal(h.digest(), before) {
			t.Fatalf("%s: the state changed", x.what)
		}
	}

	h.must(OK, c2[1])
	res := h.must(OK, appendAllUploaded(uid, inbox.Id, item(b1), item(blob("inline")), item(b2)))
	if !slices.Equal(res.Uids, []uint32{1, 2, 3}) {
		t.Fatalf("UIDs %v, want 1–3", res.Uids)
	}
	if h.familyCount(storage.FamilyUpload) != 0 || h.familyCount(storage.FamilyChunk) != 5 {
		t.Fatalf("uploads %d (want 0: both adopted), chunks %d (want 5)", h.familyCount(storage.FamilyUpload), h.familyCount(storage.FamilyChunk))
	}
	s := h.db.Snapshot()
	for _, x := range []struct {
		b    *commandpb.Blob
		want []byte
	}{{b1, m1.Data}, {b2, m2.Data}} {
		got, err := s.Blob(x.b.Sha256)
		if err != nil || !bytes.Equal(got, x.want) {
			s.Close()
			t.Fatalf("stored blob %q, %v; want %q", got, err, x.want)
		}
	}
	s.Close()

	// Over quota together: the uploads are checked, nothing stored, and
	// they stay open.
	c3, b3 := chunked(blob("third large message"), 3, 2)
	for _, c := range c3 {
		h.must(OK, c)
	}
	u := h.user("a@example.test")
	h.must(OK, cmd(&commandpb.QuotaSet{Email: "a@example.test", QuotaBytes: u.UsedBytes + b3.Size + 1}))
	before = h.digest()
	h.must(OVERQUOTA, appendAllUploaded(uid, inbox.Id, item(b3), item(blob("pushes it over the quota"))))
	if !bytes.Equal(h.digest(), before) || h.familyCount(storage.FamilyUpload) != 1 {
		t.Fatalf("over quota: state changed %v, uploads %d (want 1 still open)", !bytes.Equal(h.digest(), before), h.familyCount(storage.FamilyUpload))
	}
}
