package imapd

import (
	"bytes"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/continuum-mail/continuum/storage"
)

// Search implements SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH
// results (RFC 4731) and SEARCHRES (RFC 5182). Criteria on the record
// (flags, dates, sizes, numbers) are checked first; header and text
// criteria then read the stored bytes: header fields are matched in the
// header slice, TEXT and BODY as case-insensitive ASCII substrings of the
// raw message and body (no transfer decoding).
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	s.touched = true
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil {
		return nil, reply(errNoSelectable)
	}
	c := sel.static(*criteria)
	data := &imap.SearchData{}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	all := make([]int, len(sel.uids))
	for i := range all {
		all[i] = i
	}
	snap := s.mail.Snapshot()
	err := s.scan(snap, all, func(f fetched) error {
		m := &candidate{f: f, r: snap}
		if !m.match(&c) {
			return m.err
		}
		uids.AddNum(imap.UID(f.msg.Uid))
		num := f.seq
		if kind == imapserver.NumKindUID {
			num = f.msg.Uid
		} else {
			seqs.AddNum(f.seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
		return nil
	})
	snap.Close()
	if err != nil {
		s.srv.log.Error("search", "err", err)
		return nil, reply(err)
	}
	if kind == imapserver.NumKindUID {
		data.All = uids
	} else {
		data.All = seqs
	}
	if options.ReturnSave {
		sel.searchRes = uids
	}
	return data, nil
}

// static resolves "*" and "$" in the criteria's number sets against the
// view, so matching compares plain numbers.
func (sel *selected) static(c imap.SearchCriteria) imap.SearchCriteria {
	var seqSets []imap.SeqSet
	var uidSets []imap.UIDSet
	for _, set := range c.SeqNum {
		uidSets = append(uidSets, sel.toUIDSet(sel.indices(set)))
	}
	for _, set := range c.UID {
		uidSets = append(uidSets, sel.toUIDSet(sel.indices(set)))
	}
	c.SeqNum, c.UID = seqSets, uidSets
	c.Not = append([]imap.SearchCriteria(nil), c.Not...)
	for i := range c.Not {
		c.Not[i] = sel.static(c.Not[i])
	}
	c.Or = append([][2]imap.SearchCriteria(nil), c.Or...)
	for i := range c.Or {
		c.Or[i] = [2]imap.SearchCriteria{sel.static(c.Or[i][0]), sel.static(c.Or[i][1])}
	}
	return c
}

func (sel *selected) toUIDSet(idx []int) imap.UIDSet {
	set := imap.UIDSet{}
	for _, r := range runs(idx) {
		set.AddRange(imap.UID(sel.uids[r[0]]), imap.UID(sel.uids[r[1]]))
	}
	return set
}

// candidate is a message under test; its bytes are read at most once,
// and only if a criterion needs them.
type candidate struct {
	f      fetched
	r      storage.Reader
	lower  []byte // the message, ASCII lower-cased
	header []byte // lower-cased header block
	body   []byte // lower-cased body
	loaded bool
	err    error
}

func (m *candidate) load() bool {
	if m.loaded {
		return m.err == nil
	}
	m.loaded = true
	data, err := m.r.Blob(m.f.msg.Blob)
	if err != nil {
		m.err = err
		return false
	}
	parsed, err := m.r.Parsed(m.f.msg.Blob)
	if err != nil {
		m.err = err
		return false
	}
	m.f.parsed = parsed
	for i, c := range data {
		if 'A' <= c && c <= 'Z' {
			data[i] = c + 'a' - 'A'
		}
	}
	m.lower = data
	if root := parsed.GetRoot(); root != nil && root.HeaderEnd <= uint64(len(data)) && root.BodyStart <= root.BodyEnd && root.BodyEnd <= uint64(len(data)) {
		m.header = data[root.HeaderStart:root.HeaderEnd]
		m.body = data[root.BodyStart:root.BodyEnd]
	} else {
		m.header = data
	}
	return true
}

func (m *candidate) match(c *imap.SearchCriteria) bool {
	msg := m.f.msg
	for _, set := range c.UID {
		if !set.Contains(imap.UID(msg.Uid)) {
			return false
		}
	}
	for _, f := range c.Flag {
		if !hasFlag(msg.Flags, string(f)) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if hasFlag(msg.Flags, string(f)) {
			return false
		}
	}
	if c.Larger != 0 && int64(msg.Size) <= c.Larger {
		return false
	}
	if c.Smaller != 0 && int64(msg.Size) >= c.Smaller {
		return false
	}
	if !matchDate(time.Unix(msg.InternalDateUnix, 0).UTC(), c.Since, c.Before) {
		return false
	}
	if c.ModSeq != nil && msg.Modseq < c.ModSeq.ModSeq {
		return false
	}
	if !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		if !m.load() {
			return false
		}
		e := envelope(m.f.parsed.GetEnvelope())
		if e.Date.IsZero() || !matchDate(e.Date, c.SentSince, c.SentBefore) {
			return false
		}
	}
	for _, h := range c.Header {
		if !m.load() || !headerContains(m.header, h.Key, h.Value) {
			return false
		}
	}
	for _, t := range c.Body {
		if !m.load() || !bytes.Contains(m.body, lowerASCII(t)) {
			return false
		}
	}
	for _, t := range c.Text {
		if !m.load() || !bytes.Contains(m.lower, lowerASCII(t)) {
			return false
		}
	}
	for i := range c.Not {
		if m.match(&c.Not[i]) {
			return false
		}
		if m.err != nil {
			return false
		}
	}
	for i := range c.Or {
		if !m.match(&c.Or[i][0]) && !m.match(&c.Or[i][1]) {
			return false
		}
	}
	return true
}

// matchDate compares dates only, disregarding time and zone (RFC 9051
// §6.4.4).
func matchDate(t, since, before time.Time) bool {
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	if !since.IsZero() && d.Before(time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	if !before.IsZero() && !d.Before(time.Date(before.Year(), before.Month(), before.Day(), 0, 0, 0, 0, time.UTC)) {
		return false
	}
	return true
}

// headerContains reports whether a field named key (any case) has value
// as a substring of its unfolded value; an empty value matches any field
// of that name. header is already lower-cased.
func headerContains(header []byte, key, value string) bool {
	k := lowerASCII(key)
	v := lowerASCII(value)
	for len(header) > 0 {
		line := header
		if i := bytes.IndexByte(header, '\n'); i >= 0 {
			line = header[:i+1]
		}
		header = header[len(line):]
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok || line[0] == ' ' || line[0] == '\t' || !bytes.Equal(bytes.TrimSpace(name), k) {
			continue
		}
		val := append([]byte(nil), bytes.TrimRight(rest, "\r\n")...)
		for len(header) > 0 && (header[0] == ' ' || header[0] == '\t') {
			next := header
			if i := bytes.IndexByte(header, '\n'); i >= 0 {
				next = header[:i+1]
			}
			header = header[len(next):]
			val = append(val, bytes.TrimRight(next, "\r\n")...)
		}
		if bytes.Contains(val, v) {
			return true
		}
	}
	return false
}

func lowerASCII(s string) []byte {
	return []byte(strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s))
}
