package raftfsm

import (
	"fmt"
	"slices"
	"testing"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

const (
	OK        = commandpb.Code_CODE_OK
	EXISTS    = commandpb.Code_CODE_EXISTS
	NOTFOUND  = commandpb.Code_CODE_NOT_FOUND
	OVERQUOTA = commandpb.Code_CODE_OVER_QUOTA
	INVALID   = commandpb.Code_CODE_INVALID
	NOTEMPTY  = commandpb.Code_CODE_NOT_EMPTY
	MODIFIED  = commandpb.Code_CODE_MODIFIED
)

func TestAdminOps(t *testing.T) {
	h := newHarness(t)
	steps := []struct {
		name string
		c    *commandpb.Command
		want commandpb.Code
	}{
		{"user before its domain", userAdd("a@example.test", 0), NOTFOUND},
		{"bad domain", domainAdd("-bad-.test"), INVALID},
		{"domain", domainAdd("Example.TEST"), OK},
		{"domain again", domainAdd("example.test"), EXISTS},
		{"other domain", domainAdd("other.test"), OK},
		{"bad address", userAdd("a b@example.test", 0), INVALID},
		{"no domain part", userAdd("a@", 0), INVALID},
		{"user", userAdd("Alice@Example.test", 0), OK},
		{"duplicate user, other case", userAdd("alice@example.TEST", 0), EXISTS},
		{"user in missing domain", userAdd("x@nowhere.test", 0), NOTFOUND},
		{"domain with users", cmd(&commandpb.DomainDel{Name: "example.test"}), NOTEMPTY},
		{"empty domain", cmd(&commandpb.DomainDel{Name: "other.test"}), OK},
		{"missing domain", cmd(&commandpb.DomainDel{Name: "other.test"}), NOTFOUND},
		{"passwd", cmd(&commandpb.UserPasswd{Email: "alice@example.test", PasswordHash: []byte("new")}), OK},
		{"passwd of nobody", cmd(&commandpb.UserPasswd{Email: "bob@example.test"}), NOTFOUND},
		{"quota", cmd(&commandpb.QuotaSet{Email: "alice@example.test", QuotaBytes: 1000}), OK},
		{"alias to a user", cmd(&commandpb.AliasSet{Email: "postmaster@example.test", Targets: []string{"Alice@example.test"}}), OK},
		{"alias to a remote address", cmd(&commandpb.AliasSet{Email: "fwd@example.test", Targets: []string{"x@elsewhere.test"}}), NOTFOUND},
		{"alias to itself", cmd(&commandpb.AliasSet{Email: "self@example.test", Targets: []string{"self@example.test"}}), INVALID},
		{"alias over a user", cmd(&commandpb.AliasSet{Email: "alice@example.test", Targets: []string{"postmaster@example.test"}}), EXISTS},
		{"alias in a remote domain", cmd(&commandpb.AliasSet{Email: "a@elsewhere.test", Targets: []string{"alice@example.test"}}), NOTFOUND},
		{"user over an alias", userAdd("postmaster@example.test", 0), EXISTS},
	}
	for _, s := range steps {
		res := h.apply(s.c)
		if res.GetCode() != s.want {
			t.Fatalf("%s: code %v (%q), want %v", s.name, res.GetCode(), res.GetMessage(), s.want)
		}
	}
	u := h.user("alice@example.test")
	if u.Id != 1 || string(u.PasswordHash) != "new" || u.QuotaBytes != 1000 {
		t.Fatalf("user = %v", u)
	}
	s := h.snap()
	if a, err := s.Alias("postmaster@example.test"); err != nil || !slices.Equal(a.Targets, []string{"alice@example.test"}) {
		t.Fatalf("alias = %v, %v", a, err)
	}
	// The default mailboxes: each subscribed, own UIDVALIDITY, UIDNEXT 1.
	mbs, err := s.Mailboxes(u.Id)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	seen := map[uint32]bool{}
	for _, m := range mbs {
		got = append(got, m.Name+m.SpecialUse)
		if !m.Subscribed || m.UidNext != 1 || m.UidValidity == 0 || seen[m.UidValidity] {
			t.Errorf("mailbox %v", m)
		}
		seen[m.UidValidity] = true
	}
	want := []string{"INBOX", `Sent\Sent`, `Drafts\Drafts`, `Trash\Trash`, `Junk\Junk`, `Archive\Archive`}
	if !slices.Equal(got, want) {
		t.Fatalf("mailboxes %v, want %v", got, want)
	}
	// Deleting the alias; deleting the user removes its mailboxes.
	h.must(OK, cmd(&commandpb.AliasSet{Email: "postmaster@example.test"}))
	if _, err := h.snap().Alias("postmaster@example.test"); err == nil {
		t.Fatal("alias survived an empty AliasSet")
	}
	h.must(OK, deliver(blob("x"), rcpt("alice@example.test")))
	h.must(OK, cmd(&commandpb.UserDel{Email: "alice@example.test"}))
	h.must(NOTFOUND, cmd(&commandpb.UserDel{Email: "alice@example.test"}))
	s = h.snap()
	if mbs, _ := s.Mailboxes(u.Id); len(mbs) != 0 {
		t.Fatalf("mailboxes after UserDel: %v", mbs)
	}
	if h.blobRefs(blob("x").Sha256) != 0 {
		t.Fatal("blob survived its user")
	}
	// A new user never reuses the ID.
	if id := h.must(OK, userAdd("alice@example.test", 0)).UserId; id != 2 {
		t.Fatalf("re-created user has ID %d, want 2", id)
	}
}

func TestMailboxOps(t *testing.T) {
	h := newHarness(t)
	uid := h.setup("a@example.test")[0]
	mc := func(name, use string) *commandpb.Command {
		return cmd(&commandpb.MailboxCreate{UserId: uid, Name: name, SpecialUse: use})
	}
	mr := func(from, to string) *commandpb.Command {
		return cmd(&commandpb.MailboxRename{UserId: uid, From: from, To: to})
	}
	md := func(name string) *commandpb.Command { return cmd(&commandpb.MailboxDelete{UserId: uid, Name: name}) }

	res := h.must(OK, mc("Work/2024/Q1", `\flagged`))
	for _, n := range []string{"Work", "Work/2024", "Work/2024/Q1"} {
		h.mailbox(uid, n) // parents created
	}
	if m := h.mailbox(uid, "Work/2024/Q1"); m.Id != res.MailboxId || m.UidValidity != res.UidValidity || m.SpecialUse != `\Flagged` {
		t.Fatalf("created %v, result %v", m, res)
	}
	for _, c := range []struct {
		c    *commandpb.Command
		want commandpb.Code
	}{
		{mc("Work", ""), EXISTS},
		{mc("inbox", ""), EXISTS},
		{mc("a//b", ""), INVALID},
		{mc("a/*", ""), INVALID},
		{mc("x", `\Bogus`), INVALID},
		{cmd(&commandpb.MailboxCreate{UserId: 99, Name: "x"}), NOTFOUND},
		{mr("Nope", "X"), NOTFOUND},
		{mr("Work", "Sent"), EXISTS},
		{mr("Work", "Work/Sub"), INVALID},
		{mr("Sent", "INBOX"), INVALID},
		{md("INBOX"), INVALID},
		{md("Nope"), NOTFOUND},
		{cmd(&commandpb.MailboxSubscribe{UserId: uid, Name: "Nope", Subscribed: true}), NOTFOUND},
	} {
		h.must(c.want, c.c)
	}

	work := h.mailbox(uid, "Work")
	h.must(OK, mr("Work", "Jobs/Old"))
	if m := h.mailbox(uid, "Jobs/Old"); m.Id != work.Id || m.UidValidity != work.UidValidity {
		t.Fatalf("renamed mailbox %v, was %v", m, work)
	}
	h.mailbox(uid, "Jobs")             // parent created
	h.mailbox(uid, "Jobs/Old/2024/Q1") // inferiors moved
	if _, err := h.snap().MailboxByName(uid, "Work/2024"); err == nil {
		t.Fatal("old inferior name still there")
	}
	// Delete keeps inferiors.
	h.must(OK, md("Jobs/Old"))
	h.mailbox(uid, "Jobs/Old/2024")
	h.must(OK, cmd(&commandpb.MailboxSubscribe{UserId: uid, Name: "Jobs", Subscribed: true}))
	if !h.mailbox(uid, "Jobs").Subscribed {
		t.Fatal("not subscribed")
	}
}

func TestRenameInbox(t *testing.T) {
	h := newHarness(t)
	uid := h.setup("a@example.test")[0]
	inbox := h.mailbox(uid, "INBOX")
	h.must(OK, deliver(blob("1"), rcpt("a@example.test")))
	h.must(OK, deliver(blob("2"), rcpt("a@example.test")))
	res := h.must(OK, cmd(&commandpb.MailboxRename{UserId: uid, From: "inbox", To: "Old Mail"}))
	old := h.mailbox(uid, "Old Mail")
	if old.Id != res.MailboxId || old.Messages != 2 || old.UidNext != 3 || old.UidValidity == inbox.UidValidity {
		t.Fatalf("new mailbox %v", old)
	}
	if got := uidsOf(h.messages(old.Id)); !slices.Equal(got, []uint32{1, 2}) {
		t.Fatalf("moved UIDs %v", got)
	}
	in := h.mailbox(uid, "INBOX")
	if in.Id != inbox.Id || in.Messages != 0 || in.UidNext != 3 || len(h.messages(in.Id)) != 0 {
		t.Fatalf("INBOX after rename %v", in)
	}
	var tomb []uint32
	_ = h.snap().Changes(in.Id, 0, func(_ uint64, e *storagepb.ModSeqEntry) error {
		if e.Expunged {
			tomb = append(tomb, e.Uid)
		}
		return nil
	})
	if !slices.Equal(tomb, []uint32{1, 2}) {
		t.Fatalf("INBOX tombstones %v", tomb)
	}
}

func TestDeliver(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test", "b@example.test", "c@example.test")
	h.must(OK, cmd(&commandpb.QuotaSet{Email: "c@example.test", QuotaBytes: 10}))
	h.must(OK, cmd(&commandpb.MailboxCreate{UserId: ids[1], Name: "Lists"}))
	b := blob("hello")

	res := h.must(OK, deliver(b,
		&commandpb.Recipient{Email: "A@example.test", DedupeKey: []byte("k-a"), Flags: []string{`\seen`, `\Recent`, "$Label"}},
		&commandpb.Recipient{Email: "b@example.test", Mailbox: "Lists"},
		&commandpb.Recipient{Email: "b@example.test", Mailbox: "Missing"},
		rcpt("c@example.test"),
		rcpt("nobody@example.test"),
		rcpt("not an address"),
	))
	want := []string{"OK 1 false", "OK 1 false", "OK 1 false", "CODE_OVER_QUOTA 0 false", "CODE_NOT_FOUND 0 false", "CODE_INVALID 0 false"}
	for i, d := range res.Deliveries {
		code := d.Code.String()
		if d.Code == OK {
			code = "OK"
		}
		if got := fmt.Sprintf("%s %d %v", code, d.Uid, d.Duplicate); got != want[i] {
			t.Errorf("delivery %d: %s, want %s", i, got, want[i])
		}
	}
	if len(res.Deliveries) != len(want) {
		t.Fatalf("%d deliveries", len(res.Deliveries))
	}
	if res.Deliveries[1].MailboxId != h.mailbox(ids[1], "Lists").Id || res.Deliveries[2].MailboxId != h.mailbox(ids[1], "INBOX").Id {
		t.Fatalf("target mailboxes %v", res.Deliveries)
	}
	if n := h.blobRefs(b.Sha256); n != 3 {
		t.Fatalf("blob refs %d, want 3 (one blob, three messages)", n)
	}
	inboxA := h.mailbox(ids[0], "INBOX")
	msgs := h.messages(inboxA.Id)
	if len(msgs) != 1 || !slices.Equal(msgs[0].Flags, []string{"$Label", `\Seen`}) || msgs[0].Modseq != 1 {
		t.Fatalf("message %v", msgs)
	}
	if inboxA.Messages != 1 || inboxA.Unseen != 0 || inboxA.UidNext != 2 || inboxA.HighestModseq != 1 || inboxA.Size != uint64(len(b.Data)) {
		t.Fatalf("mailbox counts %v", inboxA)
	}
	if u := h.user("a@example.test"); u.UsedBytes != uint64(len(b.Data)) {
		t.Fatalf("used bytes %d", u.UsedBytes)
	}

	// A retry: same dedupe key, the first UID back, nothing stored.
	before := h.digest()
	h.now += 1 // so that only the log time may change
	res = h.must(OK, deliver(b, &commandpb.Recipient{Email: "a@example.test", DedupeKey: []byte("k-a")}))
	if d := res.Deliveries[0]; !d.Duplicate || d.Uid != 1 || d.MailboxId != inboxA.Id {
		t.Fatalf("retry delivery %v", d)
	}
	if len(h.messages(inboxA.Id)) != 1 || h.blobRefs(b.Sha256) != 3 {
		t.Fatal("the retry stored something")
	}
	h.now -= 1
	h.must(OK, deliver(b, &commandpb.Recipient{Email: "a@example.test", DedupeKey: []byte("k-a")}))
	_ = before
	// After 7 days the key has expired: a new copy.
	h.now += dedupeTTL + 1
	res = h.must(OK, deliver(b, &commandpb.Recipient{Email: "a@example.test", DedupeKey: []byte("k-a")}))
	if d := res.Deliveries[0]; d.Duplicate || d.Uid != 2 {
		t.Fatalf("delivery after expiry %v", d)
	}
	// Bad blobs are refused as a whole.
	bad := blob("x")
	bad.Sha256[0] ^= 1
	h.must(INVALID, deliver(bad, rcpt("a@example.test")))
	h.must(INVALID, deliver(b))
}

func TestDedupeWithoutChange(t *testing.T) {
	h := newHarness(t)
	h.setup("a@example.test")
	b := blob("once")
	h.must(OK, deliver(b, &commandpb.Recipient{Email: "a@example.test", DedupeKey: []byte("key")}))
	before := h.digest()
	res := h.must(OK, deliver(b, &commandpb.Recipient{Email: "a@example.test", DedupeKey: []byte("key")}))
	if d := res.Deliveries[0]; !d.Duplicate || d.Uid != 1 {
		t.Fatalf("retry: %v", d)
	}
	if !eqDigest(before, h.digest()) {
		t.Fatal("a dedupe hit changed the state")
	}
}

func TestStoreExpunge(t *testing.T) {
	h := newHarness(t)
	uid := h.setup("a@example.test")[0]
	inbox := h.mailbox(uid, "INBOX")
	for i := 0; i < 4; i++ {
		res := h.must(OK, appendMsg(uid, inbox.Id, blob(fmt.Sprint(i)), `\Recent`))
		if !slices.Equal(res.Uids, []uint32{uint32(i + 1)}) || res.UidValidity != inbox.UidValidity {
			t.Fatalf("append result %v", res)
		}
	}
	st := func(s *commandpb.StoreFlags) *commandpb.Command { return cmd(s) }
	add, rm, repl := commandpb.FlagOp_FLAG_OP_ADD, commandpb.FlagOp_FLAG_OP_REMOVE, commandpb.FlagOp_FLAG_OP_REPLACE

	res := h.must(OK, st(store(uid, inbox.Id, uidRange(2, 3), add, `\Seen`, `\Deleted`)))
	if !slices.Equal(res.Uids, []uint32{2, 3}) || res.Modseq != 6 {
		t.Fatalf("store result %v", res)
	}
	if m := h.mailbox(uid, "INBOX"); m.Unseen != 2 || m.HighestModseq != 6 {
		t.Fatalf("mailbox %v", m)
	}
	// Adding flags that are already there changes nothing.
	res = h.must(OK, st(store(uid, inbox.Id, uidRange(2, 2), add, `\seen`)))
	if len(res.Uids) != 0 || res.Modseq != 6 {
		t.Fatalf("no-op store %v", res)
	}
	// UNCHANGEDSINCE 4: UIDs 2 and 3 (modseq 5, 6) were modified since.
	res = h.must(MODIFIED, &commandpb.Command{Op: &commandpb.Command_StoreFlags{StoreFlags: &commandpb.StoreFlags{
		UserId: uid, MailboxId: inbox.Id, Uids: all(), Op: add, Flags: []string{"$x"}, UnchangedSince: 4}}})
	if !slices.Equal(res.Modified, []uint32{2, 3}) || !slices.Equal(res.Uids, []uint32{1, 4}) {
		t.Fatalf("conditional store %v", res)
	}
	h.must(OK, st(store(uid, inbox.Id, uidRange(1, 1), repl, `\Deleted`)))
	h.must(OK, st(store(uid, inbox.Id, uidRange(3, 3), rm, `\Deleted`)))
	h.must(INVALID, st(store(uid, inbox.Id, uidRange(3, 1), add, `\Seen`)))
	h.must(INVALID, st(store(uid, inbox.Id, all(), commandpb.FlagOp_FLAG_OP_UNSPECIFIED, `\Seen`)))
	h.must(INVALID, st(store(uid, inbox.Id, all(), add, `\Bogus`)))
	for _, m := range h.messages(inbox.Id) {
		if slices.Contains(m.Flags, `\Recent`) {
			t.Fatal(`\Recent stored`)
		}
	}

	// UID EXPUNGE of 2 only, then EXPUNGE of the rest (\Deleted: 1).
	res = h.must(OK, cmd(&commandpb.Expunge{UserId: uid, MailboxId: inbox.Id, Uids: uidRange(2, 2)}))
	if !slices.Equal(res.Uids, []uint32{2}) {
		t.Fatalf("uid expunge %v", res)
	}
	res = h.must(OK, cmd(&commandpb.Expunge{UserId: uid, MailboxId: inbox.Id}))
	if !slices.Equal(res.Uids, []uint32{1}) {
		t.Fatalf("expunge %v", res)
	}
	if got := uidsOf(h.messages(inbox.Id)); !slices.Equal(got, []uint32{3, 4}) {
		t.Fatalf("left %v", got)
	}
	m := h.mailbox(uid, "INBOX")
	if m.Messages != 2 || m.UidNext != 5 || m.Unseen != 1 {
		t.Fatalf("mailbox after expunge %v", m)
	}
	// modseq/: live entries at current MODSEQ, tombstones for 1 and 2, ascending.
	var live, dead []uint32
	var last uint64
	_ = h.snap().Changes(inbox.Id, 0, func(ms uint64, e *storagepb.ModSeqEntry) error {
		if ms <= last {
			t.Fatalf("changes out of order")
		}
		last = ms
		if e.Expunged {
			dead = append(dead, e.Uid)
		} else {
			live = append(live, e.Uid)
		}
		return nil
	})
	slices.Sort(live)
	if !slices.Equal(live, []uint32{3, 4}) || !slices.Equal(dead, []uint32{2, 1}) || last != m.HighestModseq {
		t.Fatalf("changes: live %v dead %v last %d (highest %d)", live, dead, last, m.HighestModseq)
	}
	if h.blobRefs(blob("0").Sha256) != 0 || h.blobRefs(blob("3").Sha256) != 1 {
		t.Fatal("blob refs after expunge")
	}
	if u := h.user("a@example.test"); u.UsedBytes != m.Size {
		t.Fatalf("used %d, mailbox size %d", u.UsedBytes, m.Size)
	}
}

func TestCopyMoveQuota(t *testing.T) {
	h := newHarness(t)
	uid := h.setup("a@example.test")[0]
	inbox, arch := h.mailbox(uid, "INBOX"), h.mailbox(uid, "Archive")
	b := blob("body")
	for i := 0; i < 3; i++ {
		h.must(OK, appendMsg(uid, inbox.Id, b, "$k"))
	}
	res := h.must(OK, cmd(&commandpb.Copy{UserId: uid, MailboxId: inbox.Id, Uids: uidRange(2, 0), DestMailboxId: arch.Id}))
	if !slices.Equal(res.SrcUids, []uint32{2, 3}) || !slices.Equal(res.Uids, []uint32{1, 2}) || res.UidValidity != arch.UidValidity {
		t.Fatalf("copy %v", res)
	}
	if h.blobRefs(b.Sha256) != 5 {
		t.Fatalf("refs %d after copy", h.blobRefs(b.Sha256))
	}
	res = h.must(OK, cmd(&commandpb.Move{UserId: uid, MailboxId: inbox.Id, Uids: uidRange(1, 2), DestMailboxId: arch.Id}))
	if !slices.Equal(res.SrcUids, []uint32{1, 2}) || !slices.Equal(res.Uids, []uint32{3, 4}) {
		t.Fatalf("move %v", res)
	}
	if got := uidsOf(h.messages(inbox.Id)); !slices.Equal(got, []uint32{3}) {
		t.Fatalf("source after move %v", got)
	}
	if h.blobRefs(b.Sha256) != 5 || h.mailbox(uid, "Archive").Messages != 4 || h.mailbox(uid, "INBOX").Messages != 1 {
		t.Fatal("counts after move")
	}
	h.must(INVALID, cmd(&commandpb.Move{UserId: uid, MailboxId: inbox.Id, Uids: all(), DestMailboxId: inbox.Id}))

	used := h.user("a@example.test").UsedBytes
	h.must(OK, cmd(&commandpb.QuotaSet{Email: "a@example.test", QuotaBytes: used + uint64(len(b.Data))}))
	h.must(OVERQUOTA, cmd(&commandpb.Copy{UserId: uid, MailboxId: arch.Id, Uids: all(), DestMailboxId: inbox.Id}))
	h.must(OK, cmd(&commandpb.Copy{UserId: uid, MailboxId: arch.Id, Uids: uidRange(1, 1), DestMailboxId: inbox.Id}))
	h.must(OVERQUOTA, appendMsg(uid, inbox.Id, blob("more")))
	res = h.must(OK, deliver(blob("more"), rcpt("a@example.test")))
	if res.Deliveries[0].Code != OVERQUOTA {
		t.Fatalf("delivery over quota: %v", res.Deliveries[0])
	}
	// A move does not need quota.
	h.must(OK, cmd(&commandpb.Move{UserId: uid, MailboxId: arch.Id, Uids: all(), DestMailboxId: inbox.Id}))
}

// TestIsolation: user A naming B's mailbox IDs gets NOT_FOUND and changes
// nothing at all.
func TestIsolation(t *testing.T) {
	h := newHarness(t)
	ids := h.setup("a@example.test", "b@example.test")
	a, bID := ids[0], ids[1]
	aInbox, bInbox := h.mailbox(a, "INBOX"), h.mailbox(bID, "INBOX")
	h.must(OK, appendMsg(bID, bInbox.Id, blob("secret"), `\Deleted`))
	h.must(OK, appendMsg(a, aInbox.Id, blob("mine"), `\Deleted`))
	before := h.digest()
	for _, c := range []*commandpb.Command{
		appendMsg(a, bInbox.Id, blob("intrusion")),
		cmd(store(a, bInbox.Id, all(), commandpb.FlagOp_FLAG_OP_ADD, `\Seen`)),
		cmd(&commandpb.Expunge{UserId: a, MailboxId: bInbox.Id}),
		cmd(&commandpb.Copy{UserId: a, MailboxId: bInbox.Id, Uids: all(), DestMailboxId: aInbox.Id}),
		cmd(&commandpb.Copy{UserId: a, MailboxId: aInbox.Id, Uids: all(), DestMailboxId: bInbox.Id}),
		cmd(&commandpb.Move{UserId: a, MailboxId: bInbox.Id, Uids: all(), DestMailboxId: aInbox.Id}),
		cmd(&commandpb.Move{UserId: a, MailboxId: aInbox.Id, Uids: all(), DestMailboxId: bInbox.Id}),
	} {
		h.must(NOTFOUND, c)
	}
	if !eqDigest(before, h.digest()) {
		t.Fatal("a refused cross-user command changed the state")
	}
}

func TestEvents(t *testing.T) {
	h := newHarness(t)
	uid := h.setup("a@example.test")[0]
	h.events = nil
	res := h.must(OK, deliver(blob("e"), rcpt("a@example.test")))
	d := res.Deliveries[0]
	want := Event{Kind: MessageAdded, UserID: uid, MailboxID: d.MailboxId, UID: d.Uid, ModSeq: 1}
	if len(h.events) != 1 || h.events[0] != want {
		t.Fatalf("events %v, want [%v]", h.events, want)
	}
}
