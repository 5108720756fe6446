package imapd_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// resync keeps the lines of a QRESYNC answer that carry changes: VANISHED
// and FETCH.
func resync(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "* VANISHED") || strings.Contains(l, " FETCH (") {
			out = append(out, l)
		}
	}
	return out
}

// TestQresyncAcrossNodes (RFC 7162 §3.2): flags stored and messages
// expunged at n1; a QRESYNC SELECT and a UID FETCH (CHANGEDSINCE m
// VANISHED) at n3 return exactly the changes and the VANISHED set that
// n1 returns, because the MODSEQs and the expunge tombstones come from the
// log.
func TestQresyncAcrossNodes(t *testing.T) {
	e, addrs := ownEnv(t)
	for i := 1; i <= 6; i++ {
		e.deliver(0, alice, testMessage(fmt.Sprint("qr", i), fmt.Sprint("s", i), "b"))
	}
	e.waitAll()
	c1 := login(t, addrs[0], alice)
	if u := c1.ok("ENABLE QRESYNC"); len(u) != 1 || u[0] != "* ENABLED QRESYNC" {
		t.Fatalf("ENABLE QRESYNC = %q", u)
	}
	sel := c1.ok("SELECT INBOX")
	uv, m := respCode(sel, "UIDVALIDITY"), respCode(sel, "HIGHESTMODSEQ")
	if uv == "" || m == "" {
		t.Fatalf("SELECT = %q, want UIDVALIDITY and HIGHESTMODSEQ", sel)
	}
	c1.ok(`STORE 2,4 +FLAGS.SILENT (\Flagged)`)
	c1.ok(`STORE 3,5 +FLAGS.SILENT (\Deleted)`)
	// Once QRESYNC is on, expunges are VANISHED of UIDs, not EXPUNGE.
	u, done := c1.do("EXPUNGE")
	if len(u) != 1 || u[0] != "* VANISHED 3,5" || !strings.HasPrefix(done, "OK [HIGHESTMODSEQ ") {
		t.Fatalf("EXPUNGE with QRESYNC = %q %q, want * VANISHED 3,5 and OK [HIGHESTMODSEQ n]", u, done)
	}
	e.waitAll()
	if st := c1.ok("STATUS INBOX (HIGHESTMODSEQ)"); find(st, "(HIGHESTMODSEQ "+respCode([]string{done}, "HIGHESTMODSEQ")+")") == "" {
		t.Errorf("STATUS after EXPUNGE = %q, EXPUNGE said %q", st, done)
	}

	// The whole exchange a client resyncing from m sees, at node i.
	answer := func(i int) (sel, fetch, known []string) {
		c := login(t, addrs[i], alice)
		c.ok("ENABLE QRESYNC")
		sel = resync(c.ok("SELECT INBOX (QRESYNC (%s %s))", uv, m))
		fetch = resync(c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %s VANISHED)", m))
		known = resync(c.ok("EXAMINE INBOX (QRESYNC (%s %s 1:4 (1:3 1,2,3)))", uv, m))
		return
	}
	sel1, fetch1, known1 := answer(0)
	wantSel := []string{
		"* VANISHED (EARLIER) 3,5",
		`* 2 FETCH (UID 2 FLAGS (\Flagged) MODSEQ (`,
		`* 3 FETCH (UID 4 FLAGS (\Flagged) MODSEQ (`,
	}
	if len(sel1) != len(wantSel) {
		t.Fatalf("QRESYNC SELECT at n1 = %q, want %q", sel1, wantSel)
	}
	for i, w := range wantSel {
		if !strings.HasPrefix(sel1[i], w) {
			t.Errorf("QRESYNC SELECT at n1 line %d = %q, want %q…", i, sel1[i], w)
		}
	}
	if len(fetch1) != 3 || fetch1[0] != "* VANISHED (EARLIER) 3,5" || !strings.Contains(fetch1[1], "UID 2 ") || !strings.Contains(fetch1[2], "UID 4 ") {
		t.Errorf("UID FETCH (CHANGEDSINCE VANISHED) at n1 = %q", fetch1)
	}
	if len(known1) == 0 || known1[0] != "* VANISHED (EARLIER) 3" {
		t.Errorf("QRESYNC with known UIDs 1:4 at n1 = %q, want VANISHED (EARLIER) 3 first", known1)
	}
	sel3, fetch3, known3 := answer(2)
	for _, x := range []struct {
		what     string
		at1, at3 []string
	}{{"SELECT (QRESYNC)", sel1, sel3}, {"UID FETCH (CHANGEDSINCE VANISHED)", fetch1, fetch3}, {"EXAMINE (QRESYNC known-uids)", known1, known3}} {
		if !slices.Equal(x.at1, x.at3) {
			t.Errorf("%s at n3 = %q, at n1 %q", x.what, x.at3, x.at1)
		}
	}

	// An expunge at n1 reaches a QRESYNC session at n3 as VANISHED.
	c3 := login(t, addrs[2], alice)
	c3.ok("ENABLE QRESYNC")
	c3.ok("SELECT INBOX")
	c1.ok(`UID STORE 6 +FLAGS.SILENT (\Deleted)`)
	if u := c1.ok("UID EXPUNGE 6"); len(u) != 1 || u[0] != "* VANISHED 6" {
		t.Fatalf("UID EXPUNGE with QRESYNC = %q", u)
	}
	e.waitAll()
	if u := c3.ok("NOOP"); find(u, "* VANISHED 6") == "" || find(u, "EXPUNGE") != "" {
		t.Errorf("NOOP at n3 after the expunge = %q, want * VANISHED 6", u)
	}
}

