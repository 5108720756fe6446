package imapd_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/imapd"
)

// TestBadInput covers the IMAP rows of docs/TESTPLAN.md §4 that a single node
// can show (the leaderless rows are TestCutOffNodeReadOnly).
func TestBadInput(t *testing.T) {
	e := newEnv(t, nil)

	t.Run("append over limit gets TOOBIG without continuation", func(t *testing.T) {
		c := login(t, e.addrs[0], alice)
		c.send("t1 APPEND INBOX {%d}\r\n", 60<<20)
		l := c.line()
		if !strings.HasPrefix(l, "t1 NO [TOOBIG]") {
			t.Fatalf("got %q, want t1 NO [TOOBIG] and no +", l)
		}
		c.ok("NOOP")
		// Nothing was stored.
		if st := c.ok("STATUS INBOX (MESSAGES)"); !strings.Contains(st[0], "MESSAGES 0") {
			t.Errorf("STATUS = %q", st)
		}
	})

	t.Run("bad literals are BAD and do not hang", func(t *testing.T) {
		for _, lit := range []string{"{-1}", "{abc}", "{18446744073709551616}", "{1x}"} {
			c := login(t, e.addrs[0], alice)
			// Where only a literal may stand, a malformed one is a syntax error.
			c.send("t2 APPEND INBOX %s\r\n", lit)
			l, err := c.readLine(5 * time.Second)
			if err != nil && err != io.EOF {
				t.Fatalf("%s: no answer: %v", lit, err)
			}
			if !strings.HasPrefix(l, "t2 BAD") {
				t.Errorf("APPEND %s: got %q, want BAD", lit, l)
			}
			// "{" cannot start an atom: a bad literal header is BAD there too.
			c2 := login(t, e.addrs[0], alice)
			c2.expect("BAD", "SELECT %s", lit)
		}
	})

	// go-imap reports its decoder's depth and size limits as NO [SERVERBUG]
	// rather than BAD (its readCommand maps only DecoderExpectError to
	// BAD); either way the command fails at once with bounded memory.
	t.Run("deep nesting and long commands fail fast", func(t *testing.T) {
		notOK := func(what, l string, err error) {
			t.Helper()
			if err == nil && (strings.HasPrefix(l, "t3 OK") || strings.HasPrefix(l, "t4 OK") || !(strings.Contains(l, " BAD") || strings.Contains(l, " NO "))) {
				t.Errorf("%s: got %q, want BAD or NO", what, l)
			} else if err != nil && err != io.EOF && !strings.Contains(err.Error(), "reset") {
				t.Errorf("%s: no answer: %v", what, err)
			}
		}
		c := login(t, e.addrs[0], alice)
		c.ok("SELECT INBOX")
		c.send("t3 SEARCH %s\r\n", strings.Repeat("(", 100_000))
		l, err := c.readLine(5 * time.Second)
		notOK("nested", l, err)
		c2 := login(t, e.addrs[0], alice)
		c2.send("t4 SELECT %s\r\n", strings.Repeat("x", 200<<10))
		l, err = c2.readLine(5 * time.Second)
		notOK("long", l, err)
		// The server still serves.
		login(t, e.addrs[0], alice).ok("NOOP")
	})

	t.Run("HTTP on the IMAP port gets BYE and close", func(t *testing.T) {
		c := dial(t, e.addrs[0])
		c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		sawBye := false
		for {
			l, err := c.readLine(5 * time.Second)
			if strings.HasPrefix(l, "* BYE") {
				sawBye = true
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("connection not closed: %v", err)
			}
		}
		if !sawBye {
			t.Error("no BYE")
		}
	})

	t.Run("wrong password is delayed, growing, then refused", func(t *testing.T) {
		addr := e.serve(0, func(o *imapd.Options) {
			o.AuthFailureDelay, o.MaxAuthFailureDelay, o.MaxAuthFailures = 100*time.Millisecond, time.Second, 4
		})
		var delays []time.Duration
		for i := 0; i < 4; i++ {
			c := dial(t, addr)
			start := time.Now()
			c.expect("NO [AUTHENTICATIONFAILED]", `LOGIN %s "wrong"`, alice)
			delays = append(delays, time.Since(start))
		}
		for i, want := range []time.Duration{100, 200, 400, 800} {
			if delays[i] < want*time.Millisecond {
				t.Errorf("failure %d answered after %v, want ≥ %v", i+1, delays[i], want*time.Millisecond)
			}
		}
		// Now even the right password is refused from this address.
		c := dial(t, addr)
		c.expect("NO [AUTHENTICATIONFAILED]", `LOGIN %s %q`, alice, password)
		// AUTHENTICATE PLAIN goes through the same check.
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + alice + "\x00" + password))
		c.expect("NO [AUTHENTICATIONFAILED]", "AUTHENTICATE PLAIN %s", ir)
	})

	t.Run("no password before TLS on a non-dev listener", func(t *testing.T) {
		cert := selfSigned(t)
		addr := e.serve(0, func(o *imapd.Options) {
			o.Dev = false
			o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		})
		c := dial(t, addr)
		caps := c.ok("CAPABILITY")
		if !strings.Contains(caps[0], "LOGINDISABLED") || !strings.Contains(caps[0], "STARTTLS") || strings.Contains(caps[0], "AUTH=") {
			t.Errorf("CAPABILITY = %q", caps)
		}
		c.expect("NO [PRIVACYREQUIRED]", `LOGIN %s %q`, alice, password)
		ir := base64.StdEncoding.EncodeToString([]byte("\x00" + alice + "\x00" + password))
		c.expect("NO [PRIVACYREQUIRED]", "AUTHENTICATE PLAIN %s", ir)
		// After STARTTLS the same login works.
		c.ok("STARTTLS")
		tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
		c.conn, c.r = tc, bufio.NewReader(tc)
		c.ok(`LOGIN %s %q`, alice, password)
		c.ok("SELECT INBOX")
	})

	t.Run("IDLE past the timeout ends with BYE", func(t *testing.T) {
		addr := e.serve(2, func(o *imapd.Options) { o.IdleTimeout = 300 * time.Millisecond })
		c := login(t, addr, alice)
		c.ok("SELECT INBOX")
		start := time.Now()
		c.send("t5 IDLE\r\n")
		if l := c.line(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE = %q", l)
		}
		l := c.line()
		if !strings.HasPrefix(l, "* BYE") {
			t.Fatalf("got %q, want BYE", l)
		}
		if d := time.Since(start); d < 300*time.Millisecond {
			t.Errorf("BYE after %v", d)
		}
		if _, err := c.readLine(2 * time.Second); err != io.EOF {
			t.Errorf("connection not closed after BYE: %v", err)
		}
	})
}

