package node_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

const archiveDay = 24 * time.Hour

// archiveMessage is a message with a body word the test can search for.
func archiveMessage(id, word string) []byte {
	return []byte("From: Sender <sender@remote.test>\r\nTo: someone@example.test\r\nSubject: " + id + "\r\n" +
		"Message-ID: <" + id + "@remote.test>\r\nX-Test-Id: " + id + "\r\n\r\nThe body mentions " + word + " once.\r\n")
}

// appendAged APPENDs a message to the user's INBOX through node n with an
// INTERNALDATE age ago.
func appendAged(t *testing.T, c *nodetest.Cluster, n *node.Node, userID uint64, id, word string, age time.Duration) {
	t.Helper()
	snap := n.DB().Snapshot()
	box, err := snap.MailboxByName(userID, "INBOX")
	snap.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Mail().Append(c.Ctx(10*time.Second), userID, box.Id, nil, time.Now().Add(-age), archiveMessage(id, word)); err != nil {
		t.Fatalf("append %s: %v", id, err)
	}
}

// inboxIDs lists the X-Test-Ids in a user's INBOX on node n, and those in
// its vault.
func inboxIDs(t *testing.T, n *node.Node, userID uint64) (live, vaulted []string) {
	t.Helper()
	snap := n.DB().Snapshot()
	defer snap.Close()
	box, err := snap.MailboxByName(userID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if err := snap.Messages(box.Id, 1, 0, func(m *storagepb.Message) error {
		b, err := snap.Blob(m.Blob)
		live = append(live, testID(b))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	v, err := snap.Vault(userID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range v {
		b, err := snap.Blob(e.Message.Blob)
		if err != nil {
			t.Fatalf("vaulted blob: %v", err)
		}
		vaulted = append(vaulted, testID(b))
	}
	return live, vaulted
}

func expectIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: %v, want %v", what, got, want)
	}
}

// TestArchiveRetentionHoldSearchVerify is the archive's must-show on a
// 3-node cluster: a 30-day policy removes exactly the 400-day-old messages
// on every node; a held user loses nothing to EXPUNGE, retention or user
// del, and after release the next run removes what had expired; a search
// finds a body word across users and is audited; the journal verifies on
// every node and breaks, at the right index, in an altered copy.
func TestArchiveRetentionHoldSearchVerify(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{NoSync: true})
	defer c.Close()
	l := c.WaitLeader(10 * time.Second)
	follower := (l + 1) % len(c.Nodes)
	adm := c.Admin(follower) // writes are forwarded
	ctx := c.Ctx(60 * time.Second)
	if _, err := adm.DomainAdd(ctx, &adminpb.DomainAddRequest{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	ids := map[string]uint64{}
	for _, u := range []string{"alice", "bob", "carol"} {
		res, err := adm.UserAdd(ctx, &adminpb.UserAddRequest{Email: u + "@example.test", Password: "pw-" + u + "-123"})
		if err != nil {
			t.Fatal(err)
		}
		ids[u] = res.Id
	}
	n := c.Nodes[follower]
	for _, u := range []string{"alice", "bob", "carol"} {
		appendAged(t, c, n, ids[u], u+"-400", "quarterly", 400*archiveDay)
		appendAged(t, c, n, ids[u], u+"-10", "zanzibar-"+u, 10*archiveDay)
	}
	if _, err := adm.RetentionSet(ctx, &adminpb.RetentionSetRequest{Domain: "example.test", Days: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.HoldPlace(ctx, &adminpb.HoldPlaceRequest{User: "carol@example.test", Reason: "matter 2026-17"}); err != nil {
		t.Fatal(err)
	}
	// carol expunges her recent message: hidden, kept in the hold vault.
	snap := n.DB().Snapshot()
	cbox, _ := snap.MailboxByName(ids["carol"], "INBOX")
	snap.Close()
	if _, err := n.Mail().StoreFlags(ctx, ids["carol"], cbox.Id, uidsAll(), commandpb.FlagOp_FLAG_OP_ADD, []string{`\Deleted`}, 0); err != nil {
		t.Fatal(err)
	}
	if res, err := n.Mail().Expunge(ctx, ids["carol"], cbox.Id, nil); err != nil || len(res.Uids) != 2 {
		t.Fatalf("expunge: %v %v", res, err)
	}
	list, err := adm.HoldList(ctx, &adminpb.HoldListRequest{})
	if err != nil || len(list.Holds) != 1 || list.Holds[0].Messages != 2 {
		t.Fatalf("hold list: %v %v", list, err)
	}
	rl, err := adm.RetentionList(ctx, &adminpb.RetentionListRequest{})
	if err != nil || rl.DueMessages != 2 || rl.HeldMessages != 2 || rl.VaultedMessages != 2 {
		t.Fatalf("retention list before the run: %v %v", rl, err)
	}

	run, err := adm.RetentionRun(ctx, &adminpb.RetentionRunRequest{})
	if err != nil || run.Removed != 2 {
		t.Fatalf("retention run: %v %v, want 2 removed", run, err)
	}
	digest := c.WaitConverged(30 * time.Second)
	t.Logf("after the run every node's digest is %x", digest[:8])
	for i, node := range c.Nodes {
		for _, u := range []string{"alice", "bob"} {
			live, vaulted := inboxIDs(t, node, ids[u])
			expectIDs(t, fmt.Sprintf("node %d %s INBOX", i, u), live, u+"-10")
			expectIDs(t, fmt.Sprintf("node %d %s vault", i, u), vaulted)
		}
		live, vaulted := inboxIDs(t, node, ids["carol"])
		expectIDs(t, fmt.Sprintf("node %d carol INBOX (held, expunged)", i), live)
		expectIDs(t, fmt.Sprintf("node %d carol vault", i), vaulted, "carol-400", "carol-10")
	}

	// user del of a held user is refused with a clear error.
	_, err = adm.UserDel(ctx, &adminpb.UserDelRequest{Email: "carol@example.test"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "legal hold") || !strings.Contains(err.Error(), "matter 2026-17") {
		t.Fatalf("user del of a held user: %v", err)
	}

	// eDiscovery across users, audited.
	sr, err := adm.ArchiveSearch(ctx, &adminpb.ArchiveSearchRequest{Query: "ZANZIBAR"})
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, h := range sr.Hits {
		found = append(found, h.User)
	}
	expectIDs(t, "search without the vault", found, "alice@example.test", "bob@example.test")
	sr2, err := adm.ArchiveSearch(ctx, &adminpb.ArchiveSearchRequest{Query: "zanzibar-carol", IncludeHeld: true})
	if err != nil || len(sr2.Hits) != 1 || !sr2.Hits[0].Vaulted || !sr2.Hits[0].Held {
		t.Fatalf("search of the hold vault: %v %v", sr2, err)
	}
	audit, err := adm.AuditList(ctx, &adminpb.AuditListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	searchAudited := false
	for _, e := range audit.Entries {
		actions = append(actions, e.Action+"/"+e.Outcome)
		if e.Action == "archive search" && e.Index == sr.AuditIndex && e.Actor == "local-admin" && strings.Contains(e.Detail, "ZANZIBAR") {
			searchAudited = true
		}
	}
	if !searchAudited {
		t.Errorf("the search at index %d is not in the audit log: %v", sr.AuditIndex, actions)
	}
	for _, want := range []string{"hold place/ok", "retention set/ok", "retention run/ok", "user add/ok", "domain add/ok"} {
		if !strings.Contains(strings.Join(actions, " "), want) {
			t.Errorf("audit log lacks %q: %v", want, actions)
		}
	}
	if !strings.Contains(strings.Join(actions, " "), "user del/held") {
		t.Errorf("the refused user del is not audited: %v", actions)
	}

	// Release: the next run removes what had expired (carol-400, live in
	// the vault); carol-10 is within 30 days and stays in the vault.
	if _, err := adm.HoldRelease(ctx, &adminpb.HoldReleaseRequest{User: "carol@example.test"}); err != nil {
		t.Fatal(err)
	}
	if run, err := adm.RetentionRun(ctx, &adminpb.RetentionRunRequest{}); err != nil || run.Removed != 1 {
		t.Fatalf("retention run after release: %v %v, want 1 removed", run, err)
	}
	c.WaitConverged(30 * time.Second)
	for i, node := range c.Nodes {
		live, vaulted := inboxIDs(t, node, ids["carol"])
		expectIDs(t, fmt.Sprintf("node %d carol INBOX after release", i), live)
		expectIDs(t, fmt.Sprintf("node %d carol vault after release", i), vaulted, "carol-10")
	}

	// An administrator restores carol's vault: carol-10 is back in INBOX
	// on every node, with a new UID.
	if rr, err := adm.VaultRestore(ctx, &adminpb.VaultRestoreRequest{User: "carol@example.test"}); err != nil || rr.Restored != 1 {
		t.Fatalf("vault restore: %v %v", rr, err)
	}
	c.WaitConverged(30 * time.Second)
	for i, node := range c.Nodes {
		live, vaulted := inboxIDs(t, node, ids["carol"])
		expectIDs(t, fmt.Sprintf("node %d carol INBOX after restore", i), live, "carol-10")
		expectIDs(t, fmt.Sprintf("node %d carol vault after restore", i), vaulted)
	}

	// The journal verifies on all three nodes.
	for i := range c.Nodes {
		r, err := c.Admin(i).ArchiveVerify(ctx, &adminpb.ArchiveVerifyRequest{})
		if err != nil || !r.Ok || r.Links < 10 {
			t.Fatalf("verify on node %d: %v %v", i, r, err)
		}
		t.Logf("node %d: %d links verified, %d blobs hashed, head at %d", i, r.Links, r.BlobsChecked, r.HeadIndex)
	}

	// A copy of a stopped node's data directory with one record altered.
	victim := (l + 2) % len(c.Nodes)
	c.StopNode(victim)
	dir := c.Cfgs[victim].DataDir
	clean := filepath.Join(t.TempDir(), "clean")
	altered := filepath.Join(t.TempDir(), "altered")
	for _, dst := range []string{clean, altered} {
		if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
			t.Fatalf("copy the data directory: %v %s", err, out)
		}
	}
	if rep := verifyDir(t, clean, nil); !rep.OK() {
		t.Fatalf("clean copy: %+v", rep)
	}
	var target uint64
	rep := verifyDir(t, altered, func(b *storage.Batch, snap *storage.Snap) {
		// Alter the link of carol-400's delivery: change one byte of its
		// detail, as someone editing the store would.
		var links []*storagepb.JournalLink
		snap.JournalLinks(func(_ uint64, l *storagepb.JournalLink, _ error) error {
			links = append(links, l)
			return nil
		})
		l := links[len(links)/2]
		target = l.Index
		l.Detail += "x"
		v, _ := protoMarshal(l)
		if err := b.SetRaw(storage.Key{Family: storage.FamilyJournal, Index: l.Index}.Encode(), v); err != nil {
			t.Fatal(err)
		}
	})
	if rep.OK() || rep.BreakIndex != target {
		t.Fatalf("altered copy: %+v, want a break at index %d", rep, target)
	}
	t.Logf("altered copy: break at index %d: %s", rep.BreakIndex, rep.Reason)
	os.RemoveAll(clean)
}

func uidsAll() []*commandpbUIDRange { return []*commandpbUIDRange{{Start: 1}} }

// verifyDir opens a copy of a data directory's state database, applies
// edit (if any) behind the state machine's back, and verifies the journal.
func verifyDir(t *testing.T, dir string, edit func(*storage.Batch, *storage.Snap)) raftfsm.JournalReport {
	t.Helper()
	db, err := storage.Open(filepath.Join(dir, "state"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if edit != nil {
		snap := db.Snapshot()
		b := db.NewBatch()
		edit(b, snap)
		snap.Close()
		if err := b.Commit(true); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	snap := db.Snapshot()
	defer snap.Close()
	rep, err := raftfsm.VerifyJournal(snap)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

var _ = context.Background

var _ = commandpb.FlagOp_FLAG_OP_ADD
