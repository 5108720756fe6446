package smtpd

import (
	"bufio"
	"io"
	"reflect"
	"unsafe"
)

// strictReader passes message data through and stops at the first bare CR
// or bare LF (RFC 5321 §2.3.8: lines end in CRLF, and CR and LF appear
// nowhere else). It reads go-smtp's DATA reader, which has already removed
// dot-stuffing and the terminating CRLF.CRLF, or a BDAT chunk stream, which
// is raw. A message that passes has no line ending other than CRLF, so no
// receiver can find a message boundary in it that this one did not.
//
// NUL bytes are noted, not refused here: the transfer goes on to the end so
// the session stays in step, and the caller answers 554.
type strictReader struct {
	r      io.Reader
	prevCR bool
	nul    bool
	err    error
}

func (s *strictReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	for i, c := range p[:n] {
		if s.prevCR != (c == '\n') {
			s.err = errBareLineEnding
			return i, s.err
		}
		s.prevCR = c == '\r'
		if c == 0 {
			s.nul = true
		}
	}
	if err == io.EOF && s.prevCR {
		// The data ended on a CR that no LF followed.
		s.err = errBareLineEnding
		return n, s.err
	}
	return n, err
}

// rawGuard checks the raw DATA stream (RFC 5321 §4.5.2: CRLF lines,
// dot-stuffed, ended by CRLF.CRLF) before go-smtp's dot reader consumes it,
// and asks that reader only for bytes already buffered, so a bare CR or LF
// is answered the moment it arrives, whatever follows it.
//
// Checking go-smtp's output alone is not enough, for two reasons. Its
// reader returns only once the caller's whole buffer is full or the
// message has ended, so a bare line ending followed by nothing, or by a
// sequence its state machine misreads, waits for more bytes until the
// protocol timeout: after "hi\r.\r" (a CR after a CR drops it out of its
// CR state) it never sees the "\r\n.\r\n" that follows (v0.25.1). And it
// drops a line-start ".\r" that no LF follows, so that bare CR never
// reaches its output.
//
// The raw bytes are read from go-smtp's bufio.Reader with Peek, never
// consumed here: go-smtp stays in charge of the stream, so the connection
// is in step after the message. The reader is found by reflection on
// go-smtp's unexported dataReader (rawBuffer); when that fails (another
// go-smtp version), guardData returns the plain reader and
// TestBareLineEndingAnsweredAtOnce fails.
type rawGuard struct {
	r  io.Reader     // go-smtp's dot reader
	br *bufio.Reader // the connection's buffer under it

	state rawState
	ahead int // raw bytes buffered in br, past its read position, already scanned
	avail int // bytes go-smtp will return from the scanned raw bytes alone
	end   bool
	err   error
}

type rawState int

const (
	rawLineStart rawState = iota
	rawDot                // "." at a line start (dot-stuffing or the end)
	rawDotCR              // ".\r" at a line start: only "\n" may follow
	rawCR                 // "\r" elsewhere: only "\n" may follow
	rawMid                // inside a line
)

// guardData wraps go-smtp's DATA reader in a rawGuard when its buffer can
// be reached, and returns r as it is otherwise (BDAT chunks are raw and
// sized, so strictReader alone answers them at once).
func guardData(r io.Reader) io.Reader {
	if br := rawBuffer(r); br != nil {
		return &rawGuard{r: r, br: br}
	}
	return r
}

// rawBuffer returns the *bufio.Reader inside go-smtp's dataReader, or nil.
func rawBuffer(r io.Reader) *bufio.Reader {
	v := reflect.ValueOf(r)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	e := v.Elem()
	if e.Kind() != reflect.Struct || e.Type().Name() != "dataReader" || e.Type().PkgPath() != "github.com/emersion/go-smtp" {
		return nil
	}
	f := e.FieldByName("r")
	if !f.IsValid() || f.Type() != reflect.TypeFor[*bufio.Reader]() {
		return nil
	}
	return *(**bufio.Reader)(unsafe.Pointer(f.UnsafeAddr()))
}

// scan runs the raw framing over b, counting the bytes go-smtp will
// return for them. It stops at the end of data or at a bare line ending.
func (g *rawGuard) scan(b []byte) error {
	for _, c := range b {
		switch g.state {
		case rawLineStart:
			switch c {
			case '.':
				g.state = rawDot
				continue // removed by go-smtp
			case '\r':
				g.state = rawCR
			case '\n':
				return errBareLineEnding
			default:
				g.state = rawMid
			}
		case rawDot:
			switch c {
			case '\r':
				g.state = rawDotCR
				continue
			case '\n':
				return errBareLineEnding
			}
			g.state = rawMid
		case rawDotCR:
			if c != '\n' {
				return errBareLineEnding
			}
			g.end = true
			return nil
		case rawCR:
			if c != '\n' {
				return errBareLineEnding
			}
			g.state = rawLineStart
		case rawMid:
			switch c {
			case '\r':
				g.state = rawCR
			case '\n':
				return errBareLineEnding
			}
		}
		g.avail++
	}
	return nil
}

func (g *rawGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if g.avail > 0 || g.end {
			k := min(len(p), g.avail)
			if k == 0 {
				k = 1 // only the terminator is left: go-smtp consumes it and says EOF
			}
			before := g.br.Buffered()
			n, err := g.r.Read(p[:k])
			// Everything go-smtp needed was buffered and scanned, so it
			// did not refill: what left the buffer is what it consumed.
			g.ahead -= before - g.br.Buffered()
			g.avail -= n
			return n, err
		}
		buffered := g.br.Buffered()
		if buffered > g.ahead {
			raw, _ := g.br.Peek(buffered)
			if err := g.scan(raw[g.ahead:]); err != nil {
				g.err = err
				return 0, err
			}
			g.ahead = buffered
			continue
		}
		if buffered >= g.br.Size() {
			// Cannot happen for a stream scan accepts; go on safely.
			return g.r.Read(p[:1])
		}
		// Everything buffered is scanned and yields nothing yet (a
		// line-start "." or ".\r"): wait for more bytes.
		if _, err := g.br.Peek(buffered + 1); err != nil && g.br.Buffered() == buffered {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			g.err = err
			return 0, err
		}
	}
}
