// Package imapd serves IMAP on every node with the project's own protocol
// layer: node/imapd/wire parses commands and encodes responses, conn.go is
// the state machine (RFC 9051 §3) and dispatch table, and the session
// (session.go, selected.go, fetch.go, search.go, write.go) does the work
// against node/mail, writing through the small interfaces of writers.go.
// go-imap v2 is used only for its data types (imap.FetchOptions and the
// like) and, in tests, as a client.
//
// What it implements: IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501), with
// IDLE (RFC 2177), UIDPLUS (RFC 4315), MOVE (RFC 6851), SPECIAL-USE and
// CREATE-SPECIAL-USE (RFC 6154), NAMESPACE (RFC 2342), ESEARCH (RFC 4731),
// SEARCHRES (RFC 5182), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819),
// STATUS=SIZE (RFC 8438), APPENDLIMIT (RFC 7889), BINARY (RFC 3516),
// LITERAL+ (RFC 7888), UNSELECT, UNAUTHENTICATE (RFC 8437), SASL-IR,
// STARTTLS, ID (RFC 2971), ENABLE (RFC 5161) and UTF8=ACCEPT (RFC 6855).
// Also CONDSTORE and QRESYNC (RFC 7162, conn_qresync.go: MODSEQs and
// expunge tombstones come from the log, so they are the same on every
// node), QUOTA (RFC 9208, conn_quota.go), SORT, ESORT and SORT=DISPLAY
// (RFC 5256, RFC 5267, RFC 5957, conn_sort.go), PARTIAL (RFC 9394,
// partial.go: paged SEARCH, SORT and FETCH), THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC
// 5256, conn_thread.go), MULTIAPPEND (RFC 3502, conn_multiappend.go: one
// all-or-none log entry, its large messages uploaded in chunks first) and
// COMPRESS=DEFLATE (RFC 4978, compress.go; inflate.go is an inflater that
// hands out its output at every block end and never reads ahead, so
// clients that end a command with Z_PARTIAL_FLUSH, like mbsync, are
// answered).
//
// Syntax errors are answered BAD at once, never by reading past the end
// of the bad line (wire's doc). A client that writes a literal and its
// CRLF separately with Nagle on is not stalled by a delayed ACK: the
// connection sends the ACK it owes before each blocking read (cork.go).
//
// Reads. Each command reads the local replica through one mail.View (a
// consistent view of one point of the log), closed before the reply is
// written; imapd imports node/mail and nothing below it (node/layering_test.go).
// SELECT, EXAMINE, STATUS and NOOP first wait until this node has applied
// what the leader had committed (mail.Sync, read-index), so a client that
// reconnects to another site never sees time go backwards. When no leader
// can be reached the node serves its local replica read-only: EXAMINE says
// [READ-ONLY], and so does SELECT there (with empty PERMANENTFLAGS); every
// write is refused with NO [UNAVAILABLE] (docs/ARCHITECTURE.md §1).
//
// FETCH never re-parses: ENVELOPE and BODYSTRUCTURE come from the parsed
// record computed at delivery, BODY[section]<partial> is a slice of the
// stored bytes at its recorded offsets (node/mail/mimeparse.Section).
//
// Writes (APPEND, STORE, COPY, MOVE, EXPUNGE, CREATE, RENAME, DELETE,
// SUBSCRIBE, and the \Seen of a non-PEEK FETCH) go through node/mail,
// which returns after the command is committed and applied here, so the
// tagged OK comes after the session can read its own write.
//
// Sequence numbers. Each session keeps its view of the selected mailbox:
// the sorted UIDs the client has been told about. Changes are read from
// the mailbox's modseq index above the last MODSEQ seen; the node's change
// feed (mail.Feed, fed by this node's apply of every log entry) only says
// when to look, which is what makes IDLE work on every node without a
// broker and makes a feed overflow harmless. EXPUNGE is sent only where
// RFC 9051 §7.4.1 allows (not during FETCH, STORE or SEARCH); until then
// the message keeps its number and FETCH skips it.
//
// Errors are translated in one table (errors.go, replyTable). Names
// resolve only inside the session user's namespace; a name that is not
// valid is reported as NO [NONEXISTENT], like a missing one, so no
// spelling reveals or reaches another user's mailbox. The state machine
// checks that every write's mailbox belongs to its user.
//
// Limits (Server.ownLimits): a line between literals is bounded to 64 KiB,
// nesting to 32, a literal outside APPEND to 64 KiB and a command to
// 1 MiB; APPEND's literal is streamed (to memory up to 1 MiB, else to a
// spool file, held until the command ends in case MULTIAPPEND follows;
// one MULTIAPPEND holds at most 1000 messages and 8 MiB, else NO [TOOBIG]),
// and one over APPENDLIMIT (the node's MaxMessageBytes) is refused with
// NO [TOOBIG] before the continuation is sent. Ten invalid commands in a row, or an HTTP request
// as the first line, end the connection with BYE. IDLE longer
// than Options.IdleTimeout (30 minutes) ends with BYE. Failed logins are
// delayed per client address, doubling up to a cap, and refused outright
// after too many; this state is per node (sharing it is a later change).
//
// Goroutines: Server.Serve runs the accept loop; each connection has one
// goroutine (Server.serveOwn) and one more during IDLE, which reads DONE.
// Close closes every connection and waits for them.
package imapd
