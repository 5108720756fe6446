// Package smtpd is the mail ingest of a Continuum node: an SMTP listener (the
// MX role, RFC 5321) and an LMTP listener over TCP (RFC 2033), both built on
// github.com/emersion/go-smtp and both delivering through node/mail.
//
// # What a sender can rely on
//
//   - 250 only after mail.Deliver returned: the message is committed on a
//     quorum of sites and applied on this node (docs/ARCHITECTURE.md §1). Every
//     cluster-caused failure is a temporary 451 4.3.0, never a 5xx.
//   - A node cut off from the leader for longer than the bound greets every
//     new connection with "421 4.3.2 <host> cluster unavailable, try another
//     MX" and closes it (listener.go), so MTAs move to the next MX at once.
//   - One mail.Deliver per transaction for every recipient (single-instance
//     storage); the body as received is the dedupe key, so a retry at any
//     node after a 451 or a timeout gets 250 and no second copy.
//
// # Protocol
//
// EHLO advertises PIPELINING, 8BITMIME, SMTPUTF8 (RFC 6531),
// ENHANCEDSTATUSCODES (RFC 2034; codes from RFC 3463), SIZE (RFC 1870),
// CHUNKING (BDAT, RFC 3030) and STARTTLS (RFC 3207) when a certificate is
// configured. AUTH is never advertised: this is an MX, not a submission
// server; an AUTH attempt gets 538 5.7.11 before TLS on a non-loopback
// connection (RFC 4954 §6) and 502 5.5.1 otherwise. LMTP answers DATA with
// one reply per accepted recipient, in RCPT order (RFC 2033 §4.2).
//
// DATA is read strictly (RFC 5321 §2.3.8, §4.1.1.4): a bare CR or bare LF
// anywhere in the message ends the session with 521 5.5.2 and nothing of it
// is stored, which closes every SMTP smuggling variant (<LF>.<LF>,
// <LF>.<CR><LF>, <CR><LF>.<LF>). NUL bytes are refused with 554 5.6.0;
// 8-bit header bytes without SMTPUTF8 are accepted intact (common in real
// mail; nothing here interprets them). Each message gets Return-Path and
// Received (RFC 5321 §4.4) prepended; the Received "with" keyword follows
// RFC 3848 and RFC 6531 §3.7.3.
//
// Every limit is set, since go-smtp's zero values mean unlimited: line
// length (2 KiB), message size, recipients, read and write timeouts (a whole
// DATA transfer must finish within one timeout), connections per client
// address (in the listener), and go-smtp closes a session after four
// protocol errors. Every error becomes a reply through the one table in
// reply.go.
//
// # Goroutines
//
// Serve runs go-smtp's accept loop on the caller's goroutine; go-smtp owns
// one goroutine per connection (and one per BDAT transaction). Close stops
// the listener, closes every connection and cancels in-flight deliveries.
//
// # Reading DATA before go-smtp does
//
// go-smtp v0.25.1's DATA reader returns only when the caller's buffer is
// full or the message has ended, misreads "\r\r" (so after "hi\r.\r" it
// never sees the "\r\n.\r\n" that follows and the session hangs until the
// timeout), and drops a line-start ".\r" not followed by LF, bare CR and
// all. So the raw stream is checked first (dataread.go, rawGuard): the
// bytes in go-smtp's buffer are peeked at and scanned with the framing of
// RFC 5321 §4.5.2, and go-smtp is asked only for bytes already scanned. A
// bare CR or LF is answered with 521 5.5.2 as soon as it arrives (within
// the time it takes to write one reply), over plain connections and after
// STARTTLS alike. The buffer is reached by reflection on go-smtp's
// unexported dataReader; TestSMTP/BareLineEndingAnsweredAtOnce fails if an
// upgrade moves it. The fix belongs upstream too (data.go, stateCR and
// stateDotCR).
//
// # LMTP limits
//
// LMTP comes from the operator's own MTAs, so it has its own limits
// (node/config lmtp-max-conns-per-ip, no cap by default, and
// lmtp-max-conns, 1024 in total: 421 4.3.2 over it); SMTP keeps
// max-conns-per-ip (421 4.7.0).
package smtpd
