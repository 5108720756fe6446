package search

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/quotedprintable"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // every charset go-message knows, for bodies and RFC 2047 words
	"golang.org/x/net/html"
	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// MaxBodyText bounds the text extracted from one message body (bytes of
// decoded text before folding). Text beyond it is neither indexed nor
// matched by either search path, so both agree.
const MaxBodyText = 2 << 20

// MaxRawText bounds the encoded bytes of one text part that are decoded
// (from the part's start): enough for MaxBodyText of text in any transfer
// encoding, and what lets ExtractReader keep a few MB of a large message,
// not all of it.
const MaxRawText = 4 * MaxBodyText

// Field is one header field as search sees it: the name lower-case ASCII,
// the value unfolded, RFC 2047 words decoded, then Folded.
type Field struct {
	Name  string
	Value string
}

// Doc is the searchable text of one message, already Folded: the top-level
// header fields in order, and the body text (decoded text parts, HTML
// stripped, attachment file names, the header fields of attached messages).
type Doc struct {
	Fields []Field
	Body   string
	text   *string // Text, computed once
}

// Text is what SEARCH TEXT matches: every field as "name: value\n", then
// the body. BODY and HEADER targets are substrings of it, so its trigrams
// cover every criterion.
func (d *Doc) Text() string {
	if d.text != nil {
		return *d.text
	}
	var sb strings.Builder
	for _, f := range d.Fields {
		sb.WriteString(f.Name)
		sb.WriteString(": ")
		sb.WriteString(f.Value)
		sb.WriteByte('\n')
	}
	sb.WriteString(d.Body)
	t := sb.String()
	d.text = &t
	return t
}

// MatchText reports whether q (Folded) occurs in the header or body.
func (d *Doc) MatchText(q string) bool {
	if strings.Contains(d.Body, q) {
		return true
	}
	return strings.Contains(d.Text(), q)
}

// MatchBody reports whether q (Folded) occurs in the body text.
func (d *Doc) MatchBody(q string) bool { return strings.Contains(d.Body, q) }

// MatchHeader reports whether a field named name (any ASCII case) has q
// (Folded) in its value; an empty q matches any field of that name
// (RFC 9051 §6.4.4 HEADER).
func (d *Doc) MatchHeader(name, q string) bool {
	name = strings.ToLower(strings.TrimSpace(name))
	for _, f := range d.Fields {
		if f.Name == name && strings.Contains(f.Value, q) {
			return true
		}
	}
	return false
}

// Fold normalises s for matching: Unicode compatibility composition
// (NFKC), full case folding, NFKC again (folding can decompose), and every
// run of white space to one space. Queries and documents go through the
// same function, so a substring of the folded document is what matches.
func Fold(s string) string {
	s = norm.NFKC.String(s)
	s = cases.Fold().String(s) // a Caser is not safe for concurrent use: one per call
	s = norm.NFKC.String(s)
	var sb strings.Builder
	sb.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			if !space {
				sb.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		sb.WriteRune(r)
	}
	return sb.String()
}

// Extract computes the Doc of a stored message from its bytes and its
// parsed record (part offsets, types, parameters). parsed may be nil: the
// whole message is then one header block and no body.
func Extract(data []byte, parsed *storagepb.ParsedMessage) *Doc {
	d := &Doc{}
	root := parsed.GetRoot()
	if root == nil || !inside(root, data) {
		d.Fields = headerFields(data)
		return d
	}
	d.Fields = headerFields(data[root.HeaderStart:root.HeaderEnd])
	var body strings.Builder
	bodyText(&body, data, root, 0)
	d.Body = Fold(body.String())
	return d
}

func inside(p *storagepb.Part, data []byte) bool {
	n := uint64(len(data))
	return p.HeaderStart <= p.HeaderEnd && p.HeaderEnd <= n && p.BodyStart <= p.BodyEnd && p.BodyEnd <= n
}

