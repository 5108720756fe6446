// Package bench is Continuum's load generator: it drives any SMTP, LMTP or
// IMAP server (a Continuum node, Dovecot, anything speaking the protocol)
// with concurrent sessions for a duration or a number of operations, and
// reports throughput, latency percentiles (p50/p90/p99) and errors.
//
// `continuum bench` (cmd/continuum/bench.go) is a thin command over Run;
// `make bench-compare` (Compare, compare.go) runs the same workloads
// against a private Dovecot and a 3-node Continuum cluster side by side
// and writes BENCHMARKS.md (CompareOptions.Workloads picks the delivery
// and/or IMAP groups; the IMAP group adds the 20-client mixed load and
// Imaplib, single-client APPEND/STORE latency through Python's imaplib).
//
// Bodies are realistic by default (Body "random"): a short text part and a
// random base64 attachment, which compression cannot shrink much, with a
// unique Message-ID per message. "text" is a repetitive text body (what
// the older in-process benchmarks use; it compresses about 100×), and
// "corpus" replays the messages of a directory (one RFC 5322 file each),
// each with a fresh Message-ID.
//
// Workloads (Config.Protocol / Config.Op):
//
//	smtp, lmtp       one transaction per operation, one recipient each,
//	                 recipients round-robin over Users
//	imap login       connect, LOGIN, LOGOUT per operation
//	imap fetch-headers  SELECT + FETCH 1:* of five header fields
//	imap fetch-flags    FETCH 1:* FLAGS on a selected mailbox
//	imap idle        deliver one message (Config.Deliver) and time it until
//	                 the IDLE-ing session sees EXISTS
//	imap mixed       one command per operation, as a mail client sends
//	                 them: LOGIN, SELECT, then five times APPEND, FETCH
//	                 (flags, size, five header fields of the last ten),
//	                 STORE \Seen, FETCH FLAGS (last ten), STORE \Deleted,
//	                 EXPUNGE, then LOGOUT and again
//
// Latency is per operation, measured by the client on loopback, so it
// includes the client's own cost (small next to the server's on these
// workloads). Plain TCP only: point it at the plaintext listeners.
package bench
