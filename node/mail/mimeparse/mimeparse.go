package mimeparse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // RFC 2047 words in any charset, not only utf-8 and iso-8859-1
	"github.com/emersion/go-message/textproto"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// ErrTooComplex reports a header block over Limits.MaxHeaderBytes or
// Limits.MaxHeaderLines. SMTP answers it with 554 5.6.0.
var ErrTooComplex = errors.New("mimeparse: message too complex")

// Limits bound the work Parse does on one message. A zero or negative field
// takes its DefaultLimits value.
type Limits struct {
	// MaxDepth is the deepest nesting parsed; the root part is at depth 1.
	MaxDepth int
	// MaxParts is the most parts, the root included, a message yields.
	MaxParts int
	// MaxHeaderBytes bounds each header block, blank line included.
	MaxHeaderBytes int
	// MaxHeaderLines bounds the lines of each header block.
	MaxHeaderLines int
}

// DefaultLimits returns the limits used on delivery.
func DefaultLimits() Limits {
	return Limits{
		MaxDepth:       32,
		MaxParts:       1000,
		MaxHeaderBytes: 1 << 20,
		MaxHeaderLines: 10000,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxHeaderLines <= 0 {
		l.MaxHeaderLines = d.MaxHeaderLines
	}
	return l
}

// Parse computes the envelope and the part tree of the message data. The
// only error is one wrapping ErrTooComplex; any other input, however
// malformed, yields a record whose offsets are valid for data.
func Parse(data []byte, lim Limits) (*storagepb.ParsedMessage, error) {
	p := &parser{data: data, lim: lim.withDefaults()}
	root, env, err := p.entity(0, len(data), 1, false, true)
	if err != nil {
		return nil, err
	}
	return &storagepb.ParsedMessage{Envelope: env, Root: root}, nil
}

type parser struct {
	data  []byte
	lim   Limits
	parts int // parts created so far
}

// entity parses the header and body in data[start:end] as one part at the
// given depth. digest selects the multipart/digest default Content-Type; env
// asks for the envelope of the header (a message, not a body part).
func (p *parser) entity(start, end, depth int, digest, env bool) (*storagepb.Part, *storagepb.Envelope, error) {
	p.parts++
	h, bodyStart, err := p.header(start, end)
	if err != nil {
		return nil, nil, err
	}
	part := &storagepb.Part{
		HeaderStart: uint64(start),
		HeaderEnd:   uint64(bodyStart),
		BodyStart:   uint64(bodyStart),
		BodyEnd:     uint64(end),
		Size:        uint64(end - bodyStart),
	}
	describe(part, h, digest)
	var envelope *storagepb.Envelope
	if env {
		envelope = newEnvelope(h)
	}
	body := p.data[bodyStart:end]
	switch {
	case part.Type == "multipart":
		if err := p.multipart(part, depth); err != nil {
			return nil, nil, err
		}
	case isMessage(part):
		part.Lines = countLines(body)
		if depth >= p.lim.MaxDepth || p.parts >= p.lim.MaxParts {
			part.Truncated = true
			break
		}
		child, childEnv, err := p.entity(bodyStart, end, depth+1, false, true)
		if err != nil {
			return nil, nil, err
		}
		part.Children = []*storagepb.Part{child}
		part.Envelope = childEnv
	case part.Type == "text":
		part.Lines = countLines(body)
	}
	return part, envelope, nil
}

// isMessage reports whether the body of part is itself a message with an
// envelope and a body structure (RFC 9051 §7.5.2, body-type-msg).
func isMessage(part *storagepb.Part) bool {
	return part.Type == "message" && (part.Subtype == "rfc822" || part.Subtype == "global")
}

// countLines counts the lines of body as BODYSTRUCTURE reports them: a last
// line without a line break still counts.
func countLines(body []byte) uint64 {
	n := bytes.Count(body, []byte{'\n'})
	if len(body) > 0 && body[len(body)-1] != '\n' {
		n++
	}
	return uint64(n)
}

// header finds the header block starting at data[start] and returns the
// fields Continuum uses and the offset of the body. The header ends after
// the first empty line, or at end if there is none (RFC 5322 §2.1).
func (p *parser) header(start, end int) (*textproto.Header, int, error) {
	h := new(textproto.Header)
	data := p.data
	window := end // no line may reach past the header byte limit
	if start+p.lim.MaxHeaderBytes < window {
		window = start + p.lim.MaxHeaderBytes
	}
	var seen uint32 // bit per wanted field: only the first occurrence counts
	field := -1     // start of the field being unfolded
	lines := 0
	pos := start
	for pos < end {
		next := end
		lineEnd := end
		if i := bytes.IndexByte(data[pos:window], '\n'); i >= 0 {
			lineEnd = pos + i
			next = lineEnd + 1
		} else if window < end {
			return nil, 0, fmt.Errorf("%w: header block at offset %d exceeds %d bytes", ErrTooComplex, start, p.lim.MaxHeaderBytes)
		}
		line := data[pos:lineEnd]
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) == 0 {
			seen = addField(h, data[max(field, 0):pos], field >= 0, seen)
			return h, next, nil
		}
		lines++
		if lines > p.lim.MaxHeaderLines {
			return nil, 0, fmt.Errorf("%w: header block at offset %d exceeds %d lines", ErrTooComplex, start, p.lim.MaxHeaderLines)
		}
		if line[0] != ' ' && line[0] != '\t' {
			seen = addField(h, data[max(field, 0):pos], field >= 0, seen)
			field = pos
		}
		pos = next
	}
	addField(h, data[max(field, 0):end], field >= 0, seen)
	return h, end, nil
}

