package imapd_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestPartial (RFC 9394): paged SEARCH, SORT and FETCH; the range counted
// from the first or the last result, the other RETURN options on the
// whole result, SAVE of the page, PARTIAL with CHANGEDSINCE, and every
// malformed range answered BAD.
func TestPartial(t *testing.T) {
	e, addrs := ownEnv(t)
	for i := 1; i <= 10; i++ {
		e.deliver(0, alice, testMessage(fmt.Sprintf("p%d", i), fmt.Sprintf("page %d", i), "body"))
	}
	e.waitAll()
	c := login(t, addrs[1], alice)
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " PARTIAL ") {
		t.Errorf("CAPABILITY = %q, want PARTIAL", u)
	}
	c.ok("SELECT INBOX")
	one := func(cmd, want string) {
		t.Helper()
		u := c.ok("%s", cmd)
		want = strings.Replace(want, "TAG", fmt.Sprintf(`(TAG "a%d")`, c.n), 1)
		if len(u) != 1 || u[0] != want {
			t.Errorf("%s = %q, want %q", cmd, u, want)
		}
	}
	one("SEARCH RETURN (PARTIAL 1:3) ALL", "* ESEARCH TAG PARTIAL (1:3 1:3)")
	one("UID SEARCH RETURN (PARTIAL -1:-3) ALL", "* ESEARCH TAG UID PARTIAL (-1:-3 8:10)")
	one("SEARCH RETURN (PARTIAL 9:12 COUNT) ALL", "* ESEARCH TAG COUNT 10 PARTIAL (9:12 9:10)")
	one("SEARCH RETURN (MIN PARTIAL 5:3) 2:9", "* ESEARCH TAG MIN 2 PARTIAL (5:3 4:6)") // positions 3–5 of 2…9
	one("SEARCH RETURN (PARTIAL 11:20) ALL", "* ESEARCH TAG PARTIAL (11:20 NIL)")
	one("SEARCH RETURN (PARTIAL -20:-11) ALL", "* ESEARCH TAG PARTIAL (-20:-11 NIL)")
	one("SEARCH RETURN (PARTIAL -12:-9) ALL", "* ESEARCH TAG PARTIAL (-12:-9 1:2)")
	one("SEARCH RETURN (PARTIAL 1:5) SUBJECT nothing-matches", "* ESEARCH TAG PARTIAL (1:5 NIL)")
	// SORT: positions in sort order, the set keeps that order. REVERSE
	// SUBJECT: "page 9", "page 8" … "page 2", "page 10", "page 1".
	one("SORT RETURN (PARTIAL 1:3) (REVERSE SUBJECT) UTF-8 ALL", "* ESEARCH TAG PARTIAL (1:3 9,8,7)")
	one("UID SORT RETURN (COUNT PARTIAL -1:-2) (REVERSE SUBJECT) UTF-8 ALL", "* ESEARCH TAG UID COUNT 10 PARTIAL (-1:-2 10,1)")

	// SAVE keeps the page: $ is messages 2 and 3.
	if u := c.ok("SEARCH RETURN (SAVE PARTIAL 2:3) ALL"); len(u) != 1 || !strings.HasSuffix(u[0], "PARTIAL (2:3 2:3)") {
		t.Errorf("SAVE PARTIAL: %q", u)
	}
	if u := c.ok("FETCH $ (UID)"); !slices.Equal(u, []string{"* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)"}) {
		t.Errorf("FETCH $ after SAVE PARTIAL 2:3 = %q", u)
	}

	// FETCH: the set's messages at those positions.
	for _, x := range []struct {
		cmd  string
		want []string
	}{
		{"UID FETCH 1:* (UID) (PARTIAL -1:-2)", []string{"* 9 FETCH (UID 9)", "* 10 FETCH (UID 10)"}},
		{"FETCH 2:* (UID) (PARTIAL 2:3)", []string{"* 3 FETCH (UID 3)", "* 4 FETCH (UID 4)"}},
		{"UID FETCH 4,6,8 (UID) (PARTIAL 2:5)", []string{"* 6 FETCH (UID 6)", "* 8 FETCH (UID 8)"}},
		{"UID FETCH 1:* (UID) (PARTIAL 11:12)", nil},
	} {
		if u := c.ok("%s", x.cmd); !slices.Equal(u, x.want) {
			t.Errorf("%s = %q, want %q", x.cmd, u, x.want)
		}
	}
	// With CHANGEDSINCE: PARTIAL picks among the set, CHANGEDSINCE keeps
	// the changed ones, in either order of the modifiers.
	u := c.ok("FETCH 10 (MODSEQ)")
	m := regexp.MustCompile(`MODSEQ \((\d+)\)`).FindStringSubmatch(strings.Join(u, " "))
	if m == nil {
		t.Fatalf("FETCH 10 (MODSEQ) = %q", u)
	}
	c.ok(`STORE 10 +FLAGS.SILENT (\Flagged)`)
	if u := c.ok("UID FETCH 1:* (UID) (PARTIAL -1:-3 CHANGEDSINCE %s)", m[1]); len(u) != 1 || !strings.HasPrefix(u[0], "* 10 FETCH (UID 10 MODSEQ (") {
		t.Errorf("PARTIAL -1:-3 CHANGEDSINCE = %q, want message 10 alone", u)
	}
	if u := c.ok("UID FETCH 1:* (UID) (CHANGEDSINCE %s PARTIAL 1:2)", m[1]); len(u) != 0 {
		t.Errorf("CHANGEDSINCE PARTIAL 1:2 = %q, want nothing (1 and 2 unchanged)", u)
	}

	for _, bad := range []string{
		"SEARCH RETURN (PARTIAL 1:5 ALL) ALL",
		"SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:9) ALL",
		"SEARCH RETURN (PARTIAL) ALL",
		"SEARCH RETURN (PARTIAL 0:5) ALL",
		"SEARCH RETURN (PARTIAL 1:*) ALL",
		"SEARCH RETURN (PARTIAL -1:5) ALL",
		"SEARCH RETURN (PARTIAL 5) ALL",
		`SEARCH RETURN (PARTIAL "1:5") ALL`,
		"SEARCH RETURN (PARTIAL 1:4294967296) ALL",
		"SORT RETURN (ALL PARTIAL 1:2) (DATE) UTF-8 ALL",
		"UID FETCH 1:* (UID) (PARTIAL 1:5 PARTIAL 1:2)",
		"UID FETCH 1:* (UID) (PARTIAL)",
		"UID FETCH 1:* (UID) (PARTIAL -0:-3)",
	} {
		c.expect("BAD", "%s", bad)
	}
}