// TestQresyncRules: UIDVALIDITY mismatch (no resync data), [CLOSED] on a
// second SELECT, and the BAD cases of RFC 7162 §3.2.5 and §3.2.6.
func TestQresyncRules(t *testing.T) {
	e, addrs := ownEnv(t)
	e.deliver(0, alice, testMessage("qrr1", "s", "b"))
	e.deliver(0, alice, testMessage("qrr2", "s", "b"))
	e.waitAll()
	c := login(t, addrs[0], alice)
	c.expect("BAD", "SELECT INBOX (QRESYNC (1 1))") // not enabled
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " QRESYNC ") {
		t.Errorf("CAPABILITY = %q, want QRESYNC", u)
	}
	c.ok("ENABLE QRESYNC CONDSTORE")
	sel := c.ok("SELECT INBOX")
	uv := respCode(sel, "UIDVALIDITY")
	if find(sel, "[CLOSED]") != "" {
		t.Errorf("first SELECT = %q: nothing was open to close", sel)
	}
	c.ok(`STORE 1 +FLAGS.SILENT (\Seen)`)
	// Wrong UIDVALIDITY: a plain SELECT, nothing to resync from.
	u := c.ok("SELECT INBOX (QRESYNC (%d 1))", atoiT(t, uv)+1)
	if got := resync(u); len(got) != 0 {
		t.Errorf("QRESYNC with a wrong UIDVALIDITY = %q, want no VANISHED/FETCH", got)
	}
	if find(u, "* OK [CLOSED]") == "" || !strings.HasPrefix(u[0], "* OK [CLOSED]") {
		t.Errorf("second SELECT = %q, want * OK [CLOSED] first", u)
	}
	// Right UIDVALIDITY, MODSEQ 1: every message is reported.
	if got := resync(c.ok("SELECT INBOX (QRESYNC (%s 1))", uv)); len(got) != 2 || !strings.Contains(got[0], `FLAGS (\Seen)`) {
		t.Errorf("QRESYNC from MODSEQ 1 = %q, want both messages", got)
	}
	for _, bad := range []string{
		"FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)",  // not UID FETCH
		"UID FETCH 1:* (FLAGS) (VANISHED)",             // no CHANGEDSINCE
		"UID FETCH 1:* (FLAGS) (CHANGEDSINCE x)",       // not a number
		"SELECT INBOX (QRESYNC (0 1))",                 // UIDVALIDITY 0
		"SELECT INBOX (QRESYNC (1))",                   // no MODSEQ
		"SELECT INBOX (QRESYNC (1 1 1:2 (1:2 1)))",     // seq-match sizes differ
		"SELECT INBOX (QRESYNC (1 1 1:2 (1:2 1,2) x))", // too many
		"SELECT INBOX (FOO)",                           // unknown parameter
	} {
		c.expect("BAD", "%s", bad)
		c.ok("SELECT INBOX")
	}
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("number %q: %v", s, err)
	}
	return n
}

// TestQresyncIdle: with QRESYNC on, an expunge made at another node
// reaches an idling session at once as VANISHED (sent without waiting for
// anything else to flush it).
func TestQresyncIdle(t *testing.T) {
	e, addrs := ownEnv(t)
	e.deliver(0, alice, testMessage("qi1", "one", "b"))
	e.deliver(0, alice, testMessage("qi2", "two", "b"))
	e.waitAll()
	c := login(t, addrs[2], alice)
	c.ok("ENABLE QRESYNC")
	c.ok("SELECT INBOX")
	c.send("i1 IDLE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	c1 := login(t, addrs[0], alice)
	c1.ok("SELECT INBOX")
	c1.ok(`UID STORE 1 +FLAGS.SILENT (\Deleted)`)
	c1.ok("UID EXPUNGE 1")
	for {
		l, err := c.readLine(20 * time.Second)
		if err != nil {
			t.Fatalf("during IDLE: %v; want * VANISHED 1", err)
		}
		if strings.Contains(l, "EXPUNGE") {
			t.Fatalf("during IDLE: %q, want VANISHED, not EXPUNGE", l)
		}
		if l == "* VANISHED 1" {
			break
		}
		if !strings.Contains(l, " FETCH (UID 1 FLAGS (\\Deleted") {
			t.Fatalf("during IDLE: %q, want the flag change or * VANISHED 1", l)
		}
	}
	c.send("DONE\r\n")
	if _, done := c.until("i1"); !strings.HasPrefix(done, "OK") {
		t.Fatalf("IDLE → %q", done)
	}
	if u := c.ok("FETCH 1:* (UID)"); len(u) != 1 || !strings.Contains(u[0], "UID 2") {
		t.Errorf("after VANISHED: %q, want only UID 2 as message 1", u)
	}
}
