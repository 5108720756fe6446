package smtpd_test

import (
	"testing"
	"time"
)

// TestMinority: a node cut off from the other two greets 421 4.3.2 within
// the cut-off bound (2 × election timeout after it last heard a leader) and
// fails its in-flight transaction with 451 4.3.0; the majority keeps
// accepting; after the heal the node greets 220 again and the sender's
// retry of the failed transaction leaves exactly one copy.
func TestMinority(t *testing.T) {
	f := startFixture(t)
	c := f.c
	user := f.users["user"]
	iso := f.follower(t)
	ids := []string{c.Cfgs[0].ID, c.Cfgs[1].ID, c.Cfgs[2].ID}
	prof := c.Nodes[iso].Raft().Profile()

	// A transaction in flight on the node about to be cut off.
	inflight := greet(t, c.Cfgs[iso].SMTPAddr)
	inflight.mailTo("s@remote.test", "user@example.test")
	msg := message("minority-1", 2000) + ".\r\n"

	start := time.Now()
	c.Net.Isolate(ids[iso], ids...)

	// The follower notices the silence after a heartbeat timeout (hashicorp
	// raft randomises it in [T, 2T]), then waits out the cut-off bound.
	bound := 2*prof.Heartbeat + 2*prof.Election + 500*time.Millisecond
	var greeted time.Duration
	c.Eventually(bound, "the isolated node greets 421", func() bool {
		cl := dial(t, c.Cfgs[iso].SMTPAddr)
		defer cl.conn.Close()
		code, lines, err := cl.reply()
		if err != nil {
			return false
		}
		if code == 421 {
			if lines[0] != "4.3.2 "+c.Cfgs[iso].Hostname+" cluster unavailable, try another MX" {
				t.Fatalf("421 text %q", lines[0])
			}
			greeted = time.Since(start)
			return true
		}
		return false
	})
	t.Logf("isolated node greets 421 after %v (election timeout %v)", greeted, prof.Election)

	// The in-flight transaction fails temporarily, never 250 or 5xx.
	inflight.cmd("DATA", 354, "")
	inflight.send(msg)
	inflight.expect(451, "4.3.0")

	// The majority accepts meanwhile.
	other := (iso + 1) % 3
	cl := greet(t, c.Cfgs[other].SMTPAddr)
	cl.mailTo("s@remote.test", "bob@example.test")
	cl.cmd("DATA", 354, "")
	cl.send(message("majority-1", 1000) + ".\r\n")
	cl.expect(250, "2.0.0")

	c.Net.HealAll()
	c.Eventually(10*time.Second, "the healed node greets 220", func() bool {
		cl := dial(t, c.Cfgs[iso].SMTPAddr)
		defer cl.conn.Close()
		code, _, _ := cl.reply()
		return code == 220
	})
	// The sender retries the failed transaction at the healed node.
	retry := greet(t, c.Cfgs[iso].SMTPAddr)
	retry.mailTo("s@remote.test", "user@example.test")
	retry.cmd("DATA", 354, "")
	retry.send(msg)
	retry.expect(250, "2.0.0")
	c.WaitConverged(15 * time.Second)
	f.waitCount(t, user, 1)
	f.waitCount(t, f.users["bob"], 1)
}