// bodyText appends the searchable text of part p to sb.
func bodyText(sb *strings.Builder, data []byte, p *storagepb.Part, depth int) {
	if depth > 64 || sb.Len() >= MaxBodyText || !inside(p, data) {
		return
	}
	switch {
	case p.Type == "multipart":
		for _, c := range p.Children {
			bodyText(sb, data, c, depth+1)
		}
		return
	case p.Type == "message" && len(p.Children) == 1:
		c := p.Children[0]
		if inside(c, data) {
			for _, f := range headerFields(data[c.HeaderStart:c.HeaderEnd]) {
				sb.WriteString(f.Name + ": " + f.Value + "\n")
			}
		}
		bodyText(sb, data, c, depth+1)
		return
	}
	name := p.DispositionParams["filename"]
	if name == "" {
		name = p.Params["name"]
	}
	if name != "" {
		sb.WriteString(name)
		sb.WriteByte('\n')
	}
	if p.Type != "text" || p.Disposition == "attachment" {
		return
	}
	raw := data[p.BodyStart:min(p.BodyEnd, p.BodyStart+MaxRawText)]
	var r io.Reader = bytes.NewReader(raw)
	switch p.Encoding {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &base64Clean{r: r})
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	if cs := strings.ToLower(p.Params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		if cr, err := message.CharsetReader(cs, r); err == nil {
			r = cr
		}
	}
	text, _ := io.ReadAll(io.LimitReader(r, int64(MaxBodyText-sb.Len())))
	if p.Subtype == "html" {
		text = stripHTML(text)
	}
	sb.WriteString(strings.ToValidUTF8(string(text), "\uFFFD"))
	sb.WriteByte('\n')
}

// base64Clean drops the line breaks and other bytes outside the base64
// alphabet, as RFC 2045 §6.8 says a decoder must ignore them.
type base64Clean struct{ r io.Reader }

func (b *base64Clean) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=' {
			p[j] = c
			j++
		}
	}
	if j == 0 && err == nil && n > 0 {
		return b.Read(p)
	}
	return j, err
}

// stripHTML keeps the text of an HTML document, without script and style,
// with a space for each tag so words do not run together.
func stripHTML(doc []byte) []byte {
	z := html.NewTokenizer(bytes.NewReader(doc))
	var out bytes.Buffer
	skip := 0
	for {
		switch z.Next() {
		case html.ErrorToken:
			return out.Bytes()
		case html.TextToken:
			if skip == 0 {
				out.Write(z.Text())
			}
		case html.StartTagToken:
			name, _ := z.TagName()
			if s := string(name); s == "script" || s == "style" {
				skip++
			}
			out.WriteByte(' ')
		case html.EndTagToken:
			name, _ := z.TagName()
			if s := string(name); (s == "script" || s == "style") && skip > 0 {
				skip--
			}
			out.WriteByte(' ')
		default:
			out.WriteByte(' ')
		}
	}
}

var wordDecoder = &mime.WordDecoder{
	CharsetReader: func(charset string, r io.Reader) (io.Reader, error) {
		return message.CharsetReader(charset, r)
	},
}

// headerFields splits a header block into unfolded fields, decodes RFC
// 2047 words and folds the values. A line that is not a field is skipped.
func headerFields(h []byte) []Field {
	var out []Field
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line = h[:i+1]
		}
		h = h[len(line):]
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(bytes.TrimSpace(name)) == 0 {
			continue
		}
		val := append([]byte(nil), bytes.TrimRight(rest, "\r\n")...)
		for len(h) > 0 && (h[0] == ' ' || h[0] == '\t') {
			next := h
			if i := bytes.IndexByte(h, '\n'); i >= 0 {
				next = h[:i+1]
			}
			h = h[len(next):]
			val = append(val, bytes.TrimRight(next, "\r\n")...)
		}
		v := string(val)
		if strings.Contains(v, "=?") {
			if dv, err := wordDecoder.DecodeHeader(v); err == nil {
				v = dv
			}
		}
		if !utf8.ValidString(v) {
			v = strings.ToValidUTF8(v, "\uFFFD")
		}
		out = append(out, Field{Name: strings.ToLower(string(bytes.TrimSpace(name))), Value: strings.TrimSpace(Fold(v))})
	}
	return out
}
