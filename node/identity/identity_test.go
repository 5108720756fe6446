package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func mustCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := CreateCA(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mustLoad(t *testing.T, dir, cert, key string) *Material {
	t.Helper()
	ca, _ := CAFiles(dir)
	m, err := Load(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// handshake runs a TLS handshake over a loopback TCP pair and returns the
// client's and the server's errors.
func handshake(t *testing.T, server, client *tls.Config) (cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		done <- tc.Handshake()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Client(c, client)
	cerr = tc.Handshake()
	if cerr == nil {
		// TLS 1.3: the server's verdict on the client certificate arrives
		// after the client's handshake returns; a read surfaces it.
		tc.SetReadDeadline(time.Now().Add(time.Second))
		_, rerr := tc.Read(make([]byte, 1))
		// EOF: the server closed after a successful handshake.
		if ne, ok := rerr.(net.Error); rerr != io.EOF && (!ok || !ne.Timeout()) {
			cerr = rerr
		}
	}
	return cerr, <-done
}

func TestNodeAndAdminCertificates(t *testing.T) {
	dir := mustCA(t)
	n1c, n1k, err := IssueNode(dir, "n1", nil)
	if err != nil {
		t.Fatal(err)
	}
	n2c, n2k, _ := IssueNode(dir, "n2", []string{"mail.example.test", "10.0.0.2"})
	ac, ak, _ := IssueAdmin(dir, "ops")
	other := mustCA(t)
	oc, ok, _ := IssueNode(other, "n1", nil)

	n1 := mustLoad(t, dir, n1c, n1k)
	n2 := mustLoad(t, dir, n2c, n2k)
	adm := mustLoad(t, dir, ac, ak)
	// An outsider whose own CA is the cluster's: it trusts the cluster but
	// the cluster does not trust it.
	outsider := mustLoad(t, dir, oc, ok)

	leaf, _ := n2.Cert.Certificate()
	x, _ := x509.ParseCertificate(leaf.Certificate[0])
	if got, err := FromCertificate(x); err != nil || got != (Identity{RoleNode, "n2"}) {
		t.Fatalf("identity of n2's certificate = %v, %v", got, err)
	}
	if x.NotAfter.Sub(x.NotBefore) > LeafValidity+time.Hour {
		t.Errorf("leaf valid for %v, want at most %v", x.NotAfter.Sub(x.NotBefore), LeafValidity)
	}
	if len(x.DNSNames) != 1 || len(x.IPAddresses) != 1 {
		t.Errorf("n2 SANs: %v %v", x.DNSNames, x.IPAddresses)
	}

	onlyN2 := func(id Identity) error {
		if id.Name != "n2" {
			return fmt.Errorf("%s is not a member", id.Name)
		}
		return nil
	}
	for _, tc := range []struct {
		name     string
		server   *tls.Config
		client   *tls.Config
		wantFail error
	}{
		{"node to node", n1.ServerConfig(RoleNode, nil), n2.ClientConfig(nil), nil},
		{"member check passes", n1.ServerConfig(RoleNode, onlyN2), n2.ClientConfig(nil), nil},
		{"member check refuses", n2.ServerConfig(RoleNode, onlyN2), n1.ClientConfig(nil), ErrNotAllowed},
		{"admin on a node channel", n1.ServerConfig(RoleNode, nil), adm.ClientConfig(nil), ErrWrongRole},
		{"admin on the admin channel", n1.ServerConfig(RoleAdmin, nil), adm.ClientConfig(nil), nil},
		{"node on the admin channel", n1.ServerConfig(RoleAdmin, nil), n2.ClientConfig(nil), ErrWrongRole},
		{"another CA's certificate", n1.ServerConfig(RoleNode, nil), outsider.ClientConfig(nil), ErrUntrusted},
		{"no certificate", n1.ServerConfig(RoleNode, nil), &tls.Config{InsecureSkipVerify: true}, nil},
		{"client refuses another CA's server", outsider.ServerConfig(RoleNode, nil), n1.ClientConfig(nil), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cerr, serr := handshake(t, tc.server, tc.client)
			switch {
			case tc.name == "no certificate":
				if serr == nil {
					t.Fatal("server accepted a client without a certificate")
				}
			case tc.name == "client refuses another CA's server":
				if !errors.Is(cerr, ErrUntrusted) {
					t.Fatalf("client: %v, want ErrUntrusted", cerr)
				}
			case tc.wantFail == nil:
				if cerr != nil || serr != nil {
					t.Fatalf("client %v, server %v; want success", cerr, serr)
				}
			default:
				if !errors.Is(serr, tc.wantFail) {
					t.Fatalf("server: %v, want %v", serr, tc.wantFail)
				}
			}
		})
	}
}

func TestReloaderServesANewCertificate(t *testing.T) {
	dir := mustCA(t)
	c, k, _ := IssueNode(dir, "n1", nil)
	r, err := NewReloader(c, k)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.Certificate()
	// Same mtime granularity could hide a quick rewrite: make sure it moves.
	time.Sleep(10 * time.Millisecond)
	if _, _, err := IssueNode(dir, "n1", nil); err != nil {
		t.Fatal(err)
	}
	second, _ := r.Certificate()
	if string(first.Certificate[0]) == string(second.Certificate[0]) {
		t.Fatal("a replaced certificate was not reloaded")
	}
	// A broken replacement keeps the last good pair.
	os.WriteFile(c, []byte("garbage"), 0o644)
	third, err := r.Certificate()
	if err != nil || string(third.Certificate[0]) != string(second.Certificate[0]) {
		t.Fatalf("after a broken replacement: %v", err)
	}
}

func TestSecretsMustBePrivate(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "gossip.key")
	if err := WriteGossipKey(p); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadSecret(p); err != nil || len(b) != 44 {
		t.Fatalf("ReadSecret = %q, %v", b, err)
	}
	os.Chmod(p, 0o644)
	if _, err := ReadSecret(p); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("world-readable secret: %v, want ErrInsecureFile", err)
	}
	ca := mustCA(t)
	c, k, _ := IssueAdmin(ca, "ops")
	os.Chmod(k, 0o640)
	caFile, _ := CAFiles(ca)
	if _, err := Load(caFile, c, k); !errors.Is(err, ErrInsecureFile) {
		t.Fatalf("group-readable key: %v, want ErrInsecureFile", err)
	}
	if err := CreateCA(ca); err == nil {
		t.Fatal("CreateCA overwrote an existing CA")
	}
}
