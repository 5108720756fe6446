// Package migrate moves mail into and out of a Continuum cluster: the
// client side of `continuum import` and `continuum export`. Sources (mbox,
// Maildir, a live IMAP server) and sinks (mbox, Maildir) are read and
// written here, on the operator's machine; the cluster is reached only
// through the admin gRPC API (adminpb Import and Export streams), so the
// command acts for any user with the administrator's credentials.
//
// # Formats
//
//   - mbox is mboxrd: every message starts with "From SENDER DATE" (the
//     date is the INTERNALDATE, UTC), lines matching ^>*From  are quoted
//     with one more '>' and unquoted on the way in. Flags travel as the
//     last header fields, Status (R), X-Status (A F T D) and X-Keywords
//     (mutt's and Dovecot's convention); import removes these trailing
//     fields again (and Dovecot's X-UID, X-IMAPbase, X-IMAP), so the bytes
//     stored are the bytes exported. A tree is NAME.mbox per mailbox with
//     the hierarchy as directories; import also takes any file that starts
//     with "From " (Dovecot's and mutt's mbox trees).
//   - Maildir is Maildir++ as Dovecot lays it out: INBOX at the root, A/B
//     in .A.B (levels in modified UTF-7, '.' inside a level encoded too),
//     flags in the file name after ":2," (D F P R S T, P = $Forwarded),
//     keywords as the letters a-z indexed by the folder's dovecot-keywords
//     file (export writes $Forwarded both as P and as a keyword, which is
//     how Dovecot serves it), the file's mtime as INTERNALDATE, and the
//     order in dovecot-uidlist.
//   - IMAP: LIST (with SPECIAL-USE and SUBSCRIBED where offered), then per
//     mailbox EXAMINE (the source is not changed) and one UID FETCH 1:*
//     (UID FLAGS INTERNALDATE BODY.PEEK[]) read as it streams in.
//
// Message bytes are kept exactly, with one exception: a message read from a
// file that has no CRLF at all (an LF-only mbox or Maildir file, as most
// tools write them) gets CRLF line ends, the form IMAP serves.
//
// # Import
//
// Import sends mailboxes and messages on one Import stream and reads the
// node's replies on a second goroutine. The node (node/admin) creates each
// mailbox (with its parents and special use), takes its inventory (the
// SHA-256 of every message it holds), skips a message when the mailbox
// holds as many copies of it as the stream has sent so far, and commits the
// rest in AppendBatch entries. Running the same import again after an
// interruption therefore copies only what is missing and reports the rest
// as skipped. A message over 1 MiB is sent in 1 MiB pieces and spooled to
// disk by the node. Memory on the client is one message at a time; on the
// node, the batches in flight (node/admin.importWindow) and the mailbox's
// inventory (about 60 bytes per message).
//
// # Goroutines
//
// Import runs one goroutine for the replies and returns after it ended;
// Export runs none. Progress implementations are safe for both.
package migrate