// wantedFields are the header fields Parse reads. Keeping only these (and
// only their first occurrence) bounds memory whatever the header holds.
var wantedFields = map[string]uint32{
	"content-type":              1 << 0,
	"content-transfer-encoding": 1 << 1,
	"content-id":                1 << 2,
	"content-description":       1 << 3,
	"content-md5":               1 << 4,
	"content-disposition":       1 << 5,
	"content-language":          1 << 6,
	"content-location":          1 << 7,
	"date":                      1 << 8,
	"subject":                   1 << 9,
	"from":                      1 << 10,
	"sender":                    1 << 11,
	"reply-to":                  1 << 12,
	"to":                        1 << 13,
	"cc":                        1 << 14,
	"bcc":                       1 << 15,
	"in-reply-to":               1 << 16,
	"message-id":                1 << 17,
}

// addField adds the raw field kv (folded lines and line break included) to
// h if it is a well-formed field Parse wants and the first of its name.
func addField(h *textproto.Header, kv []byte, ok bool, seen uint32) uint32 {
	if !ok {
		return seen
	}
	colon := bytes.IndexByte(kv, ':')
	if colon < 0 {
		return seen
	}
	name := bytes.TrimRight(kv[:colon], " \t")
	var buf [32]byte
	if len(name) == 0 || len(name) > len(buf) {
		return seen
	}
	for i, c := range name {
		if c < 33 || c > 126 { // RFC 5322 §3.6.8 ftext
			return seen
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	bit, want := wantedFields[string(buf[:len(name)])]
	if !want || seen&bit != 0 {
		return seen
	}
	h.AddRaw(kv)
	return seen | bit
}

// describe fills the BODYSTRUCTURE fields of part from its header h.
func describe(part *storagepb.Part, th *textproto.Header, digest bool) {
	h := &message.Header{Header: *th}

	part.Type, part.Subtype, part.Params = "text", "plain", map[string]string{"charset": "us-ascii"}
	if digest {
		part.Type, part.Subtype, part.Params = "message", "rfc822", nil
	}
	if h.Get("Content-Type") != "" {
		if mt, params, ok := mediaType(h, "Content-Type"); ok {
			if typ, sub, ok := strings.Cut(mt, "/"); ok && typ != "" && sub != "" {
				part.Type, part.Subtype, part.Params = typ, sub, params
			}
		}
	}

	// RFC 2046 §4.1.2: "The default character set, which must be assumed in
	// the absence of a charset parameter, is US-ASCII."
	if part.Type == "text" && part.Params["charset"] == "" {
		if part.Params == nil {
			part.Params = map[string]string{}
		}
		part.Params["charset"] = "us-ascii"
	}

	part.Encoding = "7bit"
	if enc := strings.ToLower(h.Get("Content-Transfer-Encoding")); enc != "" {
		part.Encoding = validUTF8(enc)
	}
	part.Id = validUTF8(h.Get("Content-Id"))
	part.Description = text(h, "Content-Description")
	part.Md5 = validUTF8(h.Get("Content-Md5"))
	part.Location = validUTF8(h.Get("Content-Location"))
	if h.Get("Content-Disposition") != "" {
		if disp, params, ok := mediaType(h, "Content-Disposition"); ok {
			part.Disposition, part.DispositionParams = disp, params
		}
	}
	for _, tag := range strings.Split(h.Get("Content-Language"), ",") {
		if tag = strings.TrimSpace(tag); tag != "" {
			part.Language = append(part.Language, validUTF8(tag))
		}
	}
}

// text returns the named field with RFC 2047 words decoded; a word in an
// unknown charset stays as written.
func text(h *message.Header, key string) string {
	s, _ := h.Text(key)
	return validUTF8(s)
}

// mediaType parses a Content-Type or Content-Disposition value: the
// lower-case value and its parameters, lower-case names and decoded values
// (RFC 2045 §5.1, RFC 2231, RFC 2047 words inside quoted values). Where the
// strict parser gives up on the parameters, as it does on unquoted
// tspecials in boundaries and on repeated names, the value is kept and the
// parameters are split leniently instead.
func mediaType(h *message.Header, key string) (string, map[string]string, bool) {
	var (
		value  string
		params map[string]string
		err    error
	)
	if key == "Content-Type" {
		value, params, err = h.ContentType()
	} else {
		value, params, err = h.ContentDisposition()
	}
	if err != nil {
		raw := h.Get(key)
		base, _, _ := strings.Cut(raw, ";")
		value, _, err = mime.ParseMediaType(base)
		if err != nil {
			return "", nil, false
		}
		params = lenientParams(raw)
	}
	params = extendedParams(h.Get(key), params)
	if len(params) == 0 {
		return value, nil, true
	}
	clean := make(map[string]string, len(params))
	for k, v := range params {
		clean[validUTF8(k)] = validUTF8(v)
	}
	return value, clean, true
}

// lenientParams splits the parameters of a header value that
// mime.ParseMediaType rejected: "; name=value" pairs, quoted or not, the
// first of a name winning.
func lenientParams(v string) map[string]string {
	params := map[string]string{}
	_, rest, _ := strings.Cut(v, ";")
	for _, pair := range splitOutsideQuotes(rest, ';') {
		name, value, ok := strings.Cut(pair, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" || strings.Contains(name, "*") { // RFC 2231: see extendedParams
			continue
		}
		if _, dup := params[name]; dup {
			continue
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' {
			value = unquote(value)
		}
		params[name] = decodeWords(value)
	}
	return params
}

// extendedParams decodes the RFC 2231 parameters that mime.ParseMediaType
// drops or truncates, those in a charset other than us-ascii and utf-8 (an
// ISO-8859-1 file name, say), with go-message's charset table, and those
// lenientParams skipped.
func extendedParams(raw string, params map[string]string) map[string]string {
	if !strings.Contains(raw, "*") {
		return params
	}
	type segment struct {
		n       int
		value   string
		encoded bool
	}
	segments := map[string][]segment{}
	_, rest, _ := strings.Cut(raw, ";")
	for _, pair := range splitOutsideQuotes(rest, ';') {
		name, value, ok := strings.Cut(pair, "=")
		name = strings.ToLower(strings.TrimSpace(name))
		encoded := strings.HasSuffix(name, "*")
		base, index, indexed := strings.Cut(strings.TrimSuffix(name, "*"), "*")
		if !ok || base == "" || !(encoded || indexed) {
			continue
		}
		n := 0
		if indexed {
			var err error
			if n, err = strconv.Atoi(index); err != nil || n < 0 || n > 999 {
				continue
			}
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && value[0] == '"' {
			value = unquote(value)
		}
		segments[base] = append(segments[base], segment{n, value, encoded})
	}
	for base, segs := range segments {
		sort.SliceStable(segs, func(i, j int) bool { return segs[i].n < segs[j].n })
		if !segs[0].encoded || segs[0].n != 0 {
			continue
		}
		charset, rest, ok := strings.Cut(segs[0].value, "'")
		_, first, ok2 := strings.Cut(rest, "'")
		if !ok || !ok2 {
			continue
		}
		if _, done := params[base]; done && (strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "us-ascii")) {
			continue // decoded by mime.ParseMediaType
		}
		var b []byte
		for i, s := range segs {
			v := s.value
			if i == 0 {
				v = first
			}
			if s.encoded {
				u, err := url.PathUnescape(v)
				if err != nil {
					b = nil
					break
				}
				v = u
			}
			b = append(b, v...)
		}
		if b == nil || message.CharsetReader == nil {
			continue
		}
		r, err := message.CharsetReader(strings.ToLower(charset), bytes.NewReader(b))
		if err != nil {
			continue
		}
		decoded, err := io.ReadAll(r)
		if err != nil {
			continue
		}
		if params == nil {
			params = map[string]string{}
		}
		params[base] = string(decoded)
	}
	return params
}

// splitOutsideQuotes splits s at sep where sep is not inside a quoted
// string.
func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, escaped, from := false, false, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			out = append(out, s[from:i])
			from = i + 1
		}
	}
	return append(out, s[from:])
}

