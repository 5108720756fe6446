package raftfsm

import (
	"slices"
	"testing"

	"github.com/continuum-mail/continuum/proto/commandpb"
)

func TestAppendBatch(t *testing.T) {
	h := newHarness(t)
	uid := h.setup("a@example.test")[0]
	inbox := h.mailbox(uid, "INBOX")
	item := func(body string, key string, flags ...string) *commandpb.AppendItem {
		it := &commandpb.AppendItem{Blob: blob(body), Flags: flags, InternalDateUnix: 946684800}
		if key != "" {
			it.DedupeKey = []byte(key)
		}
		return it
	}
	bad := blob("bad")
	bad.Sha256 = bad.Sha256[:4]

	h.events = nil
	res := h.must(OK, cmd(&commandpb.AppendBatch{UserId: uid, MailboxId: inbox.Id, Items: []*commandpb.AppendItem{
		item("one", "k1", `\Seen`, "$Label1"),
		{Blob: bad},
		item("two", "k2", `\bogus`),
		item("three", "k3", `\flagged`),
	}}))
	var codes []commandpb.Code
	for _, d := range res.Deliveries {
		codes = append(codes, d.Code)
	}
	if want := []commandpb.Code{OK, INVALID, INVALID, OK}; !slices.Equal(codes, want) {
		t.Fatalf("item codes %v, want %v", codes, want)
	}
	// Its events are marked Bulk (the index defers them, node/search).
	if len(h.events) != 2 || h.events[0].Kind != MessageAdded || !h.events[0].Bulk || !h.events[1].Bulk {
		t.Fatalf("events %+v, want two bulk MessageAdded", h.events)
	}
	msgs := h.messages(inbox.Id)
	if len(msgs) != 2 || msgs[0].InternalDateUnix != 946684800 || !slices.Equal(msgs[0].Flags, []string{"$Label1", `\Seen`}) ||
		!slices.Equal(msgs[1].Flags, []string{`\Flagged`}) {
		t.Fatalf("stored %v", msgs)
	}

	// A resumed import repeats k1 and k3: nothing new, the first UIDs.
	res = h.must(OK, cmd(&commandpb.AppendBatch{UserId: uid, MailboxId: inbox.Id, Items: []*commandpb.AppendItem{
		item("one", "k1"), item("three", "k3"), item("four", ""),
	}}))
	if d := res.Deliveries; !d[0].Duplicate || d[0].Uid != 1 || !d[1].Duplicate || d[1].Uid != 2 || d[2].Duplicate || d[2].Uid != 3 {
		t.Fatalf("deliveries %v", d)
	}
	if n := len(h.messages(inbox.Id)); n != 3 {
		t.Fatalf("%d messages, want 3", n)
	}

	// Once the first copy is expunged, the key no longer holds it back.
	h.must(OK, cmd(&commandpb.StoreFlags{UserId: uid, MailboxId: inbox.Id, Uids: uidRange(1, 1), Op: commandpb.FlagOp_FLAG_OP_ADD, Flags: []string{`\Deleted`}}))
	h.must(OK, cmd(&commandpb.Expunge{UserId: uid, MailboxId: inbox.Id}))
	res = h.must(OK, cmd(&commandpb.AppendBatch{UserId: uid, MailboxId: inbox.Id, Items: []*commandpb.AppendItem{item("one", "k1")}}))
	if d := res.Deliveries[0]; d.Duplicate || d.Uid != 4 {
		t.Fatalf("after expunge: %v", d)
	}
	// After the TTL, the key is gone.
	h.now += importDedupeTTL + 1
	res = h.must(OK, cmd(&commandpb.AppendBatch{UserId: uid, MailboxId: inbox.Id, Items: []*commandpb.AppendItem{item("three", "k3")}}))
	if d := res.Deliveries[0]; d.Duplicate {
		t.Fatalf("after the TTL: %v", d)
	}

	h.must(NOTFOUND, cmd(&commandpb.AppendBatch{UserId: uid, MailboxId: 999, Items: []*commandpb.AppendItem{item("x", "")}}))
	h.must(NOTFOUND, cmd(&commandpb.AppendBatch{UserId: 77, MailboxId: inbox.Id, Items: []*commandpb.AppendItem{item("x", "")}}))
	h.must(INVALID, cmd(&commandpb.AppendBatch{UserId: uid, MailboxId: inbox.Id}))
}
