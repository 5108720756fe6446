package smtpd

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"
)

// trace returns the message as stored: Return-Path and Received (RFC 5321
// §4.4) in front of body. The Received line names the client by its HELO
// and address only (no reverse DNS lookup is made) and is folded so no line
// passes 998 octets.
func (s *session) trace(body []byte) []byte {
	prefix := s.tracePrefix()
	out := make([]byte, 0, len(prefix)+len(body))
	out = append(out, prefix...)
	return append(out, body...)
}

// tracePrefix returns the Return-Path and Received fields for this
// transaction.
func (s *session) tracePrefix() []byte {
	c := s.conn
	with := "ESMTP"
	if s.srv.cfg.LMTP {
		with = "LMTP"
	}
	if s.utf8 {
		with = "UTF8" + strings.TrimPrefix(with, "E") // RFC 6531 §3.7.3: UTF8SMTP, UTF8LMTP
	}
	if _, isTLS := c.TLSConnectionState(); isTLS {
		with += "S"
	}
	var id [10]byte
	rand.Read(id[:])

	var b strings.Builder
	b.WriteString("Return-Path: <")
	b.WriteString(headerSafe(s.from, 512))
	b.WriteString(">\r\nReceived: from ")
	b.WriteString(headerSafe(c.Hostname(), 255))
	b.WriteString(" ([")
	b.WriteString(remoteIP(c.Conn()))
	b.WriteString("])\r\n\tby ")
	b.WriteString(s.srv.cfg.Hostname)
	b.WriteString(" (Continuum) with ")
	b.WriteString(with)
	b.WriteString(" id ")
	b.WriteString(strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(id[:])))
	if len(s.rcpts) == 1 {
		b.WriteString("\r\n\tfor <")
		b.WriteString(headerSafe(s.rcpts[0].addr, 512))
		b.WriteString(">")
	}
	b.WriteString(";\r\n\t")
	b.WriteString(time.Now().Format(time.RFC1123Z))
	b.WriteString("\r\n")
	return []byte(b.String())
}

// headerSafe keeps a client-supplied token from breaking the header: no
// controls, no spaces or angle brackets, bounded length. UTF-8 (SMTPUTF8)
// passes.
func headerSafe(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r == 0x7f || r == '<' || r == '>' || r == 0xfffd {
			return '?'
		}
		return r
	}, s)
}
