// Package identity is the cluster's public-key infrastructure: a cluster CA,
// the certificates it issues to nodes and administrators, and the TLS
// configurations every node-to-node and admin channel uses.
//
// A certificate names who holds it in a URI SAN: continuum://node/ID for a
// node, continuum://admin/NAME for an operator. Host names play no part in
// authenticating a peer: a node is who its certificate's URI says, provided
// the chain ends at the cluster CA (ca.pem) and the certificate is valid now.
// Node certificates also carry DNS and IP SANs, so the same pair can serve
// SMTP and IMAP clients that check host names.
//
// Files in a TLS directory (written by `continuum tls ca|cert`):
//
//	ca.pem, ca-key.pem                  the cluster CA (ECDSA P-256, 1 year)
//	node-ID.pem, node-ID-key.pem        a node (server and client auth, 90 days)
//	admin-NAME.pem, admin-NAME-key.pem  an operator (client auth, 90 days)
//
// Private keys are written 0600; Load refuses a key file that is group or
// world readable, as does ReadSecret for the gossip key.
//
// Certificates rotate without a restart: Reloader re-reads a certificate
// pair when its files change on disk (checked at most once a second, on a
// handshake), and every tls.Config built here takes its own certificate
// from one.
//
// Goroutines: none.
package identity
