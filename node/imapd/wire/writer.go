package wire

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Writer encodes responses (RFC 9051 §7). Methods append to a buffered
// writer; the first write error sticks and is returned by Flush and Err.
// Nothing reaches the client until Flush.
type Writer struct {
	bw  *bufio.Writer
	err error
	// UTF8 says the client enabled UTF8=ACCEPT (RFC 6855): quoted strings
	// may carry UTF-8 and mailbox names are sent as UTF-8, not mUTF-7.
	UTF8 bool
	// Sync, when set, runs after each Flush has emptied the buffer: a
	// layer between the buffer and the connection (COMPRESS's DEFLATE
	// stream) sends what it holds.
	Sync func() error
}

// NewWriter returns a Writer onto bw.
func NewWriter(bw *bufio.Writer) *Writer { return &Writer{bw: bw} }

// Err returns the first write error.
func (w *Writer) Err() error { return w.err }

// Flush sends what is buffered.
func (w *Writer) Flush() error {
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	if w.err == nil && w.Sync != nil {
		w.err = w.Sync()
	}
	return w.err
}

// Raw writes s as it is: protocol punctuation the caller knows is valid.
func (w *Writer) Raw(s string) *Writer {
	if w.err == nil {
		_, w.err = w.bw.WriteString(s)
	}
	return w
}

func (w *Writer) byte(b byte) *Writer {
	if w.err == nil {
		w.err = w.bw.WriteByte(b)
	}
	return w
}

// SP writes a space.
func (w *Writer) SP() *Writer { return w.byte(' ') }

// CRLF ends a response line.
func (w *Writer) CRLF() *Writer { return w.Raw("\r\n") }

// Number writes an unsigned number.
func (w *Writer) Number(n uint64) *Writer {
	if w.err == nil {
		var buf [20]byte
		_, w.err = w.bw.Write(strconv.AppendUint(buf[:0], n, 10))
	}
	return w
}

// Atom writes s as an atom; s must be a valid atom (the caller's
// keywords, flags and numbers).
func (w *Writer) Atom(s string) *Writer { return w.Raw(s) }

// NIL writes NIL.
func (w *Writer) NIL() *Writer { return w.Raw("NIL") }

// String writes s as a quoted string when it can be one, else as a
// literal (RFC 9051 §4.3). Data with NUL bytes is written as a literal8,
// which only BINARY responses may carry (RFC 3516 §4.2).
func (w *Writer) String(s string) *Writer {
	if canQuote(s, w.UTF8) {
		return w.quoted(s)
	}
	return w.literal(s)
}

// NString writes s, or NIL when s is nil.
func (w *Writer) NString(s *string) *Writer {
	if s == nil {
		return w.NIL()
	}
	return w.String(*s)
}

// AString writes s as an atom when every byte is an ASTRING-CHAR, else as
// a string.
func (w *Writer) AString(s string) *Writer {
	if isAtom(s) && !strings.EqualFold(s, "NIL") {
		return w.Raw(s)
	}
	return w.String(s)
}

// Mailbox writes a mailbox name as a string: UTF-8 when the client
// enabled UTF8=ACCEPT, else modified UTF-7 (RFC 3501 §5.1.3). Names are
// always quoted (as Dovecot and go-imap write them), so a name like NIL
// cannot be misread; INBOX alone is written as the atom INBOX.
func (w *Writer) Mailbox(name string) *Writer {
	if name == "INBOX" {
		return w.Raw(name)
	}
	if !w.UTF8 {
		name = EncodeMUTF7(name)
	}
	return w.String(name)
}

// Literal writes a literal of n bytes from r: "{n}" CRLF and the bytes, or
// "~{n}" when binary (RFC 3516 §4.2). Exactly n bytes must come from r.
func (w *Writer) Literal(n int64, r io.Reader, binary bool) *Writer {
	if binary {
		w.byte('~')
	}
	w.byte('{').Number(uint64(n)).Raw("}\r\n")
	if w.err == nil {
		var c int64
		c, w.err = io.CopyN(w.bw, r, n)
		if w.err == io.EOF && c < n {
			w.err = io.ErrUnexpectedEOF
		}
	}
	return w
}

// LiteralBytes is Literal of bytes in memory, written with no copy.
func (w *Writer) LiteralBytes(b []byte, binary bool) *Writer {
	if binary {
		w.byte('~')
	}
	w.byte('{').Number(uint64(len(b))).Raw("}\r\n")
	if w.err == nil {
		_, w.err = w.bw.Write(b)
	}
	return w
}

// literal writes a string as a literal. An IMAP string cannot hold NUL
// (RFC 9051 §9: CHAR8 is %x01-ff) and literal8 is only for BINARY
// content, so NUL bytes (a header field may carry them) are dropped.
func (w *Writer) literal(s string) *Writer {
	s = strings.ReplaceAll(s, "\x00", "")
	return w.Literal(int64(len(s)), strings.NewReader(s), false)
}

func (w *Writer) quoted(s string) *Writer {
	w.byte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			w.byte('\\')
		}
		w.byte(s[i])
	}
	return w.byte('"')
}

// canQuote: a quoted string carries no CR, LF or NUL, no 8-bit bytes
// unless UTF-8 is on, and is kept short (long text reads better as a
// literal and costs no escaping).
func canQuote(s string, utf8 bool) bool {
	if len(s) > 1024 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || c == '\r' || c == '\n' || (c >= 0x80 && !utf8) {
			return false
		}
	}
	return true
}

// isAtom says s is non-empty and every byte an ASTRING-CHAR (RFC 9051
// §9).
func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || strings.IndexByte(`(){%*"\`, c) >= 0 {
			return false
		}
	}
	return true
}

// Text writes human-readable text for the end of a status response:
// CR, LF and other controls become spaces, so no text can end the line
// early and inject a response (RFC 9051 §9 text: no CR or LF).
func (w *Writer) Text(s string) *Writer {
	if s == "" {
		s = "Done" // RFC 9051 text = 1*TEXT-CHAR
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		w.byte(c)
	}
	return w
}

// Status writes a complete status response line: tag ("*" for untagged)
// SP status [SP "[" code "]"] SP text CRLF (RFC 9051 §7.1). code is
// written as given (the caller's response code, e.g. "TOOBIG" or
// "APPENDUID 5 7").
func (w *Writer) Status(tag, status, code, text string) *Writer {
	if tag == "" {
		tag = "*"
	}
	w.Raw(tag).SP().Raw(status).SP()
	if code != "" {
		w.byte('[').Text(code).Raw("] ")
	}
	return w.Text(text).CRLF()
}

// Continuation writes a continuation request "+ text" CRLF.
func (w *Writer) Continuation(text string) *Writer {
	return w.Raw("+ ").Text(text).CRLF()
}
