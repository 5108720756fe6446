package smtpd_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// Limits of the test cluster: small enough to reach in a test.
const (
	testMaxBytes = 8 << 20
	testMaxConns = 20
	testTimeout  = 3 * time.Second
)

// fixture is a 3-node cluster with SMTP/LMTP on every node, domain
// example.test and a few users.
type fixture struct {
	c     *nodetest.Cluster
	users map[string]uint64 // local part → user ID
}

func startFixture(t *testing.T) *fixture {
	t.Helper()
	cert, key := writeCert(t)
	c := nodetest.Start(t, nodetest.Options{Protocols: true, Configure: func(i int, cfg *config.Config) {
		cfg.TLSCert, cfg.TLSKey = cert, key
		cfg.MaxMessageBytes = testMaxBytes
		cfg.MaxConnsPerIP = testMaxConns
		cfg.ProtocolTimeout = config.Duration{Duration: testTimeout}
	}})
	f := &fixture{c: c, users: map[string]uint64{}}
	ctx := c.Ctx(60 * time.Second)
	// Setup writes retry temporary failures (an early leader change, or a
	// slow cluster under -race), as any client would.
	retry := func(what string, fn func(m *mail.Service) error) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			l := c.WaitLeader(10 * time.Second)
			err := fn(c.Nodes[l].Mail())
			if err == nil || errors.Is(err, mail.ErrExists) {
				return
			}
			if !mail.IsTemporary(err) || time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	retry("add domain", func(m *mail.Service) error { return m.AddDomain(ctx, "example.test", "") })
	for _, u := range []struct {
		name  string
		quota uint64
	}{{"user", 0}, {"bob", 0}, {"carol", 0}, {"full", 2000}, {"dedupe", 0}, {"py", 0}, {"swaks", 0}, {"lmtp1", 0}, {"lmtp2", 0}, {"lmtpmany", 0}} {
		retry("add user "+u.name, func(m *mail.Service) error {
			_, err := m.AddUser(ctx, u.name+"@example.test", "secret-password", u.quota)
			return err
		})
	}
	c.WaitConverged(10 * time.Second)
	all, err := c.Nodes[0].Mail().Users()
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range all {
		f.users[strings.TrimSuffix(u.Email, "@example.test")] = u.Id
	}
	c.WaitConverged(10 * time.Second)
	return f
}

// follower returns the index of a node that is not the leader.
func (f *fixture) follower(t *testing.T) int {
	t.Helper()
	l := f.c.WaitLeader(10 * time.Second)
	return (l + 1) % len(f.c.Nodes)
}

// count is the number of messages in a user's INBOX on node i.
func count(t *testing.T, n *node.Node, userID uint64) uint32 {
	t.Helper()
	mb, err := n.Mail().Mailbox(userID, "INBOX")
	if err != nil {
		t.Fatalf("INBOX of user %d: %v", userID, err)
	}
	return mb.Messages
}

// counts is count on every running node.
func (f *fixture) counts(t *testing.T, userID uint64) []uint32 {
	t.Helper()
	var out []uint32
	for _, n := range f.c.Nodes {
		if n != nil {
			out = append(out, count(t, n, userID))
		}
	}
	return out
}

// waitCount polls until every running node holds want messages for user.
func (f *fixture) waitCount(t *testing.T, userID uint64, want uint32) {
	t.Helper()
	f.c.Eventually(15*time.Second, fmt.Sprintf("user %d has %d messages on every node", userID, want), func() bool {
		for _, got := range f.counts(t, userID) {
			if got != want {
				return false
			}
		}
		return true
	})
}

// messages returns the stored bytes of every message in a user's INBOX on n.
func messages(t *testing.T, n *node.Node, userID uint64) [][]byte {
	t.Helper()
	mb, err := n.Mail().Mailbox(userID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	snap := n.Mail().View()
	defer snap.Close()
	var out [][]byte
	var blobs [][]byte
	err = snap.Messages(mb.Id, 1, ^uint32(0), func(m *storagepb.Message) error {
		blobs = append(blobs, m.Blob)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		data, err := snap.Blob(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data)
	}
	return out
}

// client is a raw-bytes SMTP/LMTP client.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// greet dials and reads the greeting, which must be 220.
func greet(t *testing.T, addr string) *client {
	t.Helper()
	c := dial(t, addr)
	c.expect(220, "")
	return c
}

// reply reads one (possibly multi-line) reply: its code and its lines.
func (c *client) reply() (int, []string, error) {
	var lines []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, lines, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			return 0, append(lines, line), fmt.Errorf("short reply line %q", line)
		}
		lines = append(lines, line[4:])
		if line[3] == ' ' {
			code, err := strconv.Atoi(line[:3])
			return code, lines, err
		}
	}
}

// expect reads a reply and checks its code and, when enh is set, the
// enhanced status code at the start of its last line.
func (c *client) expect(want int, enh string) []string {
	c.t.Helper()
	code, lines, err := c.reply()
	if err != nil {
		c.t.Fatalf("reading reply (want %d %s): %v (got %q)", want, enh, err, lines)
	}
	if code != want || (enh != "" && !strings.HasPrefix(lines[len(lines)-1], enh+" ")) {
		c.t.Fatalf("got %d %q, want %d %s", code, lines, want, enh)
	}
	return lines
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// cmd sends one command line and checks the reply.
func (c *client) cmd(line string, want int, enh string) []string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(want, enh)
}

// expectClosed asserts the server closed the connection (EOF or reset).
func (c *client) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c.r)
	if err == nil || isResetOrEOF(err) {
		if len(b) > 0 {
			c.t.Fatalf("after the final reply the server sent %q", b)
		}
		return
	}
	c.t.Fatalf("connection not closed: %v (read %q)", err, b)
}

func isResetOrEOF(err error) bool {
	return err == io.EOF || strings.Contains(err.Error(), "connection reset")
}

// mailTo runs EHLO/MAIL/RCPT for one recipient.
func (c *client) mailTo(from, to string) {
	c.t.Helper()
	c.cmd("EHLO client.test", 250, "")
	c.cmd("MAIL FROM:<"+from+">", 250, "")
	c.cmd("RCPT TO:<"+to+">", 250, "")
}

// message returns a well-formed message with a unique X-Test-Id.
func message(id string, bodyBytes int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@remote.test\r\nTo: user@example.test\r\nSubject: test %s\r\nX-Test-Id: %s\r\nMessage-Id: <%s@remote.test>\r\n\r\n", id, id, id)
	line := strings.Repeat("x", 76) + "\r\n"
	for b.Len() < bodyBytes {
		b.WriteString(line)
	}
	return b.String()
}

// writeCert writes a self-signed certificate for the nodes' STARTTLS.
func writeCert(t testing.TB) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "continuum test"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certFile, keyFile
}

// startTLS upgrades a client after a 220 to STARTTLS.
func (c *client) startTLS() {
	c.t.Helper()
	tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// needTool returns the path of an external program: missing is a failure
// in CI (.ci/run installs it) and a skip elsewhere.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not installed (.ci/run installs it)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}
