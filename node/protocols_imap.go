package node

import (
	"fmt"

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
	})
	if err != nil {
		return fmt.Errorf("node: imap: %w", err)
	}
	return n.serveProtocol("imap", n.cfg.IMAPAddr, srv)
}
