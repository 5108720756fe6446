package imapd_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/mail"
)

// TestPythonImaplibExpungeUnderHold: alice is under legal hold; Python's
// imaplib deletes and expunges her INBOX through one node. She sees it
// empty, and every node still keeps both messages in the hold vault, where
// an administrator's search finds them; deleting her is refused.
func TestPythonImaplibExpungeUnderHold(t *testing.T) {
	py := needTool(t, "python3")
	e := newEnv(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	m := e.c.Nodes[0].Mail()
	if err := m.PlaceHold(mail.WithActor(ctx, "test"), "", alice, "matter 9"); err != nil {
		t.Fatal(err)
	}
	e.deliver(0, alice, testMessage("held-1", "one", "kept despite expunge"))
	e.deliver(1, alice, testMessage("held-2", "two", "kept despite expunge"))
	e.waitAll()

	host, port, _ := net.SplitHostPort(e.addrs[2])
	out, err := exec.CommandContext(ctx, py, "testdata/imaplib_hold.py", host, port, alice, password, "2").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok expunged 2") {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	e.waitAll()
	for i, n := range e.c.Nodes {
		snap := n.DB().Snapshot()
		v, err := snap.Vault(e.users[alice])
		box, _ := snap.MailboxByName(e.users[alice], "INBOX")
		snap.Close()
		if err != nil || len(v) != 2 || !v[0].Held || !v[1].Held {
			t.Fatalf("node %d: hold vault %v %v, want both messages", i, v, err)
		}
		if box.Messages != 0 {
			t.Fatalf("node %d: INBOX shows %d messages", i, box.Messages)
		}
	}
	hits, _, _, err := e.c.Nodes[1].Mail().Search(ctx, mail.SearchQuery{Query: "kept despite", IncludeHeld: true})
	if err != nil || len(hits) != 2 {
		t.Fatalf("search of the hold vault: %v %v", hits, err)
	}
	if err := m.DeleteUser(ctx, alice); !errors.Is(err, mail.ErrHeld) {
		t.Fatalf("user del of a held user: %v, want ErrHeld", err)
	}
	t.Log(strings.TrimSpace(string(out)))
}
