package smtpd

import "io"

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
