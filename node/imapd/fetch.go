package imapd

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"math"
	"mime/quotedprintable"
	netmail "net/mail"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// fetched is one message read for a command: its record, sequence number
// and, when the command needs them, its bytes and parsed structure.
type fetched struct {
	seq    uint32
	msg    *storagepb.Message
	data   []byte
	parsed *storagepb.ParsedMessage
	// open, set instead of data for a message over mail.ChunkBytes,
	// streams its bytes: BODY[section] of a large message is read chunk
	// by chunk and decompressed as it is written to the client.
	open func() (io.ReadCloser, error)
	// header: data is only the message's top-level header block (a FETCH
	// of header sections, onlyHeaders) and parsed is not read.
	header bool
}

// streamAbove is the message size above which FETCH streams the body
// instead of reading it into memory under the batch's view.
const streamAbove = mail.ChunkBytes

// Batch bounds: a FETCH reads this many messages (or bytes of message
// data) through one mail.View, then writes them with no view held.
const (
	fetchBatchMessages = 4096
	fetchBatchBytes    = 16 << 20
)

// readMessages reads the messages at view positions idx (ascending)
// through one mail.View; messages gone from storage are skipped.
func (s *session) readMessages(idx []int) ([]fetched, error) {
	v := s.mail.View()
	defer v.Close()
	var out []fetched
	err := s.scan(v, idx, func(f fetched) error {
		out = append(out, f)
		return nil
	})
	return out, err
}

