package clustertest

import (
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
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Password is every test user's password.
const Password = "clustertest-password"

// writeSelfSignedCert writes a throwaway certificate and key for every
// node's STARTTLS into dir and returns their paths.
func writeSelfSignedCert(t testing.TB, dir string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "clustertest." + Domain},
		DNSNames:     []string{"*." + Domain, Domain},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "tls-cert.pem"), filepath.Join(dir, "tls-key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

// DialIMAP connects to node i's IMAP port, upgrades with STARTTLS (the
// certificate is the test's own, not verified) and logs in as user. The
// handler, when not nil, receives unsolicited data (EXISTS during IDLE).
// imapclient bounds each response by 30 s; within bounds a call tighter.
func (c *Cluster) DialIMAP(i int, user string, handler *imapclient.UnilateralDataHandler) (*imapclient.Client, error) {
	if c.tlsCert == "" {
		return nil, fmt.Errorf("clustertest: IMAP needs Options.IMAP (a certificate for STARTTLS)")
	}
	conn, err := net.DialTimeout("tcp", c.Nodes[i].Addr(PortIMAP), 2*time.Second)
	if err != nil {
		return nil, err
	}
	// A stopped node would hold the greeting for imapclient's 30 s.
	timer := time.AfterFunc(10*time.Second, func() { conn.Close() })
	cl, err := imapclient.NewStartTLS(conn, &imapclient.Options{
		TLSConfig:             &tls.Config{InsecureSkipVerify: true, ServerName: c.Nodes[i].ID + "." + Domain},
		UnilateralDataHandler: handler,
	})
	timer.Stop()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("starttls: %w", err)
	}
	if err := within(cl, 10*time.Second, func() error { return cl.Login(user, Password).Wait() }); err != nil {
		cl.Close()
		return nil, fmt.Errorf("login: %w", err)
	}
	return cl, nil
}

// within runs f, closing cl when it takes longer than d (a stopped or
// cut-off node must not hang a reader for imapclient's own 30 s).
func within(cl *imapclient.Client, d time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cl.Close()
		<-done
		return fmt.Errorf("no answer within %v", d)
	}
}
