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
// local parts, unbalanced quotes, stray commas, comments inside an
// addr-spec); those are split leniently, address by address, so an
// envelope is never lost to one bad entry. A list with group syntax
// ("team: a@b, c@d;", RFC 5322 §3.4) keeps its groups: go-message would
// flatten them, so such a list is split here, and each group becomes a
// start marker, its members and an end marker (RFC 9051 §7.5.2).
func addressList(h *mail.Header, key string) []*storagepb.Address {
	raw := h.Get(key)
	if strings.TrimSpace(raw) == "" {
		return nil
	}
	if !hasGroup(raw) {
		if list, err := h.AddressList(key); err == nil {
			out := make([]*storagepb.Address, 0, len(list))
			for _, a := range list {
				out = append(out, newAddress(a.Name, a.Address))
			}
			return out
		}
		return lenientList(raw)
	}
	var out []*storagepb.Address
	for _, g := range splitGroups(raw) {
		if !g.group {
			out = append(out, lenientList(g.text)...)
			continue
		}
		out = append(out, &storagepb.Address{Mailbox: validUTF8(decodeWords(displayName(g.name))), Group: true})
		out = append(out, lenientList(g.text)...)
		out = append(out, &storagepb.Address{Group: true})
	}
	return out
}

// lenientList parses a comma-separated list of addresses (no groups), one
// address at a time.
func lenientList(raw string) []*storagepb.Address {
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
		} else {
			name = ""
		}
		out = append(out, newAddress(decodeWords(displayName(name)), stripCFWS(addr)))
	}
	return out
}

// displayName unquotes a quoted display name.
func displayName(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' {
		return unquote(s)
	}
	return s
}

// stripCFWS removes comments and white space outside quoted strings from
// an addr-spec: "user (c)@ (c) example.org" is "user@example.org"
// (RFC 5322 §3.4.1 allows CFWS around its parts).
func stripCFWS(s string) string {
	var sb strings.Builder
	quoted, escaped, comment := false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
			if comment == 0 {
				sb.WriteByte(c)
			}
			continue
		case c == '\\' && (quoted || comment > 0):
			escaped = true
			if quoted {
				sb.WriteByte(c)
			}
			continue
		case quoted:
			quoted = c != '"'
		case comment > 0:
			if c == '(' {
				comment++
			} else if c == ')' {
				comment--
			}
			continue
		case c == '(':
			comment++
			continue
		case c == '"':
			quoted = true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// scanTop calls fn for every byte of s outside quoted strings, comments
// and angle brackets; fn returning false stops the scan.
func scanTop(s string, fn func(i int, c byte) bool) {
	quoted, escaped, comment, angle := false, false, 0, false
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
		case angle:
		default:
			if !fn(i, c) {
				return
			}
		}
	}
}

// hasGroup reports whether an address list uses group syntax: a ":"
// outside quotes, comments and angle brackets (a source route's ":" is
// inside "<...>").
func hasGroup(s string) bool {
	found := false
	scanTop(s, func(_ int, c byte) bool {
		found = c == ':'
		return !found
	})
	return found
}

type groupPiece struct {
	group bool
	name  string // the group's display name
	text  string // the members (or, outside a group, plain addresses)
}

// splitGroups cuts an address list into groups and the plain addresses
// between them. A group with no closing ";" runs to the end.
func splitGroups(s string) []groupPiece {
	var out []groupPiece
	from, nameFrom, inGroup := 0, 0, false
	var name string
	scanTop(s, func(i int, c byte) bool {
		switch {
		case !inGroup && c == ',':
			nameFrom = i + 1
		case !inGroup && c == ':':
			if strings.TrimSpace(s[from:nameFrom]) != "" {
				out = append(out, groupPiece{text: s[from:nameFrom]})
			}
			name, inGroup, from = s[nameFrom:i], true, i+1
		case inGroup && c == ';':
			out = append(out, groupPiece{group: true, name: name, text: s[from:i]})
			inGroup, from, nameFrom = false, i+1, i+1
		}
		return true
	})
	if inGroup {
		out = append(out, groupPiece{group: true, name: name, text: s[from:]})
	} else if strings.TrimSpace(strings.Trim(s[from:], ", ")) != "" {
		out = append(out, groupPiece{text: s[from:]})
	}
	return out
}

// splitAddresses splits an address list at commas outside quoted strings,
// comments and angle brackets.
func splitAddresses(s string) []string {
	var out []string
	from := 0
	scanTop(s, func(i int, c byte) bool {
		if c == ',' {
			out = append(out, s[from:i])
			from = i + 1
		}
		return true
	})
	return append(out, s[from:])
}

// newAddress splits addr-spec at its last "@" into the ENVELOPE mailbox and
// host, and an obsolete source route ("@a,@b:user@host", RFC 5322 §4.4)
// off the front into the adl.
func newAddress(name, addr string) *storagepb.Address {
	route := ""
	if strings.HasPrefix(addr, "@") {
		if colon := strings.IndexByte(addr, ':'); colon > 0 {
			route, addr = addr[:colon], addr[colon+1:]
		}
	}
	mailbox, host := addr, ""
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		mailbox, host = addr[:at], addr[at+1:]
	}
	return &storagepb.Address{Name: validUTF8(name), Mailbox: validUTF8(mailbox), Host: validUTF8(host), Route: validUTF8(route)}
}

func cloneAddresses(list []*storagepb.Address) []*storagepb.Address {
	if list == nil {
		return nil
	}
	out := make([]*storagepb.Address, len(list))
	for i, a := range list {
		out[i] = &storagepb.Address{Name: a.Name, Mailbox: a.Mailbox, Host: a.Host, Group: a.Group, Route: a.Route}
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
