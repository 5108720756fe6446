package raftfsm

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

const day = 86400

// appendAged appends a message whose INTERNALDATE is daysAgo before the
// harness clock, flagged \Deleted when deleted.
func (h *harness) appendAged(user, mbox uint64, body string, daysAgo int64, flags ...string) uint32 {
	h.t.Helper()
	c := appendMsg(user, mbox, blob(body), flags...)
	c.GetAppend().InternalDateUnix = h.now/1e9 - daysAgo*day
	return h.must(commandpb.Code_CODE_OK, c).Uids[0]
}

func (h *harness) vault(userID uint64) []*storagepb.VaultEntry {
	h.t.Helper()
	s := h.db.Snapshot()
	defer s.Close()
	v, err := s.Vault(userID)
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

func (h *harness) verify() JournalReport {
	h.t.Helper()
	s := h.db.Snapshot()
	defer s.Close()
	rep, err := VerifyJournal(s)
	if err != nil {
		h.t.Fatal(err)
	}
	return rep
}

func TestRetentionRunExpiresByInternalDate(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test", "b@example.test")
	inbox := h.mailbox(ids[0], "INBOX").Id
	binbox := h.mailbox(ids[1], "INBOX").Id
	h.appendAged(ids[0], inbox, "old", 400)
	keep := h.appendAged(ids[0], inbox, "new", 10)
	h.appendAged(ids[1], binbox, "b old", 400)

	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionSet{Domain: "example.test", Days: 30}))
	// b's own policy is longer: the most specific wins.
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionSet{User: "b@example.test", Days: 500}))
	res := h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionRun{}))
	if res.Count != 1 || res.More {
		t.Fatalf("run removed %d (more %v), want 1", res.Count, res.More)
	}
	if got := uidsOf(h.messages(inbox)); len(got) != 1 || got[0] != keep {
		t.Fatalf("a's INBOX after retention: %v, want [%d]", got, keep)
	}
	if n := len(h.messages(binbox)); n != 1 {
		t.Fatalf("b's INBOX: %d messages, want 1 (its 500-day policy wins)", n)
	}
	if r := h.verify(); !r.OK() || r.Links == 0 {
		t.Fatalf("journal: %+v", r)
	}
	h.must(commandpb.Code_CODE_INVALID, cmd(&commandpb.RetentionRun{Max: maxRetentionMax + 1}))
	h.must(commandpb.Code_CODE_INVALID, cmd(&commandpb.RetentionSet{Domain: "example.test", User: "a@example.test", Days: 3}))
	h.must(commandpb.Code_CODE_NOT_FOUND, cmd(&commandpb.RetentionSet{Domain: "nowhere.test", Days: 3}))
}

func TestRetentionVaultKeepsExpungedUntilDue(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test")
	inbox := h.mailbox(ids[0], "INBOX").Id
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionSet{User: "a@example.test", Days: 30}))
	h.appendAged(ids[0], inbox, "recent", 10, `\Deleted`)
	h.appendAged(ids[0], inbox, "ancient", 100, `\Deleted`)
	res := h.must(commandpb.Code_CODE_OK, cmd(&commandpb.Expunge{UserId: ids[0], MailboxId: inbox}))
	if len(res.Uids) != 2 || len(h.messages(inbox)) != 0 {
		t.Fatalf("expunge: %v, left %d", res.Uids, len(h.messages(inbox)))
	}
	v := h.vault(ids[0])
	if len(v) != 1 || v[0].Held {
		t.Fatalf("vault: %v, want the 10-day-old message only", v)
	}
	sha := v[0].Message.Blob
	h.now += 25 * day * 1e9 // 35 days after arrival: due
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionRun{}))
	if len(h.vault(ids[0])) != 0 || h.blobRefs(sha) != 0 {
		t.Fatal("the vaulted message outlived its retention")
	}
}

