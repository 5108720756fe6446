package imapd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/imapd"
)

// Tests for issue #21's "What was seen" items that the current server
// serves; the others need the project's own protocol layer (node/imapd/wire).

// TestListEmptyPattern: LIST "" "" answers the hierarchy delimiter and
// root (RFC 9051 §6.3.9), as clients and imaptest use it.
func TestListEmptyPattern(t *testing.T) {
	e := newEnv(t, nil)
	c := login(t, e.addrs[0], alice)
	u := c.ok(`LIST "" ""`)
	if len(u) != 1 || u[0] != `* LIST (\Noselect) "/" ""` {
		t.Fatalf(`LIST "" "" = %q, want one * LIST (\Noselect) "/" ""`, u)
	}
}

// TestEnvelopeGroupsAndComments: group syntax in ENVELOPE is a start
// marker, the members and an end marker; an empty group is the two
// markers, not a fake address; comments in an addr-spec are dropped.
func TestEnvelopeGroupsAndComments(t *testing.T) {
	e := newEnv(t, nil)
	msg := "From: <user-from (comment)@ (comment) domain.org>\r\n" +
		"To: group: a@b, c@d;\r\n" +
		"Cc: undisclosed-recipients:;\r\n" +
		"Subject: groups\r\n\r\nbody\r\n"
	e.deliver(0, alice, msg)
	e.waitAll()
	c := login(t, e.addrs[1], alice)
	c.ok("EXAMINE INBOX")
	u := c.ok("FETCH 1 ENVELOPE")
	// go-imap writes a space between the addresses of a list, which RFC
	// 9051's grammar does not have ("(" 1*address ")"); compare without.
	got := strings.ReplaceAll(find(u, "ENVELOPE"), ") (", ")(")
	for _, want := range []string{
		`((NIL NIL "user-from" "domain.org"))`,
		`((NIL NIL "group" NIL)(NIL NIL "a" "b")(NIL NIL "c" "d")(NIL NIL NIL NIL))`,
		`((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("ENVELOPE %s\nlacks %s", got, want)
		}
	}
	if strings.Contains(got, "group:;") || strings.Contains(got, "(comment)") {
		t.Errorf("ENVELOPE %s holds raw group or comment text", got)
	}
}

// TestSearchFromWithComments: SEARCH FROM user-from@domain.org finds
// "From: <user-from (comment)@ (comment) domain.org>", through the index
// and by scanning, and finds nothing for another address.
func TestSearchFromWithComments(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(0, alice, "From: <user-from (comment)@ (comment) domain.org>\r\nSubject: one\r\n\r\nbody\r\n")
	e.deliver(0, alice, "From: other@domain.org\r\nSubject: two\r\n\r\nbody\r\n")
	e.waitAll()
	scanAddr := e.serve(0, func(o *imapd.Options) { o.ScanSearch = true })
	for _, scan := range []bool{false, true} {
		addr := e.addrs[0]
		if scan {
			addr = scanAddr
		}
		c := login(t, addr, alice)
		c.ok("EXAMINE INBOX")
		for q, want := range map[string]string{
			"FROM user-from@domain.org": "* SEARCH 1",
			"FROM user-from":            "* SEARCH 1",
			"FROM domain.org":           "* SEARCH 1 2",
			"FROM nobody@domain.org":    "* SEARCH",
		} {
			u := c.ok("SEARCH %s", q)
			if len(u) != 1 || strings.TrimSpace(u[0]) != want {
				t.Errorf("scan=%v: SEARCH %s = %q, want %q", scan, q, u, want)
			}
		}
	}
}

// TestNewKeywordSendsFlags: a keyword new to the mailbox brings an
// updated FLAGS, whether this session stored it or another one did
// (RFC 9051 §7.3.5).
func TestNewKeywordSendsFlags(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(0, alice, testMessage("k1", "one", "body"))
	e.waitAll()
	a := login(t, e.addrs[0], alice)
	b := login(t, e.addrs[0], alice)
	a.ok("SELECT INBOX")
	b.ok("SELECT INBOX")

	u := a.ok("STORE 1 +FLAGS ($Own)")
	if l := find(u, "* FLAGS "); !strings.Contains(l, "$Own") {
		t.Errorf("own STORE of a new keyword: FLAGS line %q in %q", l, u)
	}
	u = a.ok("STORE 1 -FLAGS ($Own)")
	if l := find(u, "* FLAGS "); l != "" {
		t.Errorf("STORE of a known keyword sent FLAGS again: %q", l)
	}

	b.ok("STORE 1 +FLAGS ($Other)")
	eventually(t, 10*time.Second, "FLAGS with $Other at the other session", func() bool {
		u := a.ok("NOOP")
		return strings.Contains(find(u, "* FLAGS "), "$Other")
	})
}
