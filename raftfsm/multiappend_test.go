package raftfsm

import (
	"bytes"
	"slices"
	"testing"

	"github.com/continuum-mail/continuum/proto/commandpb"
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
