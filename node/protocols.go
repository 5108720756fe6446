package node

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/continuum-mail/continuum/node/smtpd"
)

// startProtocols starts the SMTP, LMTP and IMAP listeners that are
// configured. Each is bound here (so a port conflict fails New) and served
// on its own goroutine; Close stops them first.
func (n *Node) startProtocols() error {
	tlsConfig, err := n.protocolTLS()
	if err != nil {
		return err
	}
	for _, p := range []struct {
		name, addr string
		lmtp       bool
	}{{"smtp", n.cfg.SMTPAddr, false}, {"lmtp", n.cfg.LMTPAddr, true}} {
		if p.addr == "" {
			continue
		}
		perIP, total := n.cfg.MaxConnsPerIP, 0
		if p.lmtp {
			// LMTP comes from the operator's own MTAs: its own limits, no
			// per-address cap unless configured.
			perIP, total = n.cfg.LMTPMaxConnsPerIP, n.cfg.LMTPMaxConns
			if perIP == 0 {
				perIP = -1
			}
		}
		srv := smtpd.New(n.mail, smtpd.Config{
			Hostname:        n.cfg.Hostname,
			LMTP:            p.lmtp,
			TLS:             tlsConfig,
			MaxMessageBytes: n.cfg.MaxMessageBytes,
			MaxRecipients:   n.cfg.MaxRecipients,
			MaxConnsPerIP:   perIP,
			MaxConns:        total,
			Timeout:         n.cfg.ProtocolTimeout.Duration,
			Logger:          n.log,
			Flow:            n.flow,
		})
		if err := n.serveProtocol(p.name, p.addr, srv); err != nil {
			return err
		}
	}
	if err := n.startIMAP(); err != nil {
		return err
	}
	return nil
}

// serveProtocol binds addr and serves srv on it until Close.
func (n *Node) serveProtocol(name, addr string, srv server) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: %s listen: %w", name, err)
	}
	n.servers = append(n.servers, srv)
	n.goServe(name, func() error { return srv.Serve(ln) })
	return nil
}

// protocolTLS loads the certificate for STARTTLS (SMTP, LMTP, IMAP); nil
// when none is configured.
func (n *Node) protocolTLS() (*tls.Config, error) {
	if n.cfg.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(n.cfg.TLSCert, n.cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("node: tls certificate: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
