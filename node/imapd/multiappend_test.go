package imapd_test

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMultiAppend (RFC 3502): several messages in one APPEND, with
// non-synchronizing and synchronizing literals, stored together with
// consecutive UIDs (APPENDUID lists them); a refusal of any one — a bad
// date on the second, the quota for their sum, a missing mailbox —
// stores none.
func TestMultiAppend(t *testing.T) {
	e, addrs := ownEnv(t)
	c := login(t, addrs[1], alice)
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " MULTIAPPEND ") {
		t.Errorf("CAPABILITY = %q, want MULTIAPPEND", u)
	}
	m1 := testMessage("ma1", "first", "one")
	m2 := testMessage("ma2", "second", "two")
	_, done := c.do("APPEND INBOX (\\Seen) {%d+}\r\n%s (\\Flagged) \"01-Jan-2020 10:00:00 +0000\" {%d+}\r\n%s", len(m1), m1, len(m2), m2)
	if !strings.HasPrefix(done, "OK [APPENDUID ") || !strings.HasSuffix(strings.SplitN(done, "]", 2)[0], " 1:2") {
		t.Fatalf("MULTIAPPEND = %q, want OK [APPENDUID uv 1:2]", done)
	}
	uv := strings.Fields(done)[2]
	// Synchronizing literals: a continuation before each.
	c.n++
	c.send("a%d APPEND INBOX {%d}\r\n", c.n, len(m1))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation = %q", l)
	}
	c.send("%s {%d}\r\n", m1, len(m2))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("second continuation = %q", l)
	}
	c.send("%s\r\n", m2)
	if _, done := c.until("a" + strconv.Itoa(c.n)); done != "OK [APPENDUID "+uv+" 3:4] APPEND completed" {
		t.Fatalf("MULTIAPPEND with sync literals = %q", done)
	}
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1:4 (UID FLAGS INTERNALDATE)")
	if len(u) != 4 || !strings.Contains(u[0], `FLAGS (\Seen)`) || !strings.Contains(u[1], `FLAGS (\Flagged)`) || !strings.Contains(u[1], `"01-Jan-2020 10:00:00 +0000"`) {
		t.Fatalf("stored = %q", u)
	}

	status := func() string {
		return find(c.ok("STATUS INBOX (MESSAGES UIDNEXT)"), "* STATUS")
	}
	before := status()
	// A bad date on the second message: BAD, and the first is not stored.
	c.expect("BAD", "APPEND INBOX {%d+}\r\n%s \"not a date\" {%d+}\r\n%s", len(m1), m1, len(m2), m2)
	// A missing mailbox.
	c.expect("NO [TRYCREATE]", "APPEND Nowhere {%d+}\r\n%s {%d+}\r\n%s", len(m1), m1, len(m2), m2)
	// A message over one log entry's worth cannot be part of one: NO
	// [TOOBIG], nothing stored (a single APPEND of it is fine).
	large := testMessage("ma3", "large", strings.Repeat("0123456789abcdef\r\n", 80000))
	c.expect("NO [TOOBIG]", "APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(m1), m1, len(large), large)
	// Over quota together, though the first alone would fit.
	used := 4 * len(m1)
	if err := e.c.Nodes[0].Mail().SetQuota(e.c.Ctx(10*time.Second), alice, uint64(used+len(m1)+len(m1)/2)); err != nil {
		t.Fatal(err)
	}
	e.waitAll()
	c.expect("NO [OVERQUOTA]", "APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(m1), m1, len(m2), m2)
	if after := status(); after != before {
		t.Errorf("STATUS after the refused MULTIAPPENDs = %q, before %q", after, before)
	}
	// The session goes on: a single APPEND that fits.
	c.expect("OK [APPENDUID "+uv+" 5]", "APPEND INBOX {%d+}\r\n%s", len(m1), m1)
}
