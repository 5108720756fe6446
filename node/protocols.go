package node

import (
	"crypto/tls"
	"fmt"
	"net"

	"github.com/continuum-mail/continuum/node/identity"
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
		name, addr    string
		lmtp, implTLS bool
	}{{"smtp", n.cfg.SMTPAddr, false, false}, {"lmtp", n.cfg.LMTPAddr, true, false}, {"smtps", n.cfg.SMTPSAddr, false, true}} {
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
			ImplicitTLS:     p.implTLS,
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

// protocolTLS is the TLS configuration of STARTTLS, smtps and imaps; nil
// when no certificate is configured. The certificate is read from its
// files again whenever they change, so a renewed one is served from the
// next connection on without a restart.
func (n *Node) protocolTLS() (*tls.Config, error) {
	if n.cfg.TLSCert == "" {
		return nil, nil
	}
	if n.clientTLS == nil {
		r, err := identity.NewReloader(n.cfg.TLSCert, n.cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("node: tls certificate: %w", err)
		}
		n.clientTLS = &tls.Config{GetCertificate: r.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	return n.clientTLS, nil
}
