package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Roles a certificate can name.
const (
	RoleNode  = "node"
	RoleAdmin = "admin"
)

// Validity of what Issue* and CreateCA write: leaves are short-lived so
// that rotating them is routine.
const (
	CAValidity   = 365 * 24 * time.Hour
	LeafValidity = 90 * 24 * time.Hour
)

var (
	// ErrUntrusted means a peer's certificate does not chain to the cluster
	// CA, is expired, or names no identity.
	ErrUntrusted = errors.New("identity: certificate not issued by the cluster CA")
	// ErrWrongRole means the certificate names an identity of another role
	// (an admin certificate on a node channel, or the reverse).
	ErrWrongRole = errors.New("identity: certificate of the wrong role")
	// ErrNotAllowed means the identity is valid but may not do this (not a
	// member of the Raft configuration, or claims another node's ID).
	ErrNotAllowed = errors.New("identity: not allowed")
	// ErrInsecureFile means a private key or secret is readable by group or
	// others.
	ErrInsecureFile = errors.New("identity: secret file readable by group or others")
)

// Identity is who a certificate names.
type Identity struct {
	Role string // RoleNode or RoleAdmin
	Name string // the node ID or the admin name
}

func (i Identity) String() string { return i.Role + "/" + i.Name }

// URI is the identity's URI SAN, continuum://ROLE/NAME.
func (i Identity) URI() *url.URL {
	return &url.URL{Scheme: "continuum", Host: i.Role, Path: "/" + i.Name}
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// FromCertificate reads the identity a certificate names.
func FromCertificate(c *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range c.URIs {
		if u.Scheme != "continuum" {
			continue
		}
		id := Identity{Role: u.Host, Name: strings.TrimPrefix(u.Path, "/")}
		if (id.Role == RoleNode || id.Role == RoleAdmin) && namePattern.MatchString(id.Name) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("%w: want exactly one continuum:// URI, found %d", ErrUntrusted, len(found))
	}
	return found[0], nil
}

// FromContext returns the verified identity of a gRPC call's peer; false
// when the call did not come over TLS with a client certificate.
func FromContext(ctx context.Context) (Identity, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.PeerCertificates) == 0 {
		return Identity{}, false
	}
	id, err := FromCertificate(ti.State.PeerCertificates[0])
	if err != nil {
		return Identity{}, false
	}
	return id, true
}

// Files in a TLS directory.
func CAFiles(dir string) (cert, key string) {
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
}

// NodeFiles are node id's certificate and key in dir.
func NodeFiles(dir, id string) (cert, key string) {
	return filepath.Join(dir, "node-"+id+".pem"), filepath.Join(dir, "node-"+id+"-key.pem")
}

// AdminFiles are admin name's certificate and key in dir.
func AdminFiles(dir, name string) (cert, key string) {
	return filepath.Join(dir, "admin-"+name+".pem"), filepath.Join(dir, "admin-"+name+"-key.pem")
}

// GossipKeyFile is the gossip key's file in dir.
func GossipKeyFile(dir string) string { return filepath.Join(dir, "gossip.key") }

// CreateCA writes a new cluster CA into dir. It refuses to overwrite one:
// every certificate issued by the old one would stop being trusted.
func CreateCA(dir string) error {
	certFile, keyFile := CAFiles(dir)
	if _, err := os.Stat(certFile); err == nil {
		return fmt.Errorf("identity: %s exists; a new CA would orphan every certificate it issued", certFile)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Continuum cluster CA", Organization: []string{"Continuum"}},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	return writePair(certFile, keyFile, der, key)
}

// IssueNode writes a certificate for node id, signed by dir's CA. hosts are
// the DNS names and IP addresses it also answers as (SMTP/IMAP clients
// check them); none means localhost, 127.0.0.1 and ::1.
func IssueNode(dir, id string, hosts []string) (certFile, keyFile string, err error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	certFile, keyFile = NodeFiles(dir, id)
	return certFile, keyFile, issue(dir, Identity{RoleNode, id}, hosts, certFile, keyFile)
}

// IssueAdmin writes a client certificate for operator name.
func IssueAdmin(dir, name string) (certFile, keyFile string, err error) {
	certFile, keyFile = AdminFiles(dir, name)
	return certFile, keyFile, issue(dir, Identity{RoleAdmin, name}, nil, certFile, keyFile)
}

func issue(dir string, id Identity, hosts []string, certFile, keyFile string) error {
	if !namePattern.MatchString(id.Name) {
		return fmt.Errorf("identity: name %q: want 1-64 letters, digits, '.', '_' or '-'", id.Name)
	}
	caCertFile, caKeyFile := CAFiles(dir)
	ca, err := tls.LoadX509KeyPair(caCertFile, caKeyFile)
	if err != nil {
		return fmt.Errorf("identity: CA in %s: %w (create one with `continuum tls ca`)", dir, err)
	}
	caCert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: id.Name, Organization: []string{"Continuum " + id.Role}},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(LeafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		URIs:         []*url.URL{id.URI()},
	}
	if tmpl.NotAfter.After(caCert.NotAfter) {
		tmpl.NotAfter = caCert.NotAfter
	}
	if id.Role == RoleNode {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return err
	}
	return writePair(certFile, keyFile, der, key)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// writePair writes the key, then the certificate, each through a rename so
// a Reloader never reads half a file.
func writePair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil { // WriteFile keeps an existing file's mode
		return err
	}
	return os.Rename(tmp, path)
}

// WriteGossipKey writes a new random 32-byte gossip key (base64) to path,
// readable by its owner only.
func WriteGossipKey(path string) error {
	b := make([]byte, 32)
	rand.Read(b)
	return writeAtomic(path, []byte(base64.StdEncoding.EncodeToString(b)+"\n"), 0o600)
}

// ReadSecret reads a secret file (a gossip key), refusing one that group
// or others can read.
func ReadSecret(path string) ([]byte, error) {
	if err := checkPrivate(path); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return []byte(strings.TrimSpace(string(b))), nil
}

func checkPrivate(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %v (chmod 600 it)", ErrInsecureFile, path, st.Mode().Perm())
	}
	return nil
}
