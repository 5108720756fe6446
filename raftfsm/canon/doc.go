// Package canon holds the canonical forms of the names the state machine
// stores: email addresses, domains and mailbox names. It is a leaf (the
// standard library only) so that raftfsm, node/mail and the frontends use
// one rule each.
//
// The rules are raftfsm's, and they are part of its determinism contract:
// every replica must accept and refuse the same commands, byte for byte,
// whatever Go release built it. So the rules are ASCII-only where case is
// folded (no Unicode tables), and a change to any rule or limit here
// changes which commands succeed: it must be gated on a new command
// version, never made in place. canon_test.go pins them in a table.
//
// What is canonical:
//
//   - Domain: lower-case ASCII letters, digits and hyphens in dot-separated
//     labels of 1-63 octets, no label starting or ending with a hyphen, at
//     most 253 octets. An internationalised domain is converted to this
//     form (punycode) by the caller before (node/mail uses IDNA); no
//     trailing dot, no spaces.
//   - Email: local@domain, at most 254 octets, split at the last "@"; the
//     local part an RFC 5322 dot-atom of ASCII atext (at most 64 octets, no
//     leading, trailing or doubled dot), lower-cased. UTF-8 local parts
//     (RFC 6531) and quoted local parts are refused: no user, alias or
//     catch-all name has one.
//   - Recipient: an address as a client sends it, for lookup only: Email's
//     rules with UTF-8 allowed in the local part (the SMTP server offers
//     SMTPUTF8). Such an address matches no stored name, only a catch-all.
//   - MailboxName: valid UTF-8 of at most 512 octets and 32 levels
//     separated by "/", no empty, "." or ".." level, no control characters,
//     C1 controls, U+FFFD, or IMAP wildcards ("*", "%"); a first level equal
//     to INBOX in any ASCII case becomes "INBOX" (RFC 9051 §5.1). Other
//     levels keep their case.
//
// Every function returns an error wrapping ErrInvalid that says which rule
// the input broke, for the frontends to show.
package canon
