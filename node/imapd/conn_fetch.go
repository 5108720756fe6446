package imapd

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/imapd/wire"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// FETCH for the own protocol layer: the item grammar (RFC 9051 §6.4.5,
// RFC 3516 for BINARY) into imap.FetchOptions, and the response encoder
// (fetchResp, a fetchResponseWriter).

// parseFetchItems reads FETCH's data items: a macro, one item, or a list.
func parseFetchItems(v wire.Value) (*imap.FetchOptions, error) {
	o := &imap.FetchOptions{}
	items := []wire.Value{v}
	if v.Kind == wire.List {
		items = v.List
		if len(items) == 0 {
			return nil, errBad("Empty FETCH item list")
		}
	} else if v.Kind == wire.Atom && !v.HasSection {
		switch strings.ToUpper(v.Str) {
		case "ALL":
			o.Flags, o.InternalDate, o.RFC822Size, o.Envelope = true, true, true, true
			return o, nil
		case "FAST":
			o.Flags, o.InternalDate, o.RFC822Size = true, true, true
			return o, nil
		case "FULL":
			o.Flags, o.InternalDate, o.RFC822Size, o.Envelope = true, true, true, true
			o.BodyStructure = &imap.FetchItemBodyStructure{}
			return o, nil
		}
	}
	for _, it := range items {
		if it.Kind != wire.Atom {
			return nil, errBad("Expected a FETCH item")
		}
		name := strings.ToUpper(it.Str)
		if it.HasSection {
			if err := addSection(o, name, it); err != nil {
				return nil, err
			}
			continue
		}
		switch name {
		case "UID":
			o.UID = true
		case "FLAGS":
			o.Flags = true
		case "INTERNALDATE":
			o.InternalDate = true
		case "RFC822.SIZE":
			o.RFC822Size = true
		case "MODSEQ":
			o.ModSeq = true
		case "ENVELOPE":
			o.Envelope = true
		case "BODYSTRUCTURE":
			o.BodyStructure = &imap.FetchItemBodyStructure{Extended: true}
		case "BODY":
			if o.BodyStructure == nil {
				o.BodyStructure = &imap.FetchItemBodyStructure{}
			}
		case "RFC822":
			o.BodySection = append(o.BodySection, &imap.FetchItemBodySection{})
		case "RFC822.HEADER":
			o.BodySection = append(o.BodySection, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true})
		case "RFC822.TEXT":
			o.BodySection = append(o.BodySection, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText})
		default:
			return nil, errBad("Unknown FETCH item " + it.Str)
		}
	}
	return o, nil
}