// unquote removes the quotes and backslash escapes of a quoted string,
// tolerating a missing closing quote.
func unquote(s string) string {
	var b strings.Builder
	escaped := false
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			b.WriteByte(c)
			escaped = false
		case c == '\\':
			escaped = true
		case c == '"':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// multipart parses the body of a multipart part into its children
// (RFC 2046 §5.1.1). A missing close delimiter ends the last child at the
// end of the body.
func (p *parser) multipart(part *storagepb.Part, depth int) error {
	boundary := part.Params["boundary"]
	if boundary == "" {
		return nil
	}
	if depth >= p.lim.MaxDepth {
		part.Truncated = true
		return nil
	}
	data := p.data
	digest := part.Subtype == "digest"
	dash := []byte("--" + boundary)
	bodyStart, bodyEnd := int(part.BodyStart), int(part.BodyEnd)
	child := -1 // start of the current child, if any
	pos := bodyStart
	for pos < bodyEnd {
		i := bytes.Index(data[pos:bodyEnd], dash)
		if i < 0 {
			break
		}
		i += pos
		if i > bodyStart && data[i-1] != '\n' {
			pos = i + 1
			continue
		}
		lineEnd, next := bodyEnd, bodyEnd
		if j := bytes.IndexByte(data[i:bodyEnd], '\n'); j >= 0 {
			lineEnd, next = i+j, i+j+1
		}
		rest := data[i+len(dash) : lineEnd]
		closing := bytes.HasPrefix(rest, []byte("--"))
		if !closing && len(bytes.TrimRight(rest, " \t\r")) != 0 {
			pos = next // "--boundaryX": a longer boundary or text, not ours
			continue
		}
		if child >= 0 {
			end := i
			// The line break before a delimiter belongs to the delimiter.
			if end > child && data[end-1] == '\n' {
				end--
				if end > child && data[end-1] == '\r' {
					end--
				}
			}
			if more, err := p.child(part, child, end, depth, digest); err != nil || !more {
				return err
			}
		}
		if closing {
			return nil
		}
		child = next
		pos = next
	}
	if child >= 0 {
		_, err := p.child(part, child, bodyEnd, depth, digest)
		return err
	}
	return nil
}

// child parses data[start:end] as the next child of the multipart part. It
// reports false once the part count limit has truncated part.
func (p *parser) child(part *storagepb.Part, start, end, depth int, digest bool) (bool, error) {
	if p.parts >= p.lim.MaxParts {
		part.Truncated = true
		return false, nil
	}
	c, _, err := p.entity(start, end, depth+1, digest, false)
	if err != nil {
		return false, err
	}
	part.Children = append(part.Children, c)
	return true, nil
}
