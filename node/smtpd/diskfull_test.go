package smtpd_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestDiskFull (docs/TESTPLAN.md F13, SMTP row "quorum cannot write"): while the
// leader's disk is full, a transaction gets 452 4.3.1 and nothing is
// stored; a full disk on one follower does not stop the cluster (the
// leader and the other follower are a quorum); when space returns, the
// sender's retry is accepted once.
func TestDiskFull(t *testing.T) {
	f := startFixture(t)
	c := f.c
	user := f.users["user"]
	before := f.counts(t, user)[0]

	send := func(node int, id string) (int, string) {
		cl := greet(t, c.Cfgs[node].SMTPAddr)
		defer cl.conn.Close()
		cl.mailTo("s@remote.test", "user@example.test")
		cl.cmd("DATA", 354, "")
		cl.send(message(id, 1000) + ".\r\n")
		code, lines, err := cl.reply()
		if err != nil {
			t.Fatalf("DATA reply: %v", err)
		}
		return code, lines[0]
	}

	// One follower's disk full: the cluster goes on.
	l := c.WaitLeader(10 * time.Second)
	fol := (l + 1) % 3
	c.SetDiskFull(fol, true)
	if code, text := send(l, "disk-one-full"); code != 250 {
		t.Fatalf("one follower's disk full: %d %s, want 250", code, text)
	}
	c.SetDiskFull(fol, false)

	// The leader's disk full: 452 4.3.1, never 250, nothing stored.
	l = c.WaitLeader(10 * time.Second)
	c.SetDiskFull(l, true)
	code, text := send(l, "disk-leader-full")
	if code != 452 || text[:6] != "4.3.1 " {
		t.Fatalf("leader's disk full: %d %s, want 452 4.3.1", code, text)
	}
	c.SetDiskFull(l, false)

	// Space is back: the retry of the same bytes is accepted, once, at
	// whichever node the sender picks (a new election may be under way:
	// temporary failures are retried as an MTA would).
	deadline := time.Now().Add(20 * time.Second)
	for attempt := 0; ; attempt++ {
		code, text := send(attempt%3, "disk-leader-full")
		if code == 250 {
			break
		}
		if code/100 != 4 || time.Now().After(deadline) {
			t.Fatalf("retry after space returned: %d %s", code, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.waitCount(t, user, before+2)
	for i, n := range c.Nodes {
		ids := map[string]int{}
		for _, m := range messages(t, n, user) {
			for _, id := range []string{"disk-one-full", "disk-leader-full"} {
				if containsID(m, id) {
					ids[id]++
				}
			}
		}
		if ids["disk-one-full"] != 1 || ids["disk-leader-full"] != 1 {
			t.Errorf("node %d: copies %v, want one of each", i, ids)
		}
	}
}

func containsID(m []byte, id string) bool {
	return bytes.Contains(m, []byte(fmt.Sprintf("X-Test-Id: %s\r\n", id)))
}