// addSection parses BODY[...]<p>, BODY.PEEK, BINARY[...]<p>, BINARY.PEEK
// and BINARY.SIZE.
func addSection(o *imap.FetchOptions, name string, it wire.Value) error {
	partial, err := parsePartial(it.Partial)
	if err != nil {
		return err
	}
	switch name {
	case "BINARY", "BINARY.PEEK", "BINARY.SIZE":
		var part []int
		if len(it.Section) > 1 || len(it.Section) == 1 && it.Section[0].Kind != wire.Atom {
			return errBad("BINARY takes a part number")
		}
		if len(it.Section) == 1 {
			if part, err = parsePart(it.Section[0].Str); err != nil {
				return err
			}
		}
		if name == "BINARY.SIZE" {
			if partial != nil {
				return errBad("BINARY.SIZE takes no partial range")
			}
			o.BinarySectionSize = append(o.BinarySectionSize, &imap.FetchItemBinarySectionSize{Part: part})
			return nil
		}
		o.BinarySection = append(o.BinarySection, &imap.FetchItemBinarySection{Part: part, Partial: partial, Peek: name == "BINARY.PEEK"})
		return nil
	}
	sec := &imap.FetchItemBodySection{Peek: name == "BODY.PEEK", Partial: partial}
	s := it.Section
	if len(s) == 0 {
		o.BodySection = append(o.BodySection, sec)
		return nil
	}
	if s[0].Kind != wire.Atom {
		return errBad("Bad section")
	}
	spec := strings.ToUpper(s[0].Str)
	// A part number, then optionally ".HEADER", ".TEXT", ".MIME"...
	i := 0
	for i < len(spec) && (spec[i] >= '0' && spec[i] <= '9' || spec[i] == '.') {
		if spec[i] == '.' && i+1 < len(spec) && (spec[i+1] < '0' || spec[i+1] > '9') {
			break
		}
		i++
	}
	if i > 0 {
		if sec.Part, err = parsePart(spec[:i]); err != nil {
			return err
		}
		spec = strings.TrimPrefix(spec[i:], ".")
	}
	switch spec {
	case "":
	case "HEADER":
		sec.Specifier = imap.PartSpecifierHeader
	case "TEXT":
		sec.Specifier = imap.PartSpecifierText
	case "MIME":
		if len(sec.Part) == 0 {
			return errBad("MIME needs a part number")
		}
		sec.Specifier = imap.PartSpecifierMIME
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		if len(s) != 2 || s[1].Kind != wire.List || len(s[1].List) == 0 {
			return errBad(spec + " needs a list of field names")
		}
		var names []string
		for _, f := range s[1].List {
			n, ok := f.AString()
			if !ok || n == "" {
				return errBad("Bad header field name")
			}
			names = append(names, n)
		}
		sec.Specifier = imap.PartSpecifierHeader
		if spec == "HEADER.FIELDS" {
			sec.HeaderFields = names
		} else {
			sec.HeaderFieldsNot = names
		}
		o.BodySection = append(o.BodySection, sec)
		return nil
	default:
		return errBad("Unknown section " + s[0].Str)
	}
	if len(s) != 1 {
		return errBad("Bad section")
	}
	o.BodySection = append(o.BodySection, sec)
	return nil
}

func parsePart(s string) ([]int, error) {
	var part []int
	for _, p := range strings.Split(s, ".") {
		n, err := strconv.ParseUint(p, 10, 31)
		if err != nil || n == 0 {
			return nil, errBad("Bad part number " + s)
		}
		part = append(part, int(n))
	}
	return part, nil
}

// parsePartial reads "<offset.size>" (RFC 9051 §6.4.5).
func parsePartial(s string) (*imap.SectionPartial, error) {
	if s == "" {
		return nil, nil
	}
	if !strings.HasPrefix(s, "<") || !strings.HasSuffix(s, ">") {
		return nil, errBad("Bad partial range " + s)
	}
	a, b, ok := strings.Cut(s[1:len(s)-1], ".")
	if !ok {
		return nil, errBad("Partial range needs <offset.size>")
	}
	off, err1 := strconv.ParseUint(a, 10, 32)
	size, err2 := strconv.ParseUint(b, 10, 32)
	if err1 != nil || err2 != nil || size == 0 {
		return nil, errBad("Bad partial range " + s)
	}
	return &imap.SectionPartial{Offset: int64(off), Size: int64(size)}, nil
}

// connFetch starts FETCH responses on a conn. One command's responses
// are written one after the other, so a single fetchResp is reused, and
// each section's item name ("BODY[HEADER.FIELDS (…)]") is built once per
// command, not per message.
type connFetch struct {
	c     *conn
	resp  fetchResp
	names map[*imap.FetchItemBodySection]string
}

func newConnFetch(c *conn) *connFetch { return &connFetch{c: c} }

func (f *connFetch) CreateMessage(seq uint32) fetchResponseWriter {
	f.resp = fetchResp{w: f.c.w, seq: seq, utf8: f.c.utf8, f: f}
	return &f.resp
}

// bodyItem is "BODY[section]<origin>" for sec.
func (f *connFetch) bodyItem(sec *imap.FetchItemBodySection) string {
	if n, ok := f.names[sec]; ok {
		return n
	}
	n := "BODY[" + sectionName(sec) + "]" + origin(sec.Partial)
	if f.names == nil {
		f.names = map[*imap.FetchItemBodySection]string{}
	}
	f.names[sec] = n
	return n
}

