package imapd_test

import (
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/imapd"
)

// Tests of the own protocol layer (Options.OwnProtocol, conn.go over
// node/imapd/wire): the issue #21 items that go-imap's server cannot do.

func ownEnv(t *testing.T) (*env, []string) {
	e := newEnv(t, nil)
	var addrs []string
	for i := range e.addrs {
		addrs = append(addrs, e.serve(i, func(o *imapd.Options) { o.OwnProtocol = true }))
	}
	return e, addrs
}

// TestOwnSyntaxErrorsBADAtOnce: an unterminated quoted string and deep
// nesting are answered BAD at once (go-imap read on, waited 30 s and said
// NO [SERVERBUG]), and the session goes on.
func TestOwnSyntaxErrorsBADAtOnce(t *testing.T) {
	_, addrs := ownEnv(t)
	c := login(t, addrs[0], alice)
	for _, bad := range []string{
		`a1 CREATE "imaptest`,
		"a2 LIST " + strings.Repeat("(", 64) + `"" "*"` + strings.Repeat(")", 64),
		"a3 SELECT INBOX extra junk",
		"a4 FROBNICATE",
		"a5 LOGIN x y",
	} {
		c.send("%s\r\n", bad)
		l, err := c.readLine(5 * time.Second)
		if err != nil {
			t.Fatalf("%q: no answer within 5 s: %v", bad, err)
		}
		if tag := strings.Fields(bad)[0]; !strings.HasPrefix(l, tag+" BAD ") {
			t.Errorf("%q → %q, want %s BAD", bad, l, tag)
		}
	}
	c.ok("NOOP")
}

// TestOwnID: ID (RFC 2971) is answered (go-imap: BAD Unknown command).
func TestOwnID(t *testing.T) {
	_, addrs := ownEnv(t)
	c := dial(t, addrs[1])
	u := c.ok(`ID ("name" "test" "version" "1")`)
	if find(u, `* ID ("name" "Continuum"`) == "" {
		t.Errorf("ID = %q", u)
	}
	c.ok("ID NIL")
	c.expect("BAD", `ID ("odd")`)
}

// TestOwnMailboxNames: names that are not modified UTF-7 get BAD with a
// clear text (go-imap: NO [SERVERBUG]); valid ones round-trip, as mUTF-7
// and, after ENABLE UTF8=ACCEPT, as UTF-8; LIST "" "" gives the delimiter.
func TestOwnMailboxNames(t *testing.T) {
	_, addrs := ownEnv(t)
	c := login(t, addrs[0], alice)
	for _, cmd := range []string{`CREATE "bad&name"`, `LIST "" "!#$&'+,-..."`, `SELECT "&AGE-"`} {
		_, done := c.do("%s", cmd)
		if !strings.HasPrefix(done, "BAD ") || !strings.Contains(done, "modified UTF-7") {
			t.Errorf("%s → %q, want BAD naming modified UTF-7", cmd, done)
		}
	}
	if u := c.ok(`LIST "" ""`); len(u) != 1 || u[0] != `* LIST (\Noselect) "/" ""` {
		t.Errorf(`LIST "" "" = %q`, u)
	}
	c.ok("CREATE Entw&APw-rfe")
	if u := c.ok(`LIST "" "Entw*"`); find(u, `"/" Entw&APw-rfe`) == "" {
		t.Errorf("LIST = %q, want Entw&APw-rfe", u)
	}
	if u := c.ok("ENABLE UTF8=ACCEPT"); find(u, "* ENABLED UTF8=ACCEPT") == "" {
		t.Errorf("ENABLE = %q", u)
	}
	if u := c.ok(`LIST "" "Entw*"`); find(u, `"/" "Entwürfe"`) == "" {
		t.Errorf("LIST after UTF8=ACCEPT = %q, want \"Entwürfe\"", u)
	}
	c.ok(`STATUS "Entwürfe" (MESSAGES)`)
}

