// Package mimeparse computes, once per message at delivery, the structure
// IMAP FETCH answers from: the ENVELOPE, the BODYSTRUCTURE and the byte
// offsets of every MIME part in the stored message (storagepb.ParsedMessage).
// FETCH BODY[section]<partial> is then a slice of the stored bytes, never a
// re-parse, so the offsets are the contract of this package:
//
//   - data[header_start:header_end] is a part's header including the blank
//     line that ends it (BODY[n.MIME], BODY[HEADER]); header_end = body_start.
//   - data[body_start:body_end] is the part's body in its transfer encoding
//     (BODY[n], BODY[TEXT]); size = body_end - body_start.
//   - The root part spans all of data. A message/rfc822 or message/global
//     part has one child, the encapsulated message, spanning exactly the
//     part's body. Children of a multipart lie inside its body, in order,
//     without the preamble, the epilogue, the delimiter lines or the line
//     break before each delimiter, which RFC 2046 §5.1.1 attaches to the
//     delimiter.
//
// What it follows:
//
//   - RFC 5322 for the header: a header ends at the first empty line; a
//     message without one is all header and has an empty body. Fields are
//     unfolded; a line that is not a field (no colon, bad name) is skipped.
//     Bare LF line endings (IMAP APPEND) are accepted wherever CRLF is.
//   - RFC 2045 for Content-Type (absent or unparseable: text/plain;
//     charset=us-ascii, §5.2) and Content-Transfer-Encoding (default 7bit);
//     RFC 2046 §5.1 for multipart boundaries (a missing close delimiter is
//     tolerated; a body part defaults to message/rfc822 inside
//     multipart/digest, §5.1.5); RFC 2047 encoded words in Subject, display
//     names, Content-Description and parameter values; RFC 2231 parameter
//     continuations and charsets (mime.ParseMediaType, plus a fallback for
//     the charsets other than us-ascii and utf-8 that it drops).
//   - RFC 9051 §7.5.2 for what BODYSTRUCTURE and ENVELOPE report: lower-case
//     type, subtype, encoding and disposition; lines for text/* and
//     message/rfc822|global; Sender and Reply-To default to From.
//
// Header fields and parameters are parsed with github.com/emersion/go-message
// (textproto.Header, message.Header.ContentType, mail.Header.AddressList) with
// its full charset table; only the boundary scan, which must yield offsets, is
// written here.
//
// Limits (Limits, DefaultLimits) bound CPU and memory on hostile input. A
// header block over MaxHeaderBytes or MaxHeaderLines makes Parse fail with an
// error wrapping ErrTooComplex, which SMTP answers with 554 5.6.0. Nesting
// beyond MaxDepth or more than MaxParts parts is not an error: the part where
// the limit struck is marked truncated and the rest of its body stays opaque,
// still served by BODY[] slices. A truncated multipart keeps the children
// parsed before the limit; a truncated message/rfc822 part has neither
// envelope nor child, and the IMAP layer must render it as a basic body.
// Work is linear in len(data) times the nesting depth.
//
// Parse is deterministic: the same bytes give the same record on every node.
// It reads no clock and no time zone (obsolete zone names in Date are mapped
// by RFC 5322 §4.3, not by time.Local), and every string it stores is valid
// UTF-8, as proto3 requires (undecodable 8-bit header bytes become U+FFFD).
//
// Section maps an IMAP section number (RFC 9051 §6.4.5) to a part.
//
// The package has no goroutines and no state; it is safe for concurrent use.
package mimeparse
