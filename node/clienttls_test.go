package node_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// clientTLSScript exercises STARTTLS and implicit TLS for SMTP and IMAP with
// Python's ssl, smtplib and imaplib, verifying the server against the
// cluster CA and the host name (127.0.0.1, an IP SAN of the node's
// certificate).
const clientTLSScript = `
import imaplib, smtplib, ssl, sys
host, smtp, smtps, imap, imaps, ca, user, pw = sys.argv[1:9]
ctx = ssl.create_default_context(cafile=ca)
msg = "From: py@remote.test\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@remote.test>\r\n\r\nhello over TLS\r\n"
s = smtplib.SMTP(host, int(smtp), timeout=20)
s.starttls(context=ctx)
assert s.sock.version() in ("TLSv1.2", "TLSv1.3"), s.sock.version()
s.sendmail("py@remote.test", [user], msg % (user, "starttls", "py-starttls"))
s.quit()
s = smtplib.SMTP_SSL(host, int(smtps), context=ctx, timeout=20)
s.sendmail("py@remote.test", [user], msg % (user, "smtps", "py-smtps"))
s.quit()
m = imaplib.IMAP4(host, int(imap), timeout=20)
m.starttls(ssl_context=ctx)
m.login(user, pw)
typ, data = m.select("INBOX")
assert typ == "OK", (typ, data)
m.logout()
m = imaplib.IMAP4_SSL(host, int(imaps), ssl_context=ctx, timeout=20)
assert "STARTTLS" not in m.capabilities, m.capabilities
m.login(user, pw)
typ, data = m.select("INBOX")
assert typ == "OK", (typ, data)
print("messages", int(data[0]))
m.logout()
`

// TestClientTLSWithRealClients: STARTTLS and implicit TLS (smtps, imaps)
// from Python's ssl/smtplib/imaplib, swaks --tls and --tls-on-connect, and
// curl imaps://, all verifying the certificate against the cluster CA;
// TLS below 1.2 is refused; a certificate replaced on disk is served from
// the next connection on.
func TestClientTLSWithRealClients(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	c := nodetest.Start(t, nodetest.Options{Nodes: 3, Protocols: true, Configure: func(i int, cfg *config.Config) {
		cfg.TLSCert, cfg.TLSKey = cfg.NodeCert, cfg.NodeKey
		cfg.SMTPSAddr, cfg.IMAPSAddr = nodetest.FreeAddr(t), nodetest.FreeAddr(t)
	}})
	l := c.WaitLeader(10 * time.Second)
	ctx := c.Ctx(2 * time.Minute)
	const user, pw = "alice@example.test", "correct horse battery"
	if _, err := c.Admin(l).DomainAdd(ctx, &adminpb.DomainAddRequest{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin(l).UserAdd(ctx, &adminpb.UserAddRequest{Email: user, Password: pw}); err != nil {
		t.Fatal(err)
	}
	ca, _ := identity.CAFiles(c.TLSDir)
	cfg := c.Cfgs[(l+1)%3] // a follower: writes are forwarded over mTLS
	port := func(a string) string { _, p, _ := net.SplitHostPort(a); return p }

	out, err := exec.CommandContext(ctx, py, "-c", clientTLSScript, "127.0.0.1", port(cfg.SMTPAddr), port(cfg.SMTPSAddr),
		port(cfg.IMAPAddr), port(cfg.IMAPSAddr), ca, user, pw).CombinedOutput()
	if err != nil {
		t.Fatalf("python ssl/smtplib/imaplib: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "messages 2") {
		t.Fatalf("python saw %q, want 2 messages", out)
	}

	if swaks, err := exec.LookPath("swaks"); err == nil {
		for _, a := range [][]string{
			{"--server", cfg.SMTPAddr, "--tls"},
			{"--server", cfg.SMTPSAddr, "--tls-on-connect"},
		} {
			args := append(a, "--tls-verify", "--tls-ca-path", ca, "--to", user, "--from", "swaks@remote.test", "--timeout", "20")
			out, err := exec.CommandContext(ctx, swaks, args...).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "<~  250") {
				t.Fatalf("swaks %v: %v\n%s", a, err, out)
			}
		}
	} else {
		t.Log("swaks not installed: skipped")
	}

	curl, err := exec.LookPath("curl")
	if err == nil {
		out, err := exec.CommandContext(ctx, curl, "-sS", "--max-time", "20", "--cacert", ca, "--user", user+":"+pw,
			"imaps://127.0.0.1:"+port(cfg.IMAPSAddr)+"/INBOX;UID=1").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hello over TLS") {
			t.Fatalf("curl imaps://: %v\n%s", err, out)
		}
		out, err = exec.CommandContext(ctx, curl, "-sS", "--max-time", "20", "--ssl-reqd", "--cacert", ca, "--user", user+":"+pw,
			"imap://127.0.0.1:"+port(cfg.IMAPAddr)+"/INBOX;UID=2").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "hello over TLS") {
			t.Fatalf("curl imap:// --ssl-reqd (STARTTLS): %v\n%s", err, out)
		}
	}

	// TLS 1.1 is refused on the implicit-TLS ports.
	for _, a := range []string{cfg.SMTPSAddr, cfg.IMAPSAddr} {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", a,
			&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		if err == nil {
			conn.Close()
			t.Errorf("%s accepted TLS 1.1", a)
		}
	}

	// A certificate replaced on disk is served on the next connection.
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca)
	pool.AppendCertsFromPEM(pem)
	serial := func(addr string) string {
		t.Helper()
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
		if err != nil {
			t.Fatalf("dial %s: %v", addr, err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := map[string]string{"smtps": serial(cfg.SMTPSAddr), "imaps": serial(cfg.IMAPSAddr)}
	if before["smtps"] != before["imaps"] {
		t.Fatalf("smtps and imaps serve different certificates")
	}
	time.Sleep(20 * time.Millisecond) // let the files' mtime move on coarse clocks
	if _, _, err := identity.IssueNode(c.TLSDir, cfg.ID, nil); err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]string{"smtps": cfg.SMTPSAddr, "imaps": cfg.IMAPSAddr} {
		if got := serial(a); got == before[name] {
			t.Errorf("%s still serves serial %s after the certificate was replaced", name, got)
		}
	}
	// STARTTLS too, through Python.
	check := fmt.Sprintf(`
import smtplib, ssl
ctx = ssl.create_default_context(cafile=%q)
s = smtplib.SMTP("127.0.0.1", %s, timeout=20)
s.starttls(context=ctx)
print(int(s.sock.getpeercert()["serialNumber"], 16))
s.quit()
`, ca, port(cfg.SMTPAddr))
	out, err = exec.CommandContext(context.Background(), py, "-c", check).CombinedOutput()
	if err != nil {
		t.Fatalf("python STARTTLS after the replacement: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got == before["smtps"] {
		t.Errorf("STARTTLS still serves serial %s after the certificate was replaced", got)
	}
}