// TestOwnAppendSelectStatus: APPEND with a synchronizing literal (the
// continuation comes before the literal is read) and a non-synchronizing
// one, APPENDUID, then SELECT, STATUS and EXAMINE see the messages.
func TestOwnAppendSelectStatus(t *testing.T) {
	_, addrs := ownEnv(t)
	c := login(t, addrs[2], alice)
	msg := "From: a@b\r\nSubject: own\r\n\r\nhello\r\n"
	c.send("s1 APPEND INBOX (\\Flagged) {%d}\r\n", len(msg))
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("APPEND: %q, want a continuation", l)
	}
	c.send("%s\r\n", msg)
	if _, done := c.until("s1"); !strings.HasPrefix(done, "OK [APPENDUID ") {
		t.Fatalf("APPEND → %q", done)
	}
	c.send("s2 APPEND INBOX {%d+}\r\n%s\r\n", len(msg), msg)
	if _, done := c.until("s2"); !strings.HasPrefix(done, "OK [APPENDUID ") {
		t.Fatalf("APPEND LITERAL+ → %q", done)
	}
	if u := c.ok("STATUS INBOX (MESSAGES UIDNEXT UNSEEN)"); find(u, "* STATUS INBOX (MESSAGES 2 UIDNEXT 3 UNSEEN 2)") == "" {
		t.Errorf("STATUS = %q", u)
	}
	u, done := c.do("SELECT INBOX")
	if !strings.HasPrefix(done, "OK [READ-WRITE]") || find(u, "* 2 EXISTS") == "" || find(u, `\Flagged`) == "" {
		t.Errorf("SELECT = %q %q", u, done)
	}
	c.ok("UNSELECT")
	if _, done := c.do("EXAMINE INBOX"); !strings.HasPrefix(done, "OK [READ-ONLY]") {
		t.Errorf("EXAMINE → %q", done)
	}
	c.expect("NO [TRYCREATE]", "APPEND Nowhere {1+}\r\nx")
	c.expect("BAD", "APPEND INBOX {3+}\r\na\x00b")
	c.ok("NOOP")
}

// TestOwnSelectReadOnlyWhenCutOff: SELECT on a node without a leader says
// [READ-ONLY] (go-imap could not) and refuses writes.
func TestOwnSelectReadOnlyWhenCutOff(t *testing.T) {
	e, addrs := ownEnv(t)
	e.deliver(0, alice, testMessage("c1", "before cut", "b"))
	e.waitAll()
	iso := (e.c.Leader() + 1) % 3
	var others []string
	for _, cfg := range e.c.Cfgs {
		others = append(others, cfg.ID)
	}
	e.c.Net.Isolate(e.c.Cfgs[iso].ID, others...)
	eventually(t, 20*time.Second, "isolated node cut off", func() bool { return e.c.Nodes[iso].Mail().CutOff() })
	c := login(t, addrs[iso], alice)
	u, done := c.do("SELECT INBOX")
	if !strings.HasPrefix(done, "OK [READ-ONLY]") || find(u, "* 1 EXISTS") == "" || find(u, "[PERMANENTFLAGS ()]") == "" {
		t.Errorf("SELECT at a cut-off node = %q %q", u, done)
	}
	c.expect("NO [UNAVAILABLE]", "CREATE NewBox")
}

// TestOwnLoginRules: LOGIN is refused without TLS off loopback-dev, states
// are enforced, AUTHENTICATE PLAIN works with and without SASL-IR.
func TestOwnLoginRules(t *testing.T) {
	_, addrs := ownEnv(t)
	c := dial(t, addrs[0])
	c.expect("BAD", "SELECT INBOX")
	c.expect("NO [AUTHENTICATIONFAILED]", `LOGIN alice@example.test wrong`)
	// \0alice@example.test\0correct horse battery
	c.ok("AUTHENTICATE PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNlIGJhdHRlcnk=")
	c.expect("BAD", "LOGIN a b")
	c.ok("UNAUTHENTICATE")
	c.send("x1 AUTHENTICATE PLAIN\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("AUTHENTICATE: %q, want a continuation", l)
	}
	c.send("AGFsaWNlQGV4YW1wbGUudGVzdABjb3JyZWN0IGhvcnNlIGJhdHRlcnk=\r\n")
	if _, done := c.until("x1"); !strings.HasPrefix(done, "OK") {
		t.Fatalf("AUTHENTICATE without IR → %q", done)
	}
	c.ok("LOGOUT")
}