// fetchResp writes one "* n FETCH (...)" response.
type fetchResp struct {
	w       *wire.Writer
	seq     uint32
	utf8    bool
	started bool
	f       *connFetch
}

func (r *fetchResp) item(name string) *wire.Writer {
	if !r.started {
		r.w.Raw("* ").Number(uint64(r.seq)).Raw(" FETCH (")
		r.started = true
	} else {
		r.w.SP()
	}
	return r.w.Raw(name)
}

func (r *fetchResp) WriteUID(uid imap.UID) { r.item("UID ").Number(uint64(uid)) }

func (r *fetchResp) WriteFlags(flags []imap.Flag) {
	r.item("FLAGS (").Raw(joinFlags(flags)).Raw(")")
}

func (r *fetchResp) WriteInternalDate(t time.Time) {
	r.item("INTERNALDATE ").String(t.Format("02-Jan-2006 15:04:05 -0700"))
}

func (r *fetchResp) WriteRFC822Size(size int64) { r.item("RFC822.SIZE ").Number(uint64(size)) }

func (r *fetchResp) WriteModSeq(modseq uint64) { r.item("MODSEQ (").Number(modseq).Raw(")") }

// WriteEnvelope writes the stored ENVELOPE; unlike imap.Envelope the
// record keeps each address's source route, written as its adl.
func (r *fetchResp) WriteEnvelope(e *storagepb.Envelope) {
	r.item("ENVELOPE ")
	env := envelope(e)
	if e != nil {
		env.From, env.Sender, env.ReplyTo = nil, nil, nil
		env.To, env.Cc, env.Bcc = nil, nil, nil
	}
	writeEnvelopeWith(r.w, env, r.utf8, func(i int) []*storagepb.Address {
		if e == nil {
			return nil
		}
		return [][]*storagepb.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc}[i]
	})
}

func (r *fetchResp) WriteBodyStructure(bs imap.BodyStructure) {
	ext := false
	if sp, ok := bs.(*imap.BodyStructureSinglePart); ok {
		ext = sp.Extended != nil
	} else if mp, ok := bs.(*imap.BodyStructureMultiPart); ok {
		ext = mp.Extended != nil
	}
	if ext {
		r.item("BODYSTRUCTURE ")
	} else {
		r.item("BODY ")
	}
	writeBodyStructure(r.w, bs, ext, r.utf8)
}

// literalOut buffers a section of known size and, at Close, writes it as a
// literal, or as a literal8 when it holds NUL bytes (RFC 3516 §4.2: a
// plain literal cannot carry NUL; issue #21). Sections over the buffer
// bound stream straight out as a plain literal.
type literalOut struct {
	w      *wire.Writer
	prefix string
	size   int64
	buf    bytes.Buffer
	direct bool
	n      int64
}

const literalBufferMax = 1 << 20

func newLiteralOut(w *wire.Writer, prefix string, size int64) *literalOut {
	l := &literalOut{w: w, prefix: prefix, size: size}
	if size > literalBufferMax {
		l.direct = true
		w.Raw(prefix).Raw(" {").Number(uint64(size)).Raw("}\r\n")
	}
	return l
}

func (l *literalOut) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.size {
		return 0, fmt.Errorf("imapd: section larger than announced")
	}
	l.n += int64(len(p))
	if l.direct {
		l.w.Raw(string(p))
		return len(p), l.w.Err()
	}
	return l.buf.Write(p)
}

func (l *literalOut) Close() error {
	if l.n != l.size {
		return fmt.Errorf("imapd: section of %d bytes, %d announced", l.n, l.size)
	}
	if !l.direct {
		b := l.buf.Bytes()
		l.w.Raw(l.prefix).SP().Literal(int64(len(b)), bytes.NewReader(b), bytes.IndexByte(b, 0) >= 0)
	}
	return l.w.Err()
}

func (r *fetchResp) WriteBodySection(sec *imap.FetchItemBodySection, size int64) io.WriteCloser {
	r.item("")
	return newLiteralOut(r.w, r.f.bodyItem(sec), size)
}

