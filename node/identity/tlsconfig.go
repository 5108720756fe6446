package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Reloader serves a certificate pair from files, re-reading them when
// either changes on disk (mtime or size), so a renewed certificate is
// served from the next handshake on without a restart. A pair that fails
// to load (a half-finished replacement) leaves the previous one in use.
type Reloader struct {
	certFile, keyFile string

	mu    sync.Mutex
	cert  *tls.Certificate
	stamp string
}

// NewReloader loads the pair once; it fails when that fails.
func NewReloader(certFile, keyFile string) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile}
	if _, err := r.Certificate(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Reloader) fileStamp() (string, error) {
	var s string
	for _, p := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", st.ModTime().UnixNano(), st.Size())
	}
	return s, nil
}

// Certificate returns the current pair, reloading it if the files changed.
func (r *Reloader) Certificate() (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stamp, err := r.fileStamp()
	if err == nil && stamp == r.stamp && r.cert != nil {
		return r.cert, nil
	}
	var c tls.Certificate
	if err == nil {
		c, err = tls.LoadX509KeyPair(r.certFile, r.keyFile)
	}
	if err != nil {
		if r.cert != nil {
			return r.cert, nil // keep serving the last good pair
		}
		return nil, fmt.Errorf("identity: certificate %s: %w", r.certFile, err)
	}
	r.cert, r.stamp = &c, stamp
	return r.cert, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.Certificate()
}

// GetClientCertificate is tls.Config.GetClientCertificate.
func (r *Reloader) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return r.Certificate()
}

// Material is what a node or an admin client authenticates with: the
// cluster CA and its own certificate pair.
type Material struct {
	CAs  *x509.CertPool
	Cert *Reloader
}

// Load reads the CA and the certificate pair; it refuses a key that group
// or others can read.
func Load(caFile, certFile, keyFile string) (*Material, error) {
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("identity: cluster CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("identity: %s holds no PEM certificate", caFile)
	}
	if err := checkPrivate(keyFile); err != nil {
		return nil, err
	}
	r, err := NewReloader(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &Material{CAs: pool, Cert: r}, nil
}

// Allow decides whether a verified identity may use a channel; nil admits
// any identity of the channel's role.
type Allow func(Identity) error

// verify checks the peer's chain against the cluster CA for usage, then
// its role, then allow. Host names are not checked: the identity is the
// certificate's URI.
func (m *Material) verify(cs tls.ConnectionState, usage x509.ExtKeyUsage, role string, allow Allow) error {
	if len(cs.PeerCertificates) == 0 {
		return fmt.Errorf("%w: no certificate", ErrUntrusted)
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.CAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}, CurrentTime: time.Now()}); err != nil {
		return fmt.Errorf("%w: %v", ErrUntrusted, err)
	}
	id, err := FromCertificate(leaf)
	if err != nil {
		return err
	}
	if id.Role != role {
		return fmt.Errorf("%w: %s on a %s channel", ErrWrongRole, id, role)
	}
	if allow != nil {
		if err := allow(id); err != nil {
			return errors.Join(ErrNotAllowed, err)
		}
	}
	return nil
}

// ServerConfig is mutual TLS 1.3 for a listener whose clients must hold a
// certificate of role that allow admits.
func (m *Material) ServerConfig(role string, allow Allow) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequireAnyClientCert, // verified below, against the cluster CA only
		GetCertificate: m.Cert.GetCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return m.verify(cs, x509.ExtKeyUsageClientAuth, role, allow)
		},
	}
}

// ClientConfig is mutual TLS 1.3 for dialing a server that must hold a node
// certificate that allow admits.
func (m *Material) ClientConfig(allow Allow) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		InsecureSkipVerify:   true, // the chain and identity are checked by VerifyConnection
		GetClientCertificate: m.Cert.GetClientCertificate,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return m.verify(cs, x509.ExtKeyUsageServerAuth, RoleNode, allow)
		},
	}
}