func TestHoldKeepsEverything(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test")
	inbox := h.mailbox(ids[0], "INBOX").Id
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionSet{Domain: "example.test", Days: 30}))
	old := h.appendAged(ids[0], inbox, "old", 400)
	h.appendAged(ids[0], inbox, "gone by expunge", 1, `\Deleted`)
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.HoldPlace{User: "a@example.test", Reason: "matter 7", PlacedBy: "counsel"}))
	h.must(commandpb.Code_CODE_EXISTS, cmd(&commandpb.HoldPlace{User: "a@example.test", Reason: "again"}))
	h.must(commandpb.Code_CODE_INVALID, cmd(&commandpb.HoldPlace{Domain: "example.test"})) // no reason

	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.Expunge{UserId: ids[0], MailboxId: inbox}))
	if got := uidsOf(h.messages(inbox)); len(got) != 1 || got[0] != old {
		t.Fatalf("INBOX after EXPUNGE: %v, want only %d visible", got, old)
	}
	if v := h.vault(ids[0]); len(v) != 1 || !v[0].Held {
		t.Fatalf("hold vault: %v", v)
	}
	if res := h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionRun{})); res.Count != 0 {
		t.Fatalf("retention removed %d messages of a held user", res.Count)
	}
	res := h.must(commandpb.Code_CODE_HELD, cmd(&commandpb.UserDel{Email: "a@example.test"}))
	if !strings.Contains(res.Message, "legal hold") || !strings.Contains(res.Message, "matter 7") {
		t.Fatalf("user del refusal: %q", res.Message)
	}
	// A domain hold protects the same way.
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.HoldRelease{User: "a@example.test"}))
	h.must(commandpb.Code_CODE_NOT_FOUND, cmd(&commandpb.HoldRelease{User: "a@example.test"}))
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.HoldPlace{Domain: "example.test", Reason: "matter 8"}))
	h.must(commandpb.Code_CODE_HELD, cmd(&commandpb.UserDel{Email: "a@example.test"}))
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.HoldRelease{Domain: "example.test"}))

	// Released: the next run removes what had expired, the vault included.
	res = h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionRun{}))
	if res.Count != 1 || len(h.messages(inbox)) != 0 {
		t.Fatalf("after release: run removed %d, INBOX has %d", res.Count, len(h.messages(inbox)))
	}
	// The expunged message is 1 day old, its 30 days are not over: kept.
	if len(h.vault(ids[0])) != 1 {
		t.Fatal("the vault lost a message its retention still covers")
	}
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.UserDel{Email: "a@example.test"}))
	if len(h.vault(ids[0])) != 0 {
		t.Fatal("user del left vault rows")
	}
	if r := h.verify(); !r.OK() {
		t.Fatalf("journal: %+v", r)
	}
}

func TestMailboxDeleteUnderHoldVaults(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test")
	work := h.must(commandpb.Code_CODE_OK, cmd(&commandpb.MailboxCreate{UserId: ids[0], Name: "Work"})).MailboxId
	h.appendAged(ids[0], work, "w", 1)
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.HoldPlace{User: "a@example.test", Reason: "m"}))
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.MailboxDelete{UserId: ids[0], Name: "Work"}))
	if v := h.vault(ids[0]); len(v) != 1 || v[0].Mailbox != "Work" {
		t.Fatalf("vault after DELETE under hold: %v", v)
	}
}

