package node

import (
	"fmt"
	"net"

	"github.com/continuum-mail/continuum/node/imapd"
)

// startIMAP starts the IMAP listener when one is configured.
func (n *Node) startIMAP() error {
	if n.cfg.IMAPAddr == "" {
		return nil
	}
	tlsConfig, err := n.protocolTLS()
	if err != nil {
		return err
	}
	srv, err := imapd.New(imapd.Options{
		Mail:      n.mail,
		Flow:      n.flow,
		Logger:    n.log,
		TLSConfig: tlsConfig,
		Dev:       n.cfg.Dev,
		// The same per-address cap as SMTP's.
		MaxConnsPerIP: n.cfg.MaxConnsPerIP,
		Logins:        n.logins,
	})
	if err != nil {
		return fmt.Errorf("node: imap: %w", err)
	}
	if err := n.serveProtocol("imap", n.cfg.IMAPAddr, srv); err != nil {
		return err
	}
	if n.cfg.IMAPSAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", n.cfg.IMAPSAddr)
	if err != nil {
		return fmt.Errorf("node: imaps listen: %w", err)
	}
	n.goServe("imaps", func() error { return srv.ServeTLS(ln) })
	return nil
}
