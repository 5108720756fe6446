package node

// startProtocols starts the SMTP, LMTP and IMAP listeners that are
// configured. They are added by node/smtpd and node/imapd.
func (n *Node) startProtocols() error { return nil }
