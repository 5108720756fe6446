package imapd_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/imapd"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
)

const (
	domain   = "example.test"
	alice    = "alice@example.test"
	bob      = "bob@example.test"
	password = "correct horse battery"
)

// env is a 3-node in-process cluster with an imapd.Server on each node's
// mail service, listening on loopback in dev mode.
type env struct {
	t     testing.TB
	c     *nodetest.Cluster
	addrs []string
	users map[string]uint64
}

func newEnv(t testing.TB, tune func(*imapd.Options)) *env {
	t.Helper()
	c := nodetest.Start(t, nodetest.Options{NoSync: true})
	e := &env{t: t, c: c, users: map[string]uint64{}}
	for i := range c.Nodes {
		e.addrs = append(e.addrs, e.serve(i, tune))
	}
	ctx := c.Ctx(30 * time.Second)
	m := c.Nodes[0].Mail()
	if err := m.AddDomain(ctx, domain, ""); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{alice, bob} {
		id, err := m.AddUser(ctx, u, password, 0)
		if err != nil {
			t.Fatal(err)
		}
		e.users[u] = id
	}
	e.waitAll()
	return e
}

// serve starts another imapd.Server on node i and returns its address.
func (e *env) serve(i int, tune func(*imapd.Options)) string {
	e.t.Helper()
	opts := imapd.Options{
		Mail:             e.c.Nodes[i].Mail(),
		Dev:              true,
		AuthFailureDelay: 20 * time.Millisecond, MaxAuthFailureDelay: 200 * time.Millisecond,
	}
	if tune != nil {
		tune(&opts)
	}
	srv, err := imapd.New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	go srv.Serve(ln)
	e.t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// waitAll waits until every node has applied what the leader has.
func (e *env) waitAll() {
	e.t.Helper()
	l := e.c.WaitLeader(10 * time.Second)
	e.c.WaitApplied(e.c.Nodes[l].FSM().AppliedIndex(), 10*time.Second)
}

// deliver stores a message for rcpt through node i (as SMTP would).
func (e *env) deliver(i int, rcpt, msg string) mail.Delivery {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := e.c.Nodes[i].Mail().Deliver(ctx, mail.Envelope{From: "sender@remote.test", To: []string{rcpt}}, []byte(msg), []byte(msg))
	if err != nil {
		e.t.Fatalf("deliver: %v", err)
	}
	if d[0].Err != nil {
		e.t.Fatalf("deliver: %v", d[0].Err)
	}
	return d[0]
}

func testMessage(id, subject, body string) string {
	return "From: Sender <sender@remote.test>\r\n" +
		"To: Alice <alice@example.test>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 02 Jan 2006 15:04:05 -0700\r\n" +
		"Message-ID: <" + id + "@remote.test>\r\n" +
		"X-Test-Id: " + id + "\r\n" +
		"\r\n" + body + "\r\n"
}

// client is a minimal line-based IMAP client: it sends raw commands and
// returns raw responses, literals inlined, so tests assert the wire.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := c.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func login(t testing.TB, addr, user string) *client {
	t.Helper()
	c := dial(t, addr)
	c.ok("LOGIN %s %q", user, password)
	return c
}

// line reads one response line with any literals it announces.
func (c *client) line() string {
	c.t.Helper()
	s, err := c.readLine(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return s
}

func (c *client) readLine(timeout time.Duration) (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	var sb strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return sb.String() + l, err
		}
		l = strings.TrimRight(l, "\r\n")
		sb.WriteString(l)
		// A literal {n} or ~{n} at the end of the line: read n bytes.
		if strings.HasSuffix(l, "}") {
			if i := strings.LastIndexByte(l, '{'); i >= 0 {
				if n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+")); err == nil {
					buf := make([]byte, n)
					if _, err := io.ReadFull(c.r, buf); err != nil {
						return sb.String(), err
					}
					sb.WriteString("\n")
					sb.Write(buf)
					continue
				}
			}
		}
		return sb.String(), nil
	}
}

func (c *client) send(format string, args ...any) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c.conn, format, args...); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// do sends a tagged command and returns the untagged lines and the tagged
// completion (without its tag).
func (c *client) do(format string, args ...any) ([]string, string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("a%d", c.n)
	c.send(tag+" "+format+"\r\n", args...)
	return c.until(tag)
}

func (c *client) until(tag string) ([]string, string) {
	c.t.Helper()
	var untagged []string
	for {
		l := c.line()
		if strings.HasPrefix(l, tag+" ") {
			return untagged, strings.TrimPrefix(l, tag+" ")
		}
		untagged = append(untagged, l)
	}
}

// ok runs a command that must succeed and returns its untagged lines.
func (c *client) ok(format string, args ...any) []string {
	c.t.Helper()
	u, done := c.do(format, args...)
	if !strings.HasPrefix(done, "OK") {
		c.t.Fatalf("%s: %s (untagged %q)", fmt.Sprintf(format, args...), done, u)
	}
	return u
}

// expect runs a command whose completion must start with want.
func (c *client) expect(want string, format string, args ...any) []string {
	c.t.Helper()
	u, done := c.do(format, args...)
	if !strings.HasPrefix(done, want) {
		c.t.Fatalf("%s: got %q, want %q…", fmt.Sprintf(format, args...), done, want)
	}
	return u
}

// find returns the first line containing sub.
func find(lines []string, sub string) string {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

func count(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// respCode returns the value after "[CODE " in a line, e.g. UIDVALIDITY.
func respCode(lines []string, code string) string {
	l := find(lines, "["+code+" ")
	if l == "" {
		return ""
	}
	v := l[strings.Index(l, "["+code+" ")+len(code)+2:]
	return v[:strings.IndexAny(v, "]")]
}

// needTool finds an external client; CI installs them, elsewhere the
// test is skipped.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (CI installs it in .ci/run)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