// WriteBodySectionBytes writes a section held in memory: as literalOut
// does (a literal8 when b holds NUL), with no copy of b.
func (r *fetchResp) WriteBodySectionBytes(sec *imap.FetchItemBodySection, b []byte) error {
	r.item(r.f.bodyItem(sec)).SP().LiteralBytes(b, bytes.IndexByte(b, 0) >= 0)
	return r.w.Err()
}

func (r *fetchResp) WriteBinarySection(sec *imap.FetchItemBinarySection, size int64) io.WriteCloser {
	r.item("")
	return newLiteralOut(r.w, "BINARY["+partName(sec.Part)+"]"+origin(sec.Partial), size)
}

func (r *fetchResp) WriteBinarySectionSize(sec *imap.FetchItemBinarySectionSize, size uint32) {
	r.item("BINARY.SIZE[" + partName(sec.Part) + "] ").Number(uint64(size))
}

func (r *fetchResp) Close() error {
	if r.started {
		r.w.Raw(")").CRLF()
	}
	return r.w.Err()
}

// origin is the "<offset>" a partial fetch answers with (RFC 9051 §7.5.2;
// issue #21: go-imap left it out for BINARY).
func origin(p *imap.SectionPartial) string {
	if p == nil {
		return ""
	}
	return "<" + strconv.FormatInt(p.Offset, 10) + ">"
}

func partName(part []int) string {
	s := make([]string, len(part))
	for i, p := range part {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ".")
}

func sectionName(sec *imap.FetchItemBodySection) string {
	s := partName(sec.Part)
	spec := string(sec.Specifier)
	switch {
	case len(sec.HeaderFields) > 0:
		spec = "HEADER.FIELDS (" + quoteAll(sec.HeaderFields) + ")"
	case len(sec.HeaderFieldsNot) > 0:
		spec = "HEADER.FIELDS.NOT (" + quoteAll(sec.HeaderFieldsNot) + ")"
	}
	if s != "" && spec != "" {
		return s + "." + spec
	}
	return s + spec
}

// quoteAll writes header field names as quoted strings, as sent (field
// names are printable ASCII without ":" or space, RFC 5322 §2.2).
func quoteAll(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = strconv.Quote(n)
	}
	return strings.Join(out, " ")
}

// encodeText is a header text for ENVELOPE: UTF-8 as is when the client
// enabled UTF8=ACCEPT, else RFC 2047 words.
func encodeText(s string, utf8 bool) string {
	if utf8 {
		return s
	}
	return mime.QEncoding.Encode("utf-8", s)
}

func nstring(w *wire.Writer, s string) {
	if s == "" {
		w.NIL()
	} else {
		w.String(s)
	}
}

// writeEnvelope encodes ENVELOPE (RFC 9051 §7.5.2). Address lists have no
// space between addresses ("(" 1*address ")").
func writeEnvelope(w *wire.Writer, e *imap.Envelope, utf8 bool) {
	writeEnvelopeWith(w, e, utf8, nil)
}

