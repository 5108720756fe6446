// Package wire is Continuum's IMAP syntax layer: a streaming command parser
// (Reader) and a response encoder (Writer) for IMAP4rev1 (RFC 3501) and
// IMAP4rev2 (RFC 9051), plus modified UTF-7 mailbox names (RFC 3501
// §5.1.3) and UTF-8 names (RFC 6855 UTF8=ACCEPT). It knows the grammar of
// tokens, not the meaning of commands: the session state machine in
// node/imapd turns a parsed Command into actions.
//
// Parsing. Reader.ReadCommand reads one command: tag, name and arguments
// as a small tree (atoms, strings, parenthesised lists, and the bracketed
// section of a FETCH attribute such as BODY[HEADER.FIELDS (From)]<0.100>).
// Literals of every kind are read: synchronizing {n} (the Reader asks its
// Continue hook to send "+" first), non-synchronizing {n+} (LITERAL+ and
// LITERAL-, RFC 7888) and literal8 ~{n} (BINARY, RFC 3516). Bounds hold for
// every input: the bytes of one line between literals (Limits.MaxLine),
// the nesting of lists and sections (MaxDepth), the bytes of a literal kept
// in memory (MaxLiteral) and of the whole command (MaxCommand).
//
// Syntax errors are answered at once. A Reader never reads past the end of
// the line on which an error is found: an unterminated quoted string ends
// at CRLF, and the rest of a bad line is discarded up to its CRLF. If the
// discarded line ends with a non-synchronizing literal, the client sends
// those bytes without waiting, so they are skipped too (up to
// Limits.MaxDiscard) rather than read as commands; a synchronizing literal
// is never answered with "+", so the client sends nothing more. The error
// (*SyntaxError) carries the tag when one was read, so the session answers
// "tag BAD text" (or "* BAD text"); Fatal errors mean the stream cannot be
// resynchronised and the session must say BYE and close.
//
// Streaming. A literal larger than Limits.StreamOver in a command that
// Limits.Stream allows (APPEND) is not read into memory: ReadCommand
// returns with Command.Pending set to a reader of the literal's bytes, and
// after consuming it the session calls Reader.More for the rest of the
// command (MULTIAPPEND sends several). The session can thus write a
// message to the store as it arrives.
//
// Delayed ACKs. A client that writes a literal and its closing CRLF in two
// writes with Nagle's algorithm on (Python imaplib) cannot send the CRLF
// until the literal is ACKed, and the server's kernel delays that ACK up
// to 40 ms because the server has nothing to say yet. The Reader reads
// only what the grammar needs and never waits for bytes the client has not
// sent; the connection under it sends the pending ACK before each blocking
// read (node/imapd corkConn, TCP_QUICKACK), which removes the stall.
//
// Encoding. Writer writes responses with the right string form for each
// value (atom, quoted, literal, literal8, NIL), never lets CR or LF into a
// text, and buffers until Flush; the session flushes before it waits for
// the client.
//
// No goroutines: a Reader and a Writer belong to one session goroutine.
package wire
