// Command continuum is the one binary of a Continuum cluster: `serve` runs a
// node, `dev` runs a local cluster, and the admin subcommands talk to any
// node's gRPC address.
//
// `import` and `export` move a user's mail in and out (node/migrate does
// the work): mbox, Maildir, or a live IMAP server. They show a progress bar
// (messages, bytes, rate, ETA) when standard error is a terminal and a log
// line every 5 s otherwise, and end with a summary: copied, skipped (already
// there: run the same import again after an interruption and only the rest
// is copied), failed with the reason of each.
package main
