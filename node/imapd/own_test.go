package imapd_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Tests of the protocol layer (conn.go over node/imapd/wire) for the
// issue #21 items that go-imap's server could not do.

func ownEnv(t *testing.T) (*env, []string) {
	e := newEnv(t, nil)
	return e, e.addrs
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
	if u := c.ok(`LIST "" "Entw*"`); find(u, `"/" "Entw&APw-rfe"`) == "" {
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

// TestOwnBinaryAndLiteral8: a part with NUL bytes appended as a literal8
// is sent as a literal8 for BODY[1] (a plain literal cannot carry NUL), a
// partial BINARY fetch names its origin (BINARY[1]<0>), and BINARY.SIZE
// works (RFC 3516; issue #21).
func TestOwnBinaryAndLiteral8(t *testing.T) {
	_, addrs := ownEnv(t)
	c := login(t, addrs[0], alice)
	bin := "ab\x00cd\x00ef"
	msg := "From: a@b\r\nSubject: bin\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n" +
		"--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" + bin + "\r\n--x--\r\n"
	c.send("b1 APPEND INBOX ~{%d+}\r\n%s\r\n", len(msg), msg)
	if _, done := c.until("b1"); !strings.HasPrefix(done, "OK") {
		t.Fatalf("APPEND literal8 → %q", done)
	}
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1 (BODY.PEEK[1])")
	if !strings.Contains(u[0], "BODY[1] ~{8}") {
		t.Errorf("BODY.PEEK[1] of a NUL part = %q, want a literal8 ~{8}", u[0])
	}
	u = c.ok("FETCH 1 (BINARY.PEEK[1]<0.5>)")
	if !strings.Contains(u[0], "BINARY[1]<0> ~{5}") {
		t.Errorf("partial BINARY = %q, want BINARY[1]<0> ~{5}", u[0])
	}
	if u := c.ok("FETCH 1 (BINARY.SIZE[1])"); !strings.Contains(u[0], "BINARY.SIZE[1] 8") {
		t.Errorf("BINARY.SIZE = %q", u)
	}
}

// TestOwnSelectedCommands: FETCH, STORE, SEARCH (plain and ESEARCH with
// SAVE), COPY, MOVE, EXPUNGE and UID forms through the own layer, and the
// ENVELOPE grammar (no space between addresses).
func TestOwnSelectedCommands(t *testing.T) {
	e, addrs := ownEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver(0, alice, testMessage(fmt.Sprint("m", i), fmt.Sprint("subject ", i), "body"))
	}
	e.waitAll()
	c := login(t, addrs[1], alice)
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1:* (UID FLAGS ENVELOPE)")
	if len(u) != 3 || !strings.Contains(u[0], "UID 1 FLAGS () ENVELOPE (") {
		t.Fatalf("FETCH = %q", u)
	}
	if u := c.ok(`STORE 2 +FLAGS (\Seen)`); find(u, `* 2 FETCH (FLAGS (\Seen))`) == "" {
		t.Errorf("STORE = %q", u)
	}
	if u := c.ok("SEARCH UNSEEN"); find(u, "* SEARCH 1 3") == "" {
		t.Errorf("SEARCH UNSEEN = %q", u)
	}
	if u := c.ok("UID SEARCH RETURN (MIN COUNT SAVE) SUBJECT subject"); len(u) != 1 || !strings.HasPrefix(u[0], `* ESEARCH (TAG "a`) || !strings.HasSuffix(u[0], `") UID MIN 1 COUNT 3`) {
		t.Errorf("ESEARCH = %q", u)
	}
	if u := c.ok("UID FETCH $ (FLAGS)"); len(u) != 3 {
		t.Errorf("UID FETCH $ = %q", u)
	}
	c.ok("CREATE Other")
	if _, done := c.do("COPY 1 Other"); !strings.HasPrefix(done, "OK [COPYUID ") {
		t.Errorf("COPY → %q", done)
	}
	u, done := c.do("UID MOVE 3 Other")
	if !strings.HasPrefix(done, "OK") || find(u, "* OK [COPYUID ") == "" || find(u, "* 3 EXPUNGE") == "" {
		t.Errorf("MOVE = %q %q", u, done)
	}
	c.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	if u := c.ok("EXPUNGE"); find(u, "* 1 EXPUNGE") == "" {
		t.Errorf("EXPUNGE = %q", u)
	}
	if u := c.ok("STATUS Other (MESSAGES)"); find(u, "MESSAGES 2") == "" {
		t.Errorf("STATUS Other = %q", u)
	}
	c.expect("BAD", "FETCH 1 (BODY[HEADER.FIELDS])")
	c.expect("BAD", "FETCH 0 FLAGS")
	c.expect("BAD", "SEARCH FOO")
}

// TestOwnIdle: a delivery through another node is announced during IDLE.
func TestOwnIdle(t *testing.T) {
	e, addrs := ownEnv(t)
	c := login(t, addrs[2], alice)
	c.ok("SELECT INBOX")
	c.send("i1 IDLE\r\n")
	if l := c.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	e.deliver(0, alice, testMessage("idle", "during idle", "b"))
	if l, err := c.readLine(20 * time.Second); err != nil || l != "* 1 EXISTS" {
		t.Fatalf("during IDLE: %q, %v; want * 1 EXISTS", l, err)
	}
	c.send("DONE\r\n")
	if _, done := c.until("i1"); !strings.HasPrefix(done, "OK") {
		t.Fatalf("IDLE → %q", done)
	}
}

// TestOwnEnvelopeGrammar: ENVELOPE address lists as RFC 9051 writes them,
// with no space between addresses (go-imap put one), groups as markers,
// source routes as the adl.
func TestOwnEnvelopeGrammar(t *testing.T) {
	e, addrs := ownEnv(t)
	e.deliver(0, alice, "From: Name <@route:user@domain>\r\nTo: group: a@b, c@d;, e@f\r\nSubject: g\r\n\r\nbody\r\n")
	e.waitAll()
	c := login(t, addrs[0], alice)
	c.ok("EXAMINE INBOX")
	u := c.ok("FETCH 1 ENVELOPE")
	want := `((NIL NIL "group" NIL)(NIL NIL "a" "b")(NIL NIL "c" "d")(NIL NIL NIL NIL)(NIL NIL "e" "f"))`
	if !strings.Contains(u[0], want) {
		t.Errorf("ENVELOPE = %q, want To %s", u[0], want)
	}
	// A source route is the address's adl (RFC 9051 §7.5.2), not part of
	// its mailbox.
	if from := `(("Name" "@route" "user" "domain"))`; !strings.Contains(u[0], from) {
		t.Errorf("ENVELOPE = %q, want From %s", u[0], from)
	}
}

// TestRecentRev1: the \Recent rule (docs/notes/imap-server.md): for an
// IMAP4rev1 session, nothing is recent at SELECT and what arrives while
// selected is, with RECENT after EXISTS, \Recent in FLAGS and SEARCH
// RECENT/NEW/OLD to match; an IMAP4rev2 session sees none of it. The rule
// depends only on the order of log entries and the session's SELECT, so it
// is the same on every node.
func TestRecentRev1(t *testing.T) {
	e, addrs := ownEnv(t)
	e.deliver(0, alice, testMessage("r1", "old one", "b"))
	e.waitAll()
	c := login(t, addrs[1], alice)
	if u := c.ok("SELECT INBOX"); find(u, "* 0 RECENT") == "" {
		t.Errorf("SELECT = %q, want * 0 RECENT", u)
	}
	e.deliver(2, alice, testMessage("r2", "new one", "b"))
	var u []string
	eventually(t, 10*time.Second, "EXISTS for the new message", func() bool {
		u = c.ok("NOOP")
		return find(u, "* 2 EXISTS") != ""
	})
	if find(u, "* 1 RECENT") == "" {
		t.Errorf("NOOP = %q, want * 1 RECENT after EXISTS", u)
	}
	if f := c.ok("FETCH 1:2 FLAGS"); strings.Contains(f[0], `\Recent`) || !strings.Contains(f[1], `\Recent`) {
		t.Errorf("FETCH FLAGS = %q, want \\Recent on 2 only", f)
	}
	for q, want := range map[string]string{"RECENT": "* SEARCH 2", "NEW": "* SEARCH 2", "OLD": "* SEARCH 1", "NOT RECENT": "* SEARCH 1"} {
		if u := c.ok("SEARCH %s", q); len(u) != 1 || u[0] != want {
			t.Errorf("SEARCH %s = %q, want %q", q, u, want)
		}
	}
	c.expect("BAD", `STORE 1 +FLAGS (\Recent)`)

	r2 := login(t, addrs[1], alice)
	r2.ok("ENABLE IMAP4rev2")
	if u := r2.ok("SELECT INBOX"); find(u, "RECENT") != "" {
		t.Errorf("rev2 SELECT = %q, want no RECENT", u)
	}
	e.deliver(0, alice, testMessage("r3", "third", "b"))
	eventually(t, 10*time.Second, "EXISTS at the rev2 session", func() bool {
		u = r2.ok("NOOP")
		return find(u, "* 3 EXISTS") != ""
	})
	if find(u, "RECENT") != "" {
		t.Errorf("rev2 NOOP = %q, want no RECENT", u)
	}
}

// TestMoveIntoSelectedMailbox: MOVE into the selected mailbox gives the
// messages new UIDs (COPYUID), EXPUNGE for the old and EXISTS for the new,
// as Dovecot does (go-imap's server answered NO [CANNOT]).
func TestMoveIntoSelectedMailbox(t *testing.T) {
	e, addrs := ownEnv(t)
	e.deliver(0, alice, testMessage("mv1", "one", "b"))
	e.deliver(0, alice, testMessage("mv2", "two", "b"))
	e.waitAll()
	c := login(t, addrs[0], alice)
	c.ok("SELECT INBOX")
	u := c.ok("UID MOVE 1 INBOX")
	if find(u, "* OK [COPYUID ") == "" || !strings.Contains(find(u, "COPYUID"), " 1 3]") || find(u, "* 1 EXPUNGE") == "" || find(u, "* 2 EXISTS") == "" {
		t.Fatalf("MOVE into the selected mailbox = %q", u)
	}
	f := c.ok("FETCH 1:* (UID FLAGS)")
	if len(f) != 2 || !strings.Contains(f[0], "UID 2 ") || !strings.Contains(f[1], "UID 3 ") || strings.Contains(f[1], `\Deleted`) {
		t.Errorf("after MOVE: %q, want UIDs 2 and 3, none \\Deleted", f)
	}
}

// TestCondstoreAcrossNodes (RFC 7162 CONDSTORE): the MODSEQ of every change
// comes from the log, so after STOREs at n1 a FETCH (CHANGEDSINCE m) at n3
// returns exactly what it returns at n1, HIGHESTMODSEQ agrees, and STORE
// (UNCHANGEDSINCE) refuses a message changed since with OK [MODIFIED].
func TestCondstoreAcrossNodes(t *testing.T) {
	e, addrs := ownEnv(t)
	for i := 1; i <= 4; i++ {
		e.deliver(0, alice, testMessage(fmt.Sprint("cs", i), fmt.Sprint("s", i), "b"))
	}
	e.waitAll()
	c1 := login(t, addrs[0], alice)
	u := c1.ok("SELECT INBOX (CONDSTORE)")
	m := respCode(u, "HIGHESTMODSEQ")
	if m == "" {
		t.Fatalf("SELECT (CONDSTORE) = %q, want HIGHESTMODSEQ", u)
	}
	st := c1.ok(`STORE 2,4 +FLAGS (\Flagged)`)
	if len(st) != 2 || !strings.Contains(st[0], "MODSEQ (") || !strings.Contains(st[0], "UID 2") {
		t.Errorf("STORE with CONDSTORE = %q, want UID and MODSEQ", st)
	}
	e.waitAll()
	fetch := func(c *client) []string {
		return c.ok("FETCH 1:* (UID FLAGS) (CHANGEDSINCE %s)", m)
	}
	at1 := fetch(c1)
	if len(at1) != 2 || !strings.Contains(at1[0], "UID 2 ") || !strings.Contains(at1[1], "UID 4 ") {
		t.Fatalf("CHANGEDSINCE at n1 = %q, want messages 2 and 4", at1)
	}
	c3 := login(t, addrs[2], alice)
	u3 := c3.ok("SELECT INBOX (CONDSTORE)")
	if st := c3.ok("STATUS INBOX (HIGHESTMODSEQ)"); find(st, "HIGHESTMODSEQ "+respCode(u3, "HIGHESTMODSEQ")+")") == "" {
		t.Errorf("STATUS HIGHESTMODSEQ = %q, SELECT said %s", st, respCode(u3, "HIGHESTMODSEQ"))
	}
	u1 := c1.ok("EXAMINE INBOX (CONDSTORE)")
	if got, at1 := respCode(u3, "HIGHESTMODSEQ"), respCode(u1, "HIGHESTMODSEQ"); got == m || got != at1 {
		t.Errorf("HIGHESTMODSEQ at n3 = %q, at n1 %q, before the STOREs %s", got, at1, m)
	}
	if at3 := fetch(c3); strings.Join(at3, "\n") != strings.Join(at1, "\n") {
		t.Errorf("CHANGEDSINCE at n3 = %q, at n1 %q", at3, at1)
	}
	if u := c3.ok("SEARCH MODSEQ %s", m); len(u) != 1 || !strings.HasPrefix(u[0], "* SEARCH 2 4 (MODSEQ ") {
		t.Errorf("SEARCH MODSEQ at n3 = %q, want 2 4 with (MODSEQ n)", u)
	}
	// UNCHANGEDSINCE below message 2's MODSEQ: 2 is refused, 1 changed.
	_, done := c3.do(`STORE 1:2 (UNCHANGEDSINCE %s) +FLAGS (\Seen)`, m)
	if !strings.HasPrefix(done, "OK [MODIFIED 2]") {
		t.Errorf("STORE UNCHANGEDSINCE → %q, want OK [MODIFIED 2]", done)
	}
}

// TestQuota (RFC 9208): the quota set by the administrator and the usage
// are read from the replicated user record, the same at every node; an
// APPEND over it is NO [OVERQUOTA]; SETQUOTA is refused.
func TestQuota(t *testing.T) {
	e, addrs := ownEnv(t)
	if err := e.c.Nodes[0].Mail().SetQuota(e.c.Ctx(10*time.Second), alice, 4<<10); err != nil {
		t.Fatal(err)
	}
	e.deliver(0, alice, testMessage("q1", "quota", strings.Repeat("x", 1500)))
	e.waitAll()
	var quota string
	for i, a := range addrs {
		c := login(t, a, alice)
		u := c.ok("GETQUOTAROOT INBOX")
		if find(u, `* QUOTAROOT INBOX ""`) == "" || find(u, `* QUOTA "" (STORAGE 2 4)`) == "" {
			t.Errorf("n%d: GETQUOTAROOT = %q, want root \"\" and STORAGE 2 of 4 KiB", i+1, u)
		}
		if q := c.ok(`GETQUOTA ""`); quota == "" {
			quota = q[0]
		} else if q[0] != quota {
			t.Errorf("n%d: GETQUOTA = %q, n1 said %q", i+1, q[0], quota)
		}
		if i == 0 {
			msg := testMessage("q2", "too big", strings.Repeat("y", 3000))
			c.expect("NO [OVERQUOTA]", "APPEND INBOX {%d+}\r\n%s", len(msg), msg)
			c.expect("NO [NOPERM]", `SETQUOTA "" (STORAGE 100000)`)
			c.expect("NO [NONEXISTENT]", `GETQUOTA "other"`)
		}
	}
}
