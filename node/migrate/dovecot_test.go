package migrate

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/continuum-mail/continuum/node/nodetest"
)

// dovecot is a private Dovecot (Debian's dovecot-imapd) in a temporary
// directory: its own configuration, a passwd-file user database, Maildir
// storage and one IMAP listener on a loopback port. It never touches the
// system instance. As root it runs its mail processes as nobody; as any
// other user, as that user.
type dovecot struct {
	addr, user, password string
	dir                  string
	uid, gid             int // the owner of the mail files
	// With TLS: the implicit-TLS address, and a client configuration that
	// trusts the instance's self-signed certificate.
	tlsAddr string
	tls     *tls.Config
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

func startDovecot(t *testing.T) *dovecot { return startDovecotTLS(t, false) }

func startDovecotTLS(t *testing.T, withTLS bool) *dovecot {
	t.Helper()
	bin, err := exec.LookPath("dovecot")
	if err != nil {
		if os.Getenv("CONTINUUM_REQUIRE_DOVECOT") != "" {
			t.Fatal("dovecot not installed (apt-get install dovecot-imapd)")
		}
		t.Skip("dovecot not installed (apt-get install dovecot-imapd; .ci/run does)")
	}
	dir := t.TempDir()
	// Dovecot's unprivileged processes must reach the directory.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if u, err = user.Lookup("nobody"); err != nil {
			t.Skipf("running as root and no user nobody: %v", err)
		}
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, sub := range []string{"run", "state", "home/alice"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chown(filepath.Join(dir, "home/alice"), uid, gid)
	addr := nodetest.FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	d := &dovecot{addr: addr, user: "alice@example.test", password: "dovecot-secret", dir: dir, uid: uid, gid: gid}
	sslConf, imapsPort := "ssl = no", "0"
	if withTLS {
		certPath, keyPath, pool := selfSigned(t, dir)
		d.tlsAddr = nodetest.FreeAddr(t)
		_, imapsPort, _ = net.SplitHostPort(d.tlsAddr)
		d.tls = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
		sslConf = fmt.Sprintf("ssl = yes\nssl_cert = <%s\nssl_key = <%s", certPath, keyPath)
	}
	os.WriteFile(filepath.Join(dir, "passwd"), []byte(fmt.Sprintf("%s:{PLAIN}%s:%d:%d::%s::\n", d.user, d.password, uid, gid, filepath.Join(dir, "home/alice"))), 0o644)
	conf := fmt.Sprintf(`protocols = imap
listen = %[2]s
base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
%[8]s
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = %[4]s
default_internal_user = %[4]s
default_internal_group = %[5]s
first_valid_uid = %[6]d
first_valid_gid = %[7]d
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[1]s/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%%u %[1]s/passwd
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Sent {
    special_use = \Sent
  }
  mailbox Trash {
    special_use = \Trash
  }
}
service imap-login {
  inet_listener imap {
    address = %[2]s
    port = %[3]s
  }
  inet_listener imaps {
    address = %[2]s
    port = %[9]s
  }
  chroot =
}
service anvil {
  chroot =
}
`, dir, host, port, u.Username, g.Name, uid, gid, sslConf, imapsPort)
	confPath := filepath.Join(dir, "dovecot.conf")
	os.WriteFile(confPath, []byte(conf), 0o644)
	cmd := exec.Command(bin, "-F", "-c", confPath)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(dir, "dovecot.log")); err == nil {
				t.Logf("dovecot.log:\n%s", b)
			}
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("dovecot does not listen on %s: %v\n%s", addr, err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d
}

// fill appends the fixture to the Dovecot account, pipelining APPENDs.
func (d *dovecot) fill(t *testing.T, f *fixture) {
	t.Helper()
	c, err := imapclient.DialInsecure(d.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(d.user, d.password).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, b := range f.boxes {
		if b != "INBOX" {
			if err := c.Create(b, nil).Wait(); err != nil {
				t.Fatalf("create %s: %v", b, err)
			}
		}
		var pending []*imapclient.AppendCommand
		for _, m := range f.msgs[b] {
			var flags []imap.Flag
			for _, fl := range m.Flags {
				flags = append(flags, imap.Flag(fl))
			}
			cmd := c.Append(b, int64(len(m.Data)), &imap.AppendOptions{Flags: flags, Time: m.Date})
			cmd.Write(m.Data)
			if err := cmd.Close(); err != nil {
				t.Fatal(err)
			}
			pending = append(pending, cmd)
			if len(pending) == 64 {
				for _, p := range pending {
					if _, err := p.Wait(); err != nil {
						t.Fatalf("append to %s: %v", b, err)
					}
				}
				pending = pending[:0]
			}
		}
		for _, p := range pending {
			if _, err := p.Wait(); err != nil {
				t.Fatalf("append to %s: %v", b, err)
			}
		}
	}
}

// fillMaildir writes the fixture straight into the account's Maildir (the
// layout Dovecot reads: Maildir++, dovecot-keywords, dovecot-uidlist),
// much faster than APPENDs for a large fixture.
func (d *dovecot) fillMaildir(t *testing.T, f *fixture) {
	t.Helper()
	root := filepath.Join(d.dir, "home/alice/Maildir")
	sink, err := NewMaildirSink(root)
	if err != nil {
		t.Fatal(err)
	}
	f.write(t, sink)
	err = filepath.WalkDir(root, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, d.uid, d.gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDovecotImport: a Dovecot account with five mailboxes (nested,
// non-ASCII, a special-use one, keywords, \Seen/\Flagged/\Answered, dates
// from 1998 on) imported over IMAP into a 3-node cluster, interrupted
// halfway and run again: every message once on every node, with its bytes,
// flags and INTERNALDATE. 2,000 messages in make test-migrate, 200 in
// make test.
func TestDovecotImport(t *testing.T) {
	d := startDovecot(t)
	n := scale(200, 2000)
	boxes := []string{"INBOX", "Sent", "Work/Projects/2024", "Archiv/Übersicht", "Listen/日本語"}
	f := newFixture(3, boxes, n, 8<<10)
	start := time.Now()
	d.fill(t, f)
	t.Logf("filled dovecot with %d messages in %v", n, time.Since(start).Round(time.Millisecond))

	tc := startCluster(t, "alice@example.test", "files@example.test")
	open := func() Source {
		src, err := NewIMAPSource(IMAPOptions{Addr: d.addr, Login: d.user, Password: d.password})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	ctx := tc.Ctx(20 * time.Minute)

	// Interrupted halfway, as by Ctrl-C: the source hands over the first
	// half and holds the next message until a quarter is acknowledged as
	// committed, then the import is cancelled. The batches of the second
	// quarter may be in flight then (they commit or not); the second half
	// was never sent. So between a quarter and a half ends up stored,
	// however fast or slow the cluster is.
	ictx, cancel := context.WithCancel(ctx)
	gate := newInterrupter(open(), n/2, n/4, cancel)
	sum, err := Import(ictx, tc.follower(), "alice@example.test", gate, ImportOptions{Progress: gate})
	gate.Close()
	cancel()
	if err == nil {
		t.Fatalf("the interrupted import returned no error: %+v", sum)
	}
	if !gate.interrupted() {
		t.Fatalf("the import ended before the interruption: %v", err)
	}
	logSummary(t, "interrupted", sum)
	tc.WaitConverged(30 * time.Second)
	stored := 0
	for _, msgs := range tc.stored(t, 0, "alice@example.test") {
		stored += len(msgs)
	}
	t.Logf("after the interruption: %d of %d messages stored (%d sent, %d acknowledged when cancelled)", stored, n, gate.after, gate.ackedAtCancel)
	if stored < gate.ackedAtCancel || stored > gate.after || sum.Copied > stored {
		t.Fatalf("interrupted import stored %d of %d: want between the %d acknowledged and the %d sent, and at least the %d reported copied",
			stored, n, gate.ackedAtCancel, gate.after, sum.Copied)
	}

	src := open()
	sum, err = Import(ctx, tc.clients[0], "alice@example.test", src, ImportOptions{})
	src.Close()
	if err != nil {
		t.Fatal(err)
	}
	logSummary(t, "resumed", sum)
	// Skipped: what was stored when the resumed run looked, plus what the
	// interrupted run still had in flight and committed after that (the
	// state machine answers those with duplicate); never more than was
	// sent. Copied: exactly the rest.
	if sum.Failed != 0 || sum.Skipped < stored || sum.Skipped > gate.after || sum.Copied != n-sum.Skipped {
		t.Fatalf("resumed: %d copied + %d skipped + %d failed, want %d copied with %d..%d skipped", sum.Copied, sum.Skipped, sum.Failed, n-sum.Skipped, stored, gate.after)
	}
	if late := sum.Skipped - stored; late > 0 {
		t.Logf("%d messages of the interrupted run committed after it was counted (skipped as duplicates)", late)
	}
	tc.checkEveryNode(t, "alice@example.test", f)

	// Dovecot's own Maildir (LF line ends, its dovecot-keywords and
	// dovecot-uidlist, mtimes as INTERNALDATE) imported as files gives
	// the same account.
	md, err := NewMaildirSource(filepath.Join(d.dir, "home/alice/Maildir"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err = Import(ctx, tc.clients[1], "files@example.test", md, ImportOptions{SourceName: "dovecot maildir", KeepOrder: true})
	if err != nil {
		t.Fatal(err)
	}
	logSummary(t, "dovecot's Maildir", sum)
	tc.checkEveryNode(t, "files@example.test", f)
	tc.checkOrderWith(t, "files@example.test", f)

	// Hierarchy and special use came along.
	for i := range tc.Nodes {
		snap := tc.Nodes[i].DB().Snapshot()
		u, _ := snap.UserByEmail("alice@example.test")
		mbs, _ := snap.Mailboxes(u.Id)
		snap.Close()
		var names []string
		sent := ""
		for _, mb := range mbs {
			names = append(names, mb.Name)
			if mb.Name == "Sent" {
				sent = mb.SpecialUse
			}
		}
		for _, want := range append(slices.Clone(boxes), "Work", "Work/Projects", "Archiv", "Listen") {
			if !slices.Contains(names, want) {
				t.Errorf("node %d: no mailbox %q (has %s)", i, want, strings.Join(names, ", "))
			}
		}
		if sent != `\Sent` {
			t.Errorf("node %d: Sent has special use %q, want \\Sent", i, sent)
		}
	}
}

// TestImportSpeedIMAP measures an import over IMAP from Dovecot of 10 KiB
// messages into a 3-node cluster (through a follower, fsync on):
// CONTINUUM_MIGRATE_SPEED_IMAP=N messages. Dovecot is filled through its
// Maildir; its first read of it (indexing) is part of the figure.
func TestImportSpeedIMAP(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CONTINUUM_MIGRATE_SPEED_IMAP"))
	if n == 0 {
		t.Skip("set CONTINUUM_MIGRATE_SPEED_IMAP=N")
	}
	d := startDovecot(t)
	f := newFixture(7, []string{"INBOX"}, n, 10<<10)
	d.fillMaildir(t, f)
	tc := startCluster(t, "a@example.test")
	src, err := NewIMAPSource(IMAPOptions{Addr: d.addr, Login: d.user, Password: d.password})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sum, err := Import(tc.Ctx(30*time.Minute), tc.speedClient(), "a@example.test", src, ImportOptions{SourceName: "imap"})
	if err != nil {
		t.Fatal(err)
	}
	logSummary(t, fmt.Sprintf("speed: %d messages of 10 KiB over IMAP", n), sum)
	if sum.Copied != n {
		t.Fatalf("copied %d of %d", sum.Copied, n)
	}
	tc.checkEveryNode(t, "a@example.test", f)
}

// TestDovecotTLS: the source over implicit TLS and over STARTTLS, checking
// the server's certificate, lists the account's mailboxes and reads its
// messages.
func TestDovecotTLS(t *testing.T) {
	d := startDovecotTLS(t, true)
	f := newFixture(5, []string{"INBOX", "Sent"}, 6, 2<<10)
	d.fill(t, f)
	for _, mode := range []struct{ name, addr string }{{"tls", d.tlsAddr}, {"starttls", d.addr}} {
		src, err := NewIMAPSource(IMAPOptions{Addr: mode.addr, Login: d.user, Password: d.password, TLS: mode.name, TLSConfig: d.tls})
		if err != nil {
			t.Fatalf("%s: %v", mode.name, err)
		}
		boxes, err := src.Mailboxes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, mb := range boxes {
			err := src.Messages(context.Background(), mb, func(m *Message) error { n++; return nil }, func(id, r string) { t.Error(id, r) })
			if err != nil {
				t.Fatal(err)
			}
		}
		src.Close()
		if n != 6 || len(boxes) != 2 || boxes[1].SpecialUse != `\Sent` {
			t.Fatalf("%s: %d messages in %v", mode.name, n, boxes)
		}
		// A certificate nobody vouches for is refused.
		if _, err := NewIMAPSource(IMAPOptions{Addr: mode.addr, Login: d.user, Password: d.password, TLS: mode.name, TLSConfig: &tls.Config{ServerName: "127.0.0.1"}}); err == nil {
			t.Fatalf("%s: an untrusted certificate was accepted", mode.name)
		}
	}
}

// interrupter is a Source and a Progress that interrupt an import at a
// point that does not depend on speed: the source passes on the first
// after messages, then holds the next one until at least acked messages
// are reported settled (committed, skipped or failed), and then cancels
// the import, as an operator's Ctrl-C. Nothing after the first after
// messages leaves the client.
type interrupter struct {
	Source
	after, acked int
	cancel       func()

	mu            sync.Mutex
	sent, settled int
	reached       chan struct{} // closed once settled >= acked
	ackedAtCancel int           // settled when the import was cancelled
	cancelled     bool
}

func newInterrupter(src Source, after, acked int, cancel func()) *interrupter {
	return &interrupter{Source: src, after: after, acked: acked, cancel: cancel, reached: make(chan struct{})}
}

func (g *interrupter) Messages(ctx context.Context, mb Mailbox, fn func(*Message) error, skip func(id, reason string)) error {
	return g.Source.Messages(ctx, mb, func(m *Message) error {
		g.mu.Lock()
		hold := g.sent == g.after
		if !hold {
			g.sent++
		}
		g.mu.Unlock()
		if !hold {
			return fn(m)
		}
		select {
		case <-g.reached:
		case <-ctx.Done():
			return ctx.Err()
		}
		g.mu.Lock()
		g.ackedAtCancel, g.cancelled = g.settled, true
		g.mu.Unlock()
		g.cancel()
		return context.Canceled
	}, skip)
}

func (g *interrupter) interrupted() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cancelled
}

func (g *interrupter) Total(int, int64) {}
func (g *interrupter) Add(n int, _ int64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	before := g.settled
	g.settled += n
	if before < g.acked && g.settled >= g.acked {
		close(g.reached)
	}
}
func (g *interrupter) Note(string, ...any) {}
func (g *interrupter) Done()               {}

// TestDovecotServesOurMaildir: a Maildir export, given to Debian's Dovecot
// as an account's mail, is served over IMAP with every message's bytes,
// date, flags and keywords, $Forwarded included (written both as P and as
// a keyword, since Dovecot does not read P as $Forwarded).
func TestDovecotServesOurMaildir(t *testing.T) {
	d := startDovecot(t)
	boxes := []string{"INBOX", "Work/Projects"}
	f := newFixture(11, boxes, 2*len(flagChoices)*len(boxes), 1<<10)
	forwarded := 0
	for _, b := range boxes {
		for _, m := range f.msgs[b] {
			if slices.Contains(m.Flags, "$Forwarded") {
				forwarded++
			}
		}
	}
	if forwarded == 0 {
		t.Fatal("the fixture has no $Forwarded message")
	}
	d.fillMaildir(t, f)
	src, err := NewIMAPSource(IMAPOptions{Addr: d.addr, Login: d.user, Password: d.password})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	got, err := src.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, mb := range got {
		want := f.msgs[mb.Name]
		k := 0
		err := src.Messages(context.Background(), mb, func(m *Message) error {
			if k >= len(want) {
				return fmt.Errorf("%s: message %d beyond the %d written", mb.Name, k+1, len(want))
			}
			w := want[k]
			k++
			if !bytes.Equal(m.Data, w.Data) || !m.Date.Equal(w.Date.Truncate(time.Second)) {
				return fmt.Errorf("%s message %d: %d bytes dated %v, want %d bytes dated %v", mb.Name, k, len(m.Data), m.Date, len(w.Data), w.Date)
			}
			if g, w := strings.Join(sortedFlags(m.Flags), " "), strings.Join(sortedFlags(w.Flags), " "); g != w {
				return fmt.Errorf("%s message %d: Dovecot serves flags %q, want %q", mb.Name, k, g, w)
			}
			return nil
		}, func(id, r string) { t.Errorf("skipped %s: %s", id, r) })
		if err != nil {
			t.Fatal(err)
		}
		if k != len(want) {
			t.Fatalf("%s: Dovecot serves %d messages, want %d", mb.Name, k, len(want))
		}
	}
	if len(got) != len(boxes) {
		t.Fatalf("mailboxes %v, want %v", got, boxes)
	}
}
