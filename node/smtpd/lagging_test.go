package smtpd_test

import (
	"testing"
	"time"
)

// TestLaggingNodeDoesNotBounce: a node that has not seen a new user yet
// (here: cut off from the others while the user is created) must not
// answer 550 5.1.1 for it — a 5xx caused by the cluster loses mail. It
// answers 451 4.3.0 while it cannot confirm, and 250 once it has caught up.
func TestLaggingNodeDoesNotBounce(t *testing.T) {
	f := startFixture(t)
	c := f.c
	lag := f.follower(t)
	ids := []string{c.Cfgs[0].ID, c.Cfgs[1].ID, c.Cfgs[2].ID}

	cl := greet(t, c.Cfgs[lag].SMTPAddr) // the session is open before the cut
	defer cl.conn.Close()
	cl.cmd("EHLO client.test", 250, "")
	cl.cmd("MAIL FROM:<s@remote.test>", 250, "")

	c.Net.Isolate(ids[lag], ids...)
	l := (lag + 1) % 3
	c.Eventually(10*time.Second, "a leader on the majority side", func() bool {
		return c.Nodes[l].Raft().IsLeader() || c.Nodes[(lag+2)%3].Raft().IsLeader()
	})
	if !c.Nodes[l].Raft().IsLeader() {
		l = (lag + 2) % 3
	}
	if _, err := c.Nodes[l].Mail().AddUser(c.Ctx(10*time.Second), "late@example.test", "secret-password", 0); err != nil {
		t.Fatal(err)
	}
	cl.cmd("RCPT TO:<late@example.test>", 451, "4.3.0")
	// A user nobody has is refused only where a leader confirms it: the
	// cut-off node cannot, so that too is temporary.
	cl.cmd("RCPT TO:<nobody@example.test>", 451, "4.3.0")

	c.Net.HealAll()
	c.Eventually(15*time.Second, "the lagging node accepts the new user", func() bool {
		cl.send("RCPT TO:<late@example.test>\r\n")
		code, _, err := cl.reply()
		if err != nil {
			t.Fatalf("RCPT after heal: %v", err)
		}
		return code == 250
	})
	cl.cmd("RCPT TO:<nobody@example.test>", 550, "5.1.1")
}