// scan calls fn for every message at view positions idx found in v, with
// one range scan per run of adjacent positions.
func (s *session) scan(v *mail.View, idx []int, fn func(fetched) error) error {
	sel := s.sel
	for _, run := range runs(idx) {
		k := run[0]
		err := v.Messages(sel.id, sel.uids[run[0]], sel.uids[run[1]], func(m *storagepb.Message) error {
			for k <= run[1] && sel.uids[k] < m.Uid {
				k++
			}
			if k > run[1] || sel.uids[k] != m.Uid {
				return nil
			}
			return fn(fetched{seq: uint32(k + 1), msg: m})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func needsData(o *imap.FetchOptions) bool {
	return len(o.BodySection) > 0 || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0
}

func needsParsed(o *imap.FetchOptions) bool {
	return o.Envelope || o.BodyStructure != nil || needsData(o)
}

// Fetch implements FETCH (RFC 9051 §6.4.5) from the stored records and the
// parsed structure computed at delivery: sections are slices of the stored
// bytes at the recorded offsets, never a re-parse.
func (s *session) fetch(w fetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	s.touched = true
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil {
		return reply(errNoSelectable)
	}
	idx := sel.indices(numSet)
	if len(idx) == 0 {
		return nil
	}

	// A non-PEEK body section sets \Seen (RFC 9051 §6.4.5), as a write
	// before the data goes out; the FETCH then reports the new flags.
	seen := map[uint32]bool{}
	if !sel.readOnly && markSeen(options) {
		msgs, err := s.readMessages(idx)
		if err != nil {
			return reply(err)
		}
		var unseen []int
		for _, m := range msgs {
			if !hasFlag(m.msg.Flags, string(imap.FlagSeen)) {
				unseen = append(unseen, int(m.seq-1))
				seen[m.msg.Uid] = true
			}
		}
		if len(unseen) > 0 {
			if err := s.writable(); err != nil {
				return reply(err)
			}
			_, err := s.mail.StoreFlags(s.ctx(), s.user.ID, sel.id, sel.uidRanges(unseen), commandpb.FlagOp_FLAG_OP_ADD, []string{string(imap.FlagSeen)}, 0)
			if err != nil {
				return reply(err)
			}
		}
	}

	if s.condstore && options.Flags {
		options.ModSeq = true // RFC 7162 §3.2
	}
	s.corkOn()
	defer s.corkOff()
	withData, withParsed := needsData(options), needsParsed(options)
	headersOnly := onlyHeaders(options)
	// scratch holds a filtered header section until it is written;
	// arenas are the buffers of a batch's header blocks, reused by the
	// next batch.
	var scratch []byte
	var arenas [][]byte
	for len(idx) > 0 {
		batch := make([]fetched, 0, min(len(idx), fetchBatchMessages))
		nbytes := 0
		v := s.mail.View()
		n := 0
		err := s.scan(v, idx, func(f fetched) error {
			if len(batch) >= fetchBatchMessages || nbytes >= fetchBatchBytes {
				return errBatchFull
			}
			var err error
			if headersOnly {
				// Header blocks only: read for the whole batch below.
				nbytes += int(min(f.msg.Size, mail.MaxHeaderBlock))
			} else if withData && f.msg.Size > streamAbove {
				sha := f.msg.Blob
				f.open = func() (io.ReadCloser, error) { return s.mail.OpenBlob(sha) }
				if f.parsed, err = v.Parsed(f.msg.Blob); err != nil {
					return err
				}
			} else if withData {
				if f.data, err = v.Blob(f.msg.Blob); err != nil {
					return err
				}
				nbytes += len(f.data)
			}
			if withParsed && !headersOnly && f.parsed == nil {
				if f.parsed, err = v.Parsed(f.msg.Blob); err != nil {
					return err
				}
			}
			batch = append(batch, f)
			return nil
		})
		if headersOnly && (err == nil || errors.Is(err, errBatchFull)) {
			// The header blocks alone, not the messages (node/mail/headers.go).
			// The blocks are copied into a few shared buffers rather
			// than one allocation per message.
			shas := make([][]byte, len(batch))
			for i, f := range batch {
				shas[i] = f.msg.Blob
			}
			used, cur := 0, -1
			if herr := v.HeaderBlocks(shas, func(i int, h []byte) error {
				if cur < 0 || cap(arenas[cur])-len(arenas[cur]) < len(h) {
					if used == len(arenas) {
						arenas = append(arenas, make([]byte, 0, max(headerArena, len(h))))
					}
					cur, used = used, used+1
					arenas[cur] = arenas[cur][:0]
				}
				start := len(arenas[cur])
				arenas[cur] = append(arenas[cur], h...)
				batch[i].data = arenas[cur][start:len(arenas[cur]):len(arenas[cur])]
				batch[i].header = true
				return nil
			}); herr != nil {
				err = herr
			}
		}
		v.Close()
		if err != nil && !errors.Is(err, errBatchFull) {
			return reply(err)
		}
		if errors.Is(err, errBatchFull) {
			last := int(batch[len(batch)-1].seq - 1)
			for n < len(idx) && idx[n] <= last {
				n++
			}
			idx = idx[n:]
		} else {
			idx = nil
		}
		for _, f := range batch {
			if options.ChangedSince != 0 && f.msg.Modseq <= options.ChangedSince && !seen[f.msg.Uid] {
				continue // RFC 7162 §3.1.4.1
			}
			if seen[f.msg.Uid] {
				if sel.own == nil {
					sel.own = map[uint32]uint64{}
				}
				sel.own[f.msg.Uid] = f.msg.Modseq
			}
			var flags []imap.Flag
			if options.Flags || seen[f.msg.Uid] {
				flags = sel.flagsOf(f.msg.Uid, f.msg.Flags)
			}
			if err := writeFetch(w, f, options, seen[f.msg.Uid], flags, &scratch); err != nil {
				return err
			}
		}
	}
	return nil
}

var errBatchFull = errors.New("batch full")

// headerArena is the size of the buffers a batch's header blocks are
// copied into.
const headerArena = 256 << 10

// onlyHeaders reports whether the FETCH needs of the message bytes only its
// top-level header block: BODY[HEADER] and BODY[HEADER.FIELDS[.NOT] (…)],
// with no ENVELOPE, BODYSTRUCTURE or BINARY.
func onlyHeaders(o *imap.FetchOptions) bool {
	if len(o.BodySection) == 0 || o.Envelope || o.BodyStructure != nil || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
		return false
	}
	for _, sec := range o.BodySection {
		if len(sec.Part) > 0 || sec.Specifier != imap.PartSpecifierHeader {
			return false
		}
	}
	return true
}

func markSeen(o *imap.FetchOptions) bool {
	for _, b := range o.BodySection {
		if !b.Peek {
			return true
		}
	}
	for _, b := range o.BinarySection {
		if !b.Peek {
			return true
		}
	}
	return false
}

// scratch is a buffer the header sections are filtered into (reused from
// one message to the next: each is written before the next is built).
func writeFetch(w fetchWriter, f fetched, o *imap.FetchOptions, flagsChanged bool, flags []imap.Flag, scratch *[]byte) error {
	rw := w.CreateMessage(f.seq)
	if o.UID {
		rw.WriteUID(imap.UID(f.msg.Uid))
	}
	if o.Flags || flagsChanged {
		rw.WriteFlags(flags)
	}
	if o.InternalDate {
		rw.WriteInternalDate(time.Unix(f.msg.InternalDateUnix, 0).UTC())
	}
	if o.RFC822Size {
		rw.WriteRFC822Size(int64(min(f.msg.Size, math.MaxInt64)))
	}
	if o.ModSeq {
		rw.WriteModSeq(f.msg.Modseq)
	}
	if o.Envelope {
		rw.WriteEnvelope(f.parsed.GetEnvelope())
	}
	if o.BodyStructure != nil {
		rw.WriteBodyStructure(bodyStructure(f.parsed.GetRoot(), 0))
	}
	if f.header {
		for _, sec := range o.BodySection {
			b := headerSection((*scratch)[:0], f.data, sec)
			if len(sec.HeaderFields) > 0 || len(sec.HeaderFieldsNot) > 0 {
				*scratch = b
			}
			if err := rw.WriteBodySectionBytes(sec, partial(b, sec.Partial)); err != nil {
				return err
			}
		}
	} else if f.open != nil && len(o.BodySection) > 0 {
		if err := streamBodySections(rw, f, o.BodySection); err != nil {
			return err
		}
	} else {
		for _, sec := range o.BodySection {
			if err := rw.WriteBodySectionBytes(sec, partial(bodySection(f.data, f.parsed, sec), sec.Partial)); err != nil {
				return err
			}
		}
	}
	if f.open != nil && (len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0) {
		// BINARY of a large message decodes a part in memory: read the
		// message whole (bounded by the message size limit).
		r, err := f.open()
		if err != nil {
			return err
		}
		f.data, err = io.ReadAll(r)
		r.Close()
		if err != nil {
			return err
		}
	}
	for _, sec := range o.BinarySection {
		b, err := binarySection(f.data, f.parsed, sec.Part)
		if err != nil {
			b = nil
		}
		b = partial(b, sec.Partial)
		if err := writeLiteral(rw.WriteBinarySection(sec, int64(len(b))), b); err != nil {
			return err
		}
	}
	for _, sec := range o.BinarySectionSize {
		b, _ := binarySection(f.data, f.parsed, sec.Part)
		rw.WriteBinarySectionSize(sec, uint32(min(len(b), math.MaxUint32)))
	}
	return rw.Close()
}

func writeLiteral(wc io.WriteCloser, b []byte) error {
	_, err := wc.Write(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset >= int64(len(b)) || p.Offset < 0 {
		return nil
	}
	b = b[p.Offset:]
	if p.Size >= 0 && p.Size < int64(len(b)) {
		b = b[:p.Size]
	}
	return b
}

// bodySection returns BODY[section] (RFC 9051 §6.4.5) as a slice of the
// stored message at the offsets mimeparse recorded; a section that names
// no part is empty.
func bodySection(data []byte, parsed *storagepb.ParsedMessage, sec *imap.FetchItemBodySection) []byte {
	root := parsed.GetRoot()
	if root == nil {
		return nil
	}
	// msg is the message whose HEADER or TEXT is asked for.
	msg := root
	if len(sec.Part) > 0 {
		p, err := mimeparse.Section(data, parsed, sec.Part)
		if err != nil {
			return nil
		}
		switch sec.Specifier {
		case imap.PartSpecifierNone:
			return data[p.BodyStart:p.BodyEnd]
		case imap.PartSpecifierMIME:
			return data[p.HeaderStart:p.HeaderEnd]
		}
		if !(p.Type == "message" && (p.Subtype == "rfc822" || p.Subtype == "global")) || len(p.Children) != 1 || p.Children[0] == nil {
			return nil
		}
		msg = p.Children[0]
	} else if sec.Specifier == imap.PartSpecifierNone {
		return data
	}
	if !(msg.HeaderStart <= msg.HeaderEnd && msg.BodyStart <= msg.BodyEnd && msg.BodyEnd <= uint64(len(data))) {
		return nil
	}
	switch sec.Specifier {
	case imap.PartSpecifierText:
		return data[msg.BodyStart:msg.BodyEnd]
	case imap.PartSpecifierHeader:
		h := data[msg.HeaderStart:msg.HeaderEnd]
		switch {
		case len(sec.HeaderFields) > 0:
			return filterHeader(h, sec.HeaderFields, true)
		case len(sec.HeaderFieldsNot) > 0:
			return filterHeader(h, sec.HeaderFieldsNot, false)
		}
		return h
	}
	return nil
}

// filterHeader keeps (or drops) the named fields of a header block, folded
// lines included, and ends the result with the blank line
// (HEADER.FIELDS, RFC 9051 §6.4.5).
func filterHeader(h []byte, names []string, keep bool) []byte {
	return filterHeaderAppend(nil, h, names, keep)
}

// filterHeaderAppend is filterHeader appending to out.
func filterHeaderAppend(out, h []byte, names []string, keep bool) []byte {
	include := false
	for len(h) > 0 {
		line := h
		if i := bytes.IndexByte(h, '\n'); i >= 0 {
			line = h[:i+1]
		}
		h = h[len(line):]
		trimmed := line
		for len(trimmed) > 0 && (trimmed[len(trimmed)-1] == '\n' || trimmed[len(trimmed)-1] == '\r') {
			trimmed = trimmed[:len(trimmed)-1]
		}
		if len(trimmed) == 0 {
			break // the blank line ending the header
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, _, ok := bytes.Cut(trimmed, []byte(":"))
			match := false
			if ok {
				n := bytes.TrimSpace(name)
				for _, want := range names {
					if equalFoldASCII(n, want) {
						match = true
						break
					}
				}
			}
			include = match == keep
		}
		if include {
			out = append(out, line...)
		}
	}
	return append(out, '\r', '\n')
}

// binarySection returns BINARY[part] (RFC 3516): the part's body with its
// content transfer encoding undone.
func binarySection(data []byte, parsed *storagepb.ParsedMessage, part []int) ([]byte, error) {
	if len(part) == 0 {
		return data, nil
	}
	p, err := mimeparse.Section(data, parsed, part)
	if err != nil {
		return nil, errNoSuchPart
	}
	body := data[p.BodyStart:p.BodyEnd]
	switch strings.ToLower(p.Encoding) {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case "base64":
		clean := make([]byte, 0, len(body))
		for _, c := range body {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				clean = append(clean, c)
			}
		}
		clean = bytes.TrimRight(clean, "=")
		return base64.RawStdEncoding.DecodeString(string(clean))
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
	}
	return nil, errNoSuchPart
}

// envelope converts the stored ENVELOPE. The Date keeps its written zone
// when it parses; otherwise the parsed instant from delivery is used.
func envelope(e *storagepb.Envelope) *imap.Envelope {
	if e == nil {
		return &imap.Envelope{}
	}
	out := &imap.Envelope{
		Subject: e.Subject,
		From:    addresses(e.From), Sender: addresses(e.Sender), ReplyTo: addresses(e.ReplyTo),
		To: addresses(e.To), Cc: addresses(e.Cc), Bcc: addresses(e.Bcc),
		MessageID: strings.Trim(strings.TrimSpace(e.MessageId), "<>"),
	}
	if t, err := netmail.ParseDate(e.Date); err == nil {
		out.Date = t
	} else if e.DateUnix != 0 {
		out.Date = time.Unix(e.DateUnix, 0).UTC()
	}
	for _, id := range strings.Fields(e.InReplyTo) {
		if id = strings.Trim(id, "<>"); id != "" {
			out.InReplyTo = append(out.InReplyTo, id)
		}
	}
	return out
}

func addresses(in []*storagepb.Address) []imap.Address {
	if len(in) == 0 {
		return nil
	}
	out := make([]imap.Address, len(in))
	for i, a := range in {
		// A group start is (NIL NIL "name" NIL), its end (NIL NIL NIL NIL)
		// (RFC 9051 §7.5.2); the record holds them as such.
		out[i] = imap.Address{Name: a.Name, Mailbox: a.Mailbox, Host: a.Host}
	}
	return out
}

// maxStructureDepth bounds BODYSTRUCTURE nesting whatever the record says
// (docs/TESTPLAN.md §4: message/rfc822 nested 100 deep).
const maxStructureDepth = 64

// bodyStructure converts the stored part tree (RFC 9051 §7.5.2). Parts the
// parser left truncated, and anything below maxStructureDepth, are
// rendered as opaque application/octet-stream leaves so the grammar holds.
func bodyStructure(p *storagepb.Part, depth int) imap.BodyStructure {
	if p == nil {
		return &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Encoding: "7bit", Extended: &imap.BodyStructureSinglePartExt{}}
	}
	disp := disposition(p)
	if p.Type == "multipart" && len(p.Children) > 0 && depth < maxStructureDepth {
		mp := &imap.BodyStructureMultiPart{Subtype: p.Subtype, Extended: &imap.BodyStructureMultiPartExt{
			Params: p.Params, Disposition: disp, Language: p.Language, Location: p.Location,
		}}
		for _, c := range p.Children {
			mp.Children = append(mp.Children, bodyStructure(c, depth+1))
		}
		return mp
	}
	sp := &imap.BodyStructureSinglePart{
		Type: p.Type, Subtype: p.Subtype, Params: p.Params, ID: p.Id, Description: p.Description,
		Encoding: p.Encoding, Size: uint32(min(p.Size, math.MaxUint32)),
		Extended: &imap.BodyStructureSinglePartExt{Disposition: disp, Language: p.Language, Location: p.Location},
	}
	isMsg := p.Type == "message" && (p.Subtype == "rfc822" || p.Subtype == "global")
	switch {
	case p.Type == "multipart" || (isMsg && (len(p.Children) != 1 || p.Envelope == nil || depth >= maxStructureDepth)):
		sp.Type, sp.Subtype = "application", "octet-stream"
	case isMsg:
		sp.MessageRFC822 = &imap.BodyStructureMessageRFC822{
			Envelope:      envelope(p.Envelope),
			BodyStructure: bodyStructure(p.Children[0], depth+1),
			NumLines:      int64(min(p.Lines, math.MaxInt64)),
		}
	case p.Type == "text":
		sp.Text = &imap.BodyStructureText{NumLines: int64(min(p.Lines, math.MaxInt64))}
	}
	return sp
}

func disposition(p *storagepb.Part) *imap.BodyStructureDisposition {
	if p.Disposition == "" {
		return nil
	}
	return &imap.BodyStructureDisposition{Value: p.Disposition, Params: p.DispositionParams}
}

// streamBodySections writes BODY[section]<partial> items of a large
// message: each literal's size comes from the parsed offsets, its bytes
// from a fresh blob stream, so no more than a chunk and the decompressor's
// window are held whatever the message size.
func streamBodySections(rw fetchResponseWriter, f fetched, secs []*imap.FetchItemBodySection) error {
	for _, sec := range secs {
		start, end, filtered := sectionRange(f.parsed, int64(f.msg.Size), sec)
		if filtered {
			// HEADER.FIELDS: a header block is small (mimeparse limits
			// it); read it and filter as for small messages.
			h, err := readRange(f, start, end)
			if err != nil {
				return err
			}
			b := partial(bodySectionOfHeader(h, sec), sec.Partial)
			if err := writeLiteral(rw.WriteBodySection(sec, int64(len(b))), b); err != nil {
				return err
			}
			continue
		}
		if p := sec.Partial; p != nil {
			if p.Offset < 0 || p.Offset >= end-start {
				start = end
			} else {
				start += p.Offset
				if p.Size >= 0 && p.Size < end-start {
					end = start + p.Size
				}
			}
		}
		w := rw.WriteBodySection(sec, end-start)
		if end == start {
			if err := w.Close(); err != nil {
				return err
			}
			continue
		}
		r, err := f.open()
		if err != nil {
			w.Close()
			return err
		}
		_, err = io.CopyN(io.Discard, r, start)
		if err == nil {
			_, err = io.CopyN(w, r, end-start)
		}
		r.Close()
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			// The literal's size is already on the wire: the connection
			// cannot continue in step.
			return err
		}
	}
	return nil
}

func readRange(f fetched, start, end int64) ([]byte, error) {
	r, err := f.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := io.CopyN(io.Discard, r, start); err != nil {
		return nil, err
	}
	b := make([]byte, end-start)
	_, err = io.ReadFull(r, b)
	return b, err
}

// sectionRange is bodySection's offsets: the byte range of BODY[section]
// in a message of size bytes, and whether it is a header block to filter
// (HEADER.FIELDS[.NOT]). An empty section is start == end.
func sectionRange(parsed *storagepb.ParsedMessage, size int64, sec *imap.FetchItemBodySection) (start, end int64, filtered bool) {
	root := parsed.GetRoot()
	if root == nil {
		return 0, 0, false
	}
	valid := func(a, b uint64) bool { return a <= b && b <= uint64(size) }
	msg := root
	if len(sec.Part) > 0 {
		p, err := mimeparse.SectionOfSize(uint64(size), parsed, sec.Part)
		if err != nil {
			return 0, 0, false
		}
		switch sec.Specifier {
		case imap.PartSpecifierNone:
			if !valid(p.BodyStart, p.BodyEnd) {
				return 0, 0, false
			}
			return int64(p.BodyStart), int64(p.BodyEnd), false
		case imap.PartSpecifierMIME:
			if !valid(p.HeaderStart, p.HeaderEnd) {
				return 0, 0, false
			}
			return int64(p.HeaderStart), int64(p.HeaderEnd), false
		}
		if !(p.Type == "message" && (p.Subtype == "rfc822" || p.Subtype == "global")) || len(p.Children) != 1 || p.Children[0] == nil {
			return 0, 0, false
		}
		msg = p.Children[0]
	} else if sec.Specifier == imap.PartSpecifierNone {
		return 0, size, false
	}
	if !(valid(msg.HeaderStart, msg.HeaderEnd) && valid(msg.BodyStart, msg.BodyEnd)) {
		return 0, 0, false
	}
	switch sec.Specifier {
	case imap.PartSpecifierText:
		return int64(msg.BodyStart), int64(msg.BodyEnd), false
	case imap.PartSpecifierHeader:
		return int64(msg.HeaderStart), int64(msg.HeaderEnd), len(sec.HeaderFields) > 0 || len(sec.HeaderFieldsNot) > 0
	}
	return 0, 0, false
}

// equalFoldASCII is strings.EqualFold for a header field name (ASCII by
// RFC 5322 §2.2: bytes outside it compare as they are) without converting
// b to a string.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// headerSection is BODY[HEADER], BODY[HEADER.FIELDS (…)] or
// BODY[HEADER.FIELDS.NOT (…)] of a message whose header block is h; a
// filtered section is appended to dst.
func headerSection(dst, h []byte, sec *imap.FetchItemBodySection) []byte {
	switch {
	case len(sec.HeaderFields) > 0:
		return filterHeaderAppend(dst, h, sec.HeaderFields, true)
	case len(sec.HeaderFieldsNot) > 0:
		return filterHeaderAppend(dst, h, sec.HeaderFieldsNot, false)
	}
	return h
}

// bodySectionOfHeader applies HEADER.FIELDS[.NOT] to a header block.
func bodySectionOfHeader(h []byte, sec *imap.FetchItemBodySection) []byte {
	if len(sec.HeaderFields) > 0 {
		return filterHeader(h, sec.HeaderFields, true)
	}
	return filterHeader(h, sec.HeaderFieldsNot, false)
}