// TestIsolation: another user's mailboxes cannot be named, listed or
// reached by any spelling, and another user's UIDs do nothing.
func TestIsolation(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 3; i++ {
		e.deliver(0, bob, testMessage(fmt.Sprintf("bob%d", i), "bob secret", "for bob only"))
	}
	b := login(t, e.addrs[0], bob)
	b.ok("CREATE Secret")
	b.ok("SELECT INBOX")
	b.ok("COPY 1 Secret")
	e.deliver(0, alice, testMessage("alice", "alice's", "hi"))
	e.waitAll()

	a := login(t, e.addrs[1], alice)
	missing := a.expect("NO [NONEXISTENT]", "SELECT NoSuchBox")
	_ = missing
	for _, name := range []string{
		"Secret", `"../bob"`, `"../bob/Secret"`, `"Other Users/bob"`, `"Other Users/bob/Secret"`,
		`"bob@example.test/INBOX"`, `"~bob/Secret"`, `"*"`, `"%"`, `"Secre%"`, `"INBOX/../Secret"`,
		`"Sec&AAA-ret"`,
	} {
		u, done := a.do("SELECT %s", name)
		if !strings.HasPrefix(done, "NO [NONEXISTENT]") || len(u) != 0 {
			t.Errorf("SELECT %q = %q %q, want NO [NONEXISTENT] and nothing else", name, u, done)
		}
		if _, done := a.do("STATUS %s (MESSAGES)", name); !strings.HasPrefix(done, "NO [NONEXISTENT]") {
			t.Errorf("STATUS %q = %q", name, done)
		}
	}
	// A NUL or bad modified UTF-7 cannot even be decoded: go-imap fails the
	// command before any lookup (NO [SERVERBUG] from its UTF-7 decoder, the
	// same for every such name), so nothing is revealed either.
	for _, name := range []string{"{7+}\r\nSec\x00ret", `"&Jjo"`, `"Secret&"`} {
		c := login(t, e.addrs[1], alice)
		u, done := c.do("SELECT %s", name)
		if strings.HasPrefix(done, "OK") || len(u) != 0 {
			t.Errorf("SELECT %q = %q %q", name, u, done)
		}
	}
	for _, pat := range []string{"*", "%", "../*", "Other Users/*", "*Secret*"} {
		l := a.ok(`LIST "" %q`, pat)
		if find(l, "Secret") != "" {
			t.Errorf("LIST %q shows bob's mailbox: %q", pat, l)
		}
	}

	// Bob's INBOX has UIDs 1..3, Alice's only UID 1.
	a.ok("SELECT INBOX")
	if f := a.ok("UID FETCH 2:3 (UID BODY.PEEK[])"); len(f) != 0 {
		t.Errorf("UID FETCH of bob's UIDs returned %q", f)
	}
	a.ok(`UID STORE 2:3 +FLAGS (\Deleted \Seen)`)
	a.ok("UID COPY 2:3 Archive")
	a.ok("UID MOVE 2:3 Trash")
	a.ok("UID EXPUNGE 1:*")
	e.waitAll()
	for i := range e.c.Nodes {
		snap := e.c.Nodes[i].Mail().View()
		inbox, err := snap.Mailbox(e.users[bob], "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		if inbox.Messages != 3 || inbox.Unseen != 3 {
			t.Errorf("node %d: bob's INBOX %d messages, %d unseen", i+1, inbox.Messages, inbox.Unseen)
		}
		for uid := uint32(1); uid <= 3; uid++ {
			m, err := snap.Message(inbox.Id, uid)
			if err != nil || len(m.Flags) != 0 {
				t.Errorf("node %d: bob's message %d: %v %v", i+1, uid, m, err)
			}
		}
		for _, box := range []string{"Archive", "Trash"} {
			mb, _ := snap.Mailbox(e.users[alice], box)
			if mb.Messages != 0 {
				t.Errorf("node %d: alice's %s got %d messages", i+1, box, mb.Messages)
			}
		}
		snap.Close()
	}
	if f := b.ok("FETCH 1:* (FLAGS)"); len(f) != 3 || strings.Contains(strings.Join(f, ""), `\Deleted`) {
		t.Errorf("bob's view: %q", f)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imap.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"imap.test"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
