package node_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/storage"
)

// TestRestoreRenewsUIDValidity: by default a restored store gives every
// mailbox a new, higher UIDVALIDITY (clients that saw UIDs handed out after
// the backup must resync), and keeps every message, UID and UIDNEXT.
func TestRestoreRenewsUIDValidity(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	uid := setupUser(t, c, 0)
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, err := c.Nodes[0].Mail().Deliver(c.Ctx(10*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg(id), msg(id)); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged(10 * time.Second)
	var backup bytes.Buffer
	if err := c.Nodes[0].DB().WriteSnapshot(&backup); err != nil {
		t.Fatal(err)
	}
	before, err := c.Nodes[0].Mail().Mailboxes(uid)
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	if _, _, err := node.Restore(bytes.NewReader(backup.Bytes()), dir, "r1", nodetest.FreeAddr(t), false); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	db, err := storage.Open(filepath.Join(dir, "state"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap := db.Snapshot()
	defer snap.Close()
	after, err := snap.Mailboxes(uid)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(before) < 6 {
		t.Fatalf("%d mailboxes after restore, %d before", len(after), len(before))
	}
	var maxBefore uint32
	for _, m := range before {
		maxBefore = max(maxBefore, m.UidValidity)
	}
	seen := map[uint32]bool{}
	for i, m := range after {
		b := before[i]
		if m.Name != b.Name || m.UidNext != b.UidNext || m.Messages != b.Messages || m.HighestModseq != b.HighestModseq {
			t.Errorf("%s changed beyond UIDVALIDITY: before %v, after %v", m.Name, b, m)
		}
		if m.UidValidity <= maxBefore || seen[m.UidValidity] {
			t.Errorf("%s: UIDVALIDITY %d, want a fresh value above %d", m.Name, m.UidValidity, maxBefore)
		}
		seen[m.UidValidity] = true
	}
}
