// Command continuum is the one binary of a Continuum cluster: `serve` runs a
// node, `dev` runs a local cluster (secure by default: its own CA, node and
// admin certificates, gossip key), `tls` issues the cluster's CA and
// certificates, and the admin subcommands talk to any node's admin address
// with an admin certificate (--ca/--cert/--key, CONTINUUM_CA/CERT/KEY, or the
// dev cluster's cluster.json).
//
// The archive commands (archive.go): `retention set|list|run`, `hold
// place|release|list`, `audit list`, `archive verify [--all | --data DIR]`
// (--data verifies a stopped node's directory, or a copy, offline),
// `archive restore --user U [--mailbox M --uid N]` (back from the vault),
// `archive search` and `archive export --format mbox --out PATH`, which
// writes an mboxrd file and PATH.manifest.json with the SHA-256 of every
// message (checked against the server's as it arrives) and of the file.
//
// `import` and `export` move a user's mail in and out (node/migrate does
// the work): mbox, Maildir, or a live IMAP server. They show a progress bar
// (messages, bytes, rate, ETA) when standard error is a terminal and a log
// line every 5 s otherwise, and end with a summary: copied, skipped (already
// there: run the same import again after an interruption and only the rest
// is copied), failed with the reason of each.
package main