// writeEnvelopeWith writes e, taking the address lists from stored (by
// position: from, sender, reply-to, to, cc, bcc) when it is set.
func writeEnvelopeWith(w *wire.Writer, e *imap.Envelope, utf8 bool, stored func(i int) []*storagepb.Address) {
	if e == nil {
		e = &imap.Envelope{}
	}
	w.Raw("(")
	if e.Date.IsZero() {
		w.NIL()
	} else {
		w.String(e.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	}
	w.SP()
	nstring(w, encodeText(e.Subject, utf8))
	sender, replyTo := e.Sender, e.ReplyTo
	if sender == nil {
		sender = e.From
	}
	if replyTo == nil {
		replyTo = e.From
	}
	for i, l := range [][]imap.Address{e.From, sender, replyTo, e.To, e.Cc, e.Bcc} {
		w.SP()
		var sl []*storagepb.Address
		if stored != nil {
			sl = stored(i)
			if len(sl) == 0 && (i == 1 || i == 2) {
				sl = stored(0) // Sender, Reply-To default to From
			}
			l = nil
			for _, a := range sl {
				l = append(l, imap.Address{Name: a.Name, Mailbox: a.Mailbox, Host: a.Host})
			}
		}
		if len(l) == 0 {
			w.NIL()
			continue
		}
		w.Raw("(")
		for j, a := range l {
			w.Raw("(")
			nstring(w, encodeText(a.Name, utf8))
			w.SP()
			if sl != nil && sl[j].Route != "" {
				w.String(sl[j].Route) // adl: the source route
			} else {
				w.NIL()
			}
			w.SP()
			nstring(w, a.Mailbox)
			w.SP()
			nstring(w, a.Host)
			w.Raw(")")
		}
		w.Raw(")")
	}
	w.SP()
	if len(e.InReplyTo) > 0 {
		w.String("<" + strings.Join(e.InReplyTo, "> <") + ">")
	} else {
		w.NIL()
	}
	w.SP()
	if e.MessageID != "" {
		w.String("<" + e.MessageID + ">")
	} else {
		w.NIL()
	}
	w.Raw(")")
}

// writeBodyStructure encodes BODY / BODYSTRUCTURE (RFC 9051 §7.5.2, body).
func writeBodyStructure(w *wire.Writer, bs imap.BodyStructure, ext, utf8 bool) {
	w.Raw("(")
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		for _, c := range bs.Children { // no SP between parts
			writeBodyStructure(w, c, ext, utf8)
		}
		w.SP().String(bs.Subtype)
		if ext {
			x := bs.Extended
			if x == nil {
				x = &imap.BodyStructureMultiPartExt{}
			}
			w.SP()
			writeParams(w, x.Params)
			w.SP()
			writeDisposition(w, x.Disposition)
			w.SP()
			writeLanguage(w, x.Language)
			w.SP()
			nstring(w, x.Location)
		}
	case *imap.BodyStructureSinglePart:
		w.String(bs.Type).SP().String(bs.Subtype).SP()
		writeParams(w, bs.Params)
		w.SP()
		nstring(w, bs.ID)
		w.SP()
		nstring(w, bs.Description)
		w.SP()
		enc := strings.ToLower(bs.Encoding)
		if enc == "" {
			enc = "7bit"
		}
		w.String(enc).SP().Number(uint64(bs.Size))
		if m := bs.MessageRFC822; m != nil {
			w.SP()
			writeEnvelope(w, m.Envelope, utf8)
			w.SP()
			writeBodyStructure(w, m.BodyStructure, ext, utf8)
			w.SP().Number(uint64(max(m.NumLines, 0)))
		} else if t := bs.Text; t != nil {
			w.SP().Number(uint64(max(t.NumLines, 0)))
		}
		if ext {
			x := bs.Extended
			if x == nil {
				x = &imap.BodyStructureSinglePartExt{}
			}
			w.Raw(" NIL ") // MD5
			writeDisposition(w, x.Disposition)
			w.SP()
			writeLanguage(w, x.Language)
			w.SP()
			nstring(w, x.Location)
		}
	}
	w.Raw(")")
}

func writeParams(w *wire.Writer, p map[string]string) {
	if len(p) == 0 {
		w.NIL()
		return
	}
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.Raw("(")
	for i, k := range keys {
		if i > 0 {
			w.SP()
		}
		w.String(k).SP().String(p[k])
	}
	w.Raw(")")
}

func writeDisposition(w *wire.Writer, d *imap.BodyStructureDisposition) {
	if d == nil {
		w.NIL()
		return
	}
	w.Raw("(").String(d.Value).SP()
	writeParams(w, d.Params)
	w.Raw(")")
}

func writeLanguage(w *wire.Writer, l []string) {
	if len(l) == 0 {
		w.NIL()
		return
	}
	w.Raw("(")
	for i, x := range l {
		if i > 0 {
			w.SP()
		}
		w.String(x)
	}
	w.Raw(")")
}
