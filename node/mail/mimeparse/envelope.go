package mimeparse

import (
	"io"
	"mime"
	netmail "net/mail"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// newEnvelope builds the IMAP ENVELOPE of a message header
// (RFC 9051 §7.5.2).
func newEnvelope(th *textproto.Header) *storagepb.Envelope {
	h := &mail.Header{Header: message.Header{Header: *th}}
	date := h.Get("Date")
	env := &storagepb.Envelope{
		Date:      validUTF8(date),
		Subject:   text(&h.Header, "Subject"),
		From:      addressList(h, "From"),
		Sender:    addressList(h, "Sender"),
		ReplyTo:   addressList(h, "Reply-To"),
		To:        addressList(h, "To"),
		Cc:        addressList(h, "Cc"),
		Bcc:       addressList(h, "Bcc"),
		InReplyTo: validUTF8(h.Get("In-Reply-To")),
		MessageId: validUTF8(h.Get("Message-Id")),
		DateUnix:  dateUnix(date),
	}
	// "If the Sender or Reply-To lines are absent in the [RFC-5322] header,
	// or are present but empty, the server sets the corresponding member of
	// the envelope to be the same value as the from member."
	if len(env.Sender) == 0 {
		env.Sender = cloneAddresses(env.From)
	}
	if len(env.ReplyTo) == 0 {
		env.ReplyTo = cloneAddresses(env.From)
	}
	return env
}

// addressList parses an address list field with go-message, whose parser
// decodes RFC 2047 display names. Real mail holds lists it rejects (bare
// local parts, unbalanced quotes, stray commas); those are split leniently,
// address by address, so an envelope is never lost to one bad entry.
func addressList(h *mail.Header, key string) []*storagepb.Address {
	raw := h.Get(key)
	if strings.TrimSpace(raw) == "" {
		return nil
	}
	if list, err := h.AddressList(key); err == nil {
		out := make([]*storagepb.Address, 0, len(list))
		for _, a := range list {
			out = append(out, newAddress(a.Name, a.Address))
		}
		return out
	}
	var out []*storagepb.Address
	for _, item := range splitAddresses(raw) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if a, err := mail.ParseAddress(item); err == nil {
			out = append(out, newAddress(a.Name, a.Address))
			continue
		}
		name, addr := item, item
		if lt := strings.LastIndexByte(item, '<'); lt >= 0 {
			name, addr = strings.TrimSpace(item[:lt]), item[lt+1:]
			addr, _, _ = strings.Cut(addr, ">")
			if len(name) >= 2 && name[0] == '"' {
				name = unquote(name)
			}
		} else {
			name = ""
		}
		out = append(out, newAddress(decodeWords(name), strings.TrimSpace(addr)))
	}
	return out
}

// splitAddresses splits an address list at commas outside quoted strings,
// comments and angle brackets.
func splitAddresses(s string) []string {
	var out []string
	quoted, escaped, comment, angle, from := false, false, 0, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && (quoted || comment > 0):
			escaped = true
		case quoted:
			quoted = c != '"'
		case c == '"':
			quoted = true
		case c == '(':
			comment++
		case c == ')' && comment > 0:
			comment--
		case comment > 0:
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case c == ',' && !angle:
			out = append(out, s[from:i])
			from = i + 1
		}
	}
	return append(out, s[from:])
}

// newAddress splits addr-spec at its last "@" into the ENVELOPE mailbox and
// host.
func newAddress(name, addr string) *storagepb.Address {
	mailbox, host := addr, ""
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		mailbox, host = addr[:at], addr[at+1:]
	}
	return &storagepb.Address{Name: validUTF8(name), Mailbox: validUTF8(mailbox), Host: validUTF8(host)}
}

func cloneAddresses(list []*storagepb.Address) []*storagepb.Address {
	if list == nil {
		return nil
	}
	out := make([]*storagepb.Address, len(list))
	for i, a := range list {
		out[i] = &storagepb.Address{Name: a.Name, Mailbox: a.Mailbox, Host: a.Host}
	}
	return out
}

// wordDecoder decodes RFC 2047 words with go-message's charset table.
var wordDecoder = &mime.WordDecoder{
	CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
		return message.CharsetReader(charset, r)
	},
}

// decodeWords decodes RFC 2047 words in s, keeping s as written if it
// cannot.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// obsZones are the RFC 5322 §4.3 obsolete zone names. Any other alphabetic
// zone "SHOULD all be considered equivalent to -0000".
var obsZones = map[string]int{
	"UT": 0, "GMT": 0, "Z": 0,
	"EST": -5 * 3600, "EDT": -4 * 3600,
	"CST": -6 * 3600, "CDT": -5 * 3600,
	"MST": -7 * 3600, "MDT": -6 * 3600,
	"PST": -8 * 3600, "PDT": -7 * 3600,
}

// dateUnix parses a Date field value (RFC 5322 §3.3) to Unix seconds, 0 if
// it cannot. time.Parse resolves a zone name through time.Local, which
// differs between nodes, so a named zone is resolved here instead.
func dateUnix(v string) int64 {
	if v == "" {
		return 0
	}
	t, err := netmail.ParseDate(v)
	if err != nil || t.IsZero() {
		return 0
	}
	if !hasNumericZone(v) {
		name, _ := t.Zone()
		y, mo, d := t.Date()
		hh, mm, ss := t.Clock()
		t = time.Date(y, mo, d, hh, mm, ss, 0, time.FixedZone("", obsZones[strings.ToUpper(name)]))
	}
	return t.Unix()
}

// hasNumericZone reports whether v holds a "+hhmm" or "-hhmm" zone.
func hasNumericZone(v string) bool {
	for i := 0; i+5 <= len(v); i++ {
		if v[i] != '+' && v[i] != '-' {
			continue
		}
		digits := true
		for _, c := range []byte(v[i+1 : i+5]) {
			if c < '0' || c > '9' {
				digits = false
				break
			}
		}
		if digits {
			return true
		}
	}
	return false
}

// validUTF8 makes s storable in a proto3 string field: 8-bit header bytes
// that are not UTF-8 (RFC 6532 allows only UTF-8) become U+FFFD.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