func TestAdminCommandAudits(t *testing.T) {
	h := newHarness(t)
	h.setup()
	wrap := func(actor string, inner *commandpb.Command) *commandpb.Command {
		return cmd(&commandpb.AdminCommand{Actor: actor, Action: "test", Detail: "d", Command: inner})
	}
	h.must(commandpb.Code_CODE_OK, wrap("cn=alice", userAdd("a@example.test", 0)))
	h.must(commandpb.Code_CODE_EXISTS, wrap("cn=alice", userAdd("a@example.test", 0)))
	h.must(commandpb.Code_CODE_OK, wrap("local-admin", nil))
	h.must(commandpb.Code_CODE_INVALID, wrap("", nil))
	h.must(commandpb.Code_CODE_INVALID, wrap("x", wrap("y", nil)))
	s := h.snap()
	var got []string
	if err := s.AuditEntries(0, func(e *storagepb.AuditEntry) error {
		got = append(got, e.Actor+" "+commandpb.Code(e.Code).String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"cn=alice CODE_OK", "cn=alice CODE_EXISTS", "local-admin CODE_OK"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("audit: %v, want %v", got, want)
	}
}

// TestJournalFindsTampering alters one stored record at a time, behind the
// FSM's back, and expects VerifyJournal to name the index it breaks at.
func TestJournalFindsTampering(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test")
	inbox := h.mailbox(ids[0], "INBOX").Id
	h.must(commandpb.Code_CODE_OK, deliver(blob("one"), rcpt("a@example.test")))
	second := h.index + 1
	h.must(commandpb.Code_CODE_OK, deliver(blob("two"), rcpt("a@example.test")))
	h.must(commandpb.Code_CODE_OK, deliver(blob("three"), rcpt("a@example.test")))
	rep := h.verify()
	if !rep.OK() || rep.Links != 3 || rep.BlobsChecked != 3 {
		t.Fatalf("clean journal: %+v", rep)
	}
	tamper := func(key []byte, edit func([]byte) []byte) func() {
		b := h.db.NewBatch()
		old, err := b.GetRaw(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.SetRaw(key, edit(append([]byte(nil), old...))); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()
		return func() {
			b := h.db.NewBatch()
			defer b.Close()
			_ = b.SetRaw(key, old)
			_ = b.Commit(false)
		}
	}
	// 1. A link's time changed.
	undo := tamper(storage.Key{Family: storage.FamilyJournal, Index: second}.Encode(), func(v []byte) []byte {
		l := new(storagepb.JournalLink)
		mustUnmarshal(t, v, l)
		l.TimeUnixNano++
		return mustMarshal(t, l)
	})
	if r := h.verify(); r.BreakIndex != second {
		t.Fatalf("altered link: %+v, want a break at %d", r, second)
	}
	undo()
	// 2. A message row repointed at another message's blob.
	msgs := h.messages(inbox)
	undo = tamper(storage.Key{Family: storage.FamilyMessage, MailboxID: inbox, UID: msgs[1].Uid}.Encode(), func([]byte) []byte {
		m := proto.Clone(msgs[1]).(*storagepb.Message)
		m.Blob = msgs[0].Blob
		return mustMarshal(t, m)
	})
	if r := h.verify(); r.BreakIndex != second {
		t.Fatalf("repointed message: %+v, want a break at %d", r, second)
	}
	undo()
	// 3. The bytes of a stored message changed.
	undo = tamper(storage.Key{Family: storage.FamilyBlob, Hash: msgs[1].Blob}.Encode(), func([]byte) []byte {
		return storage.Compress([]byte("Subject: forged\r\n\r\ntwo\r\n"))
	})
	if r := h.verify(); r.BreakIndex != second || !strings.Contains(r.Reason, "altered") {
		t.Fatalf("altered blob: %+v, want a break at %d", r, second)
	}
	undo()
	if r := h.verify(); !r.OK() {
		t.Fatalf("restored: %+v", r)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustUnmarshal(t *testing.T, b []byte, m proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
}

func TestVaultRestore(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test")
	inbox := h.mailbox(ids[0], "INBOX").Id
	work := h.must(commandpb.Code_CODE_OK, cmd(&commandpb.MailboxCreate{UserId: ids[0], Name: "Work"})).MailboxId
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.HoldPlace{User: "a@example.test", Reason: "m"}))
	u1 := h.appendAged(ids[0], inbox, "in inbox", 1, `\Deleted`, `\Seen`)
	h.appendAged(ids[0], work, "in work", 1)
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.Expunge{UserId: ids[0], MailboxId: inbox}))
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.MailboxDelete{UserId: ids[0], Name: "Work"}))
	if len(h.vault(ids[0])) != 2 || len(h.messages(inbox)) != 0 {
		t.Fatal("setup: both messages should be in the vault")
	}
	h.must(commandpb.Code_CODE_INVALID, cmd(&commandpb.VaultRestore{UserId: ids[0], Uid: 1}))
	h.must(commandpb.Code_CODE_NOT_FOUND, cmd(&commandpb.VaultRestore{UserId: ids[0], MailboxId: inbox, Uid: u1 + 9}))
	res := h.must(commandpb.Code_CODE_OK, cmd(&commandpb.VaultRestore{UserId: ids[0], MailboxId: inbox, Uid: u1}))
	if res.Count != 1 || len(h.vault(ids[0])) != 1 {
		t.Fatalf("restore one: %v", res)
	}
	// The Work message's mailbox is gone: it lands in INBOX.
	res = h.must(commandpb.Code_CODE_OK, cmd(&commandpb.VaultRestore{UserId: ids[0]}))
	msgs := h.messages(inbox)
	if res.Count != 1 || len(msgs) != 2 || len(h.vault(ids[0])) != 0 {
		t.Fatalf("restore all: %v, INBOX %d", res, len(msgs))
	}
	if hasFlag(msgs[0].Flags, `\Deleted`) || !hasFlag(msgs[0].Flags, `\Seen`) {
		t.Fatalf("restored flags %v: \\Deleted must go, the rest stay", msgs[0].Flags)
	}
	box := h.mailbox(ids[0], "INBOX")
	if box.Messages != 2 || box.Unseen != 1 || h.user("a@example.test").UsedBytes != box.Size {
		t.Fatalf("counts after restore: %+v, used %d", box, h.user("a@example.test").UsedBytes)
	}
	h.must(commandpb.Code_CODE_NOT_FOUND, cmd(&commandpb.VaultRestore{UserId: ids[0]}))
	if r := h.verify(); !r.OK() || r.BlobsChecked != 2 {
		t.Fatalf("journal after restore: %+v", r)
	}
}

// TestRetentionRunContinues: a run bigger than one entry continues where
// the last entry stopped (meta/retention-cursor) and ends with more false.
func TestRetentionRunContinues(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test", "b@example.test", "c@example.test")
	for _, id := range ids {
		box := h.mailbox(id, "INBOX").Id
		h.appendAged(id, box, fmt.Sprint("old", id, "a"), 100)
		h.appendAged(id, box, fmt.Sprint("old", id, "b"), 100)
	}
	h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionSet{Domain: "example.test", Days: 30}))
	var counts []string
	for i := 0; i < 10; i++ {
		res := h.must(commandpb.Code_CODE_OK, cmd(&commandpb.RetentionRun{Max: 1}))
		counts = append(counts, fmt.Sprintf("%d/%v", res.Count, res.More))
		if !res.More {
			break
		}
	}
	if got := strings.Join(counts, " "); got != "1/true 1/true 1/true 1/true 1/true 1/false" {
		t.Fatalf("entries: %s", got)
	}
	for _, id := range ids {
		if n := len(h.messages(h.mailbox(id, "INBOX").Id)); n != 0 {
			t.Fatalf("user %d keeps %d expired messages", id, n)
		}
	}
	s := h.snap()
	if c, _ := s.Counter(storage.MetaRetentionCursor); c != 0 {
		t.Fatalf("cursor left at %d after a complete run", c)
	}
}
