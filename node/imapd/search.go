package imapd

import (
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// Search implements SEARCH and UID SEARCH (RFC 9051 §6.4.4) with ESEARCH
// results (RFC 4731) and SEARCHRES (RFC 5182). Criteria on the record
// (flags, dates, sizes, numbers) are checked first. TEXT, BODY and HEADER
// (SUBJECT, FROM, TO, CC, BCC) match as substrings of the message's
// searchable text (mail.TextDoc: decoded text parts, HTML stripped,
// attachment names, RFC 2047 words decoded, Unicode-folded). The
// full-text index narrows the messages to check to those whose tokens
// hold every piece of the top-level text criteria; each is then verified on its
// text, so the result is the scanning path's (Options.ScanSearch). For
// top-level TEXT criteria the index's token postings answer exactly
// (mail.TextSearch.Matching): a message they name as sure is not
// verified for TEXT, only for the other criteria.
func (s *session) search(uid bool, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
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
	text, err := s.mail.TextSearch(sel.id, sel.uidValidity, s.srv.opts.ScanSearch)
	if err != nil {
		s.srv.log.Error("search", "err", err)
		return nil, reply(err)
	}
	defer text.Close()
	folds := map[string]string{}
	idx, sure, err := narrow(text, sel.uids, &c, folds)
	if err != nil {
		s.srv.log.Error("search", "err", err)
		return nil, reply(err)
	}
	noText := c // for a message whose TEXT criteria the index answered
	noText.Text = nil
	v := s.mail.View()
	err = s.scan(v, idx, func(f fetched) error {
		crit := &c
		if _, ok := slices.BinarySearch(sure, f.msg.Uid); ok {
			crit = &noText
		}
		m := &candidate{f: f, v: v, text: text, folds: folds}
		if !m.match(crit) {
			return m.err
		}
		uids.AddNum(imap.UID(f.msg.Uid))
		num := f.seq
		if uid {
			num = f.msg.Uid
		} else {
			seqs.AddNum(f.seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
		data.ModSeq = max(data.ModSeq, f.msg.Modseq)
		return nil
	})
	v.Close()
	if err != nil {
		s.srv.log.Error("search", "err", err)
		return nil, reply(err)
	}
	if uid {
		data.All = uids
	} else {
		data.All = seqs
	}
	if options.ReturnSave {
		sel.searchRes = uids
	}
	return data, nil
}

// narrow returns the positions in uids of the messages to check, and the
// UIDs (sorted) whose top-level TEXT criteria the index's token postings
// answered exactly. Without a usable index for TEXT it is the index's
// narrowing of every top-level text criterion, nothing sure.
func narrow(text *mail.TextSearch, uids []uint32, c *imap.SearchCriteria, folds map[string]string) ([]int, []uint32, error) {
	if len(c.Text) == 0 {
		idx, err := text.Narrow(uids, topLevelQueries(c, folds, true))
		return idx, nil, err
	}
	var qs []string
	for _, t := range c.Text {
		qs = append(qs, fold(folds, t))
	}
	sure, maybe, hw, indexed, err := text.Matching(qs)
	if err != nil {
		return nil, nil, err
	}
	if !indexed {
		idx, err := text.Narrow(uids, topLevelQueries(c, folds, true))
		return idx, nil, err
	}
	idx, err := text.Narrow(uids, topLevelQueries(c, folds, false))
	if err != nil {
		return nil, nil, err
	}
	out := idx[:0:0]
	for _, i := range idx {
		u := uids[i]
		_, isSure := slices.BinarySearch(sure, u)
		_, isMaybe := slices.BinarySearch(maybe, u)
		if u > hw || isSure || isMaybe {
			out = append(out, i)
		}
	}
	return out, sure, nil
}

// topLevelQueries returns the folded strings every match must contain:
// those of the BODY and HEADER criteria, and TEXT's when withText, ANDed
// at the top level (not under NOT or OR). folds caches each criterion's
// folded form.
func topLevelQueries(c *imap.SearchCriteria, folds map[string]string, withText bool) []string {
	var out []string
	add := func(s string) { out = append(out, fold(folds, s)) }
	for _, h := range c.Header {
		if addressField(h.Key) != nil {
			// An address may be written with comments or spaces around
			// its "@" ("user (c)@ (c) host"): require only the parts.
			for _, p := range strings.Split(h.Value, "@") {
				if p != "" {
					add(p)
				}
			}
			continue
		}
		add(h.Value)
	}
	for _, t := range c.Body {
		add(t)
	}
	if withText {
		for _, t := range c.Text {
			add(t)
		}
	}
	return out
}

func fold(folds map[string]string, s string) string {
	f, ok := folds[s]
	if !ok {
		f = mail.FoldText(s)
		folds[s] = f
	}
	return f
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
	// \Recent is the session's, not a stored flag: a set of UIDs.
	recent := func() imap.UIDSet {
		set := imap.UIDSet{}
		for u := range sel.recent {
			set.AddNum(imap.UID(u))
		}
		return set
	}
	var flags, notFlags []imap.Flag
	var notRecent bool
	for _, f := range c.Flag {
		if strings.EqualFold(string(f), `\Recent`) {
			uidSets = append(uidSets, recent())
		} else {
			flags = append(flags, f)
		}
	}
	for _, f := range c.NotFlag {
		if strings.EqualFold(string(f), `\Recent`) {
			notRecent = true
		} else {
			notFlags = append(notFlags, f)
		}
	}
	c.Flag, c.NotFlag = flags, notFlags
	c.SeqNum, c.UID = seqSets, uidSets
	c.Not = append([]imap.SearchCriteria(nil), c.Not...)
	for i := range c.Not {
		c.Not[i] = sel.static(c.Not[i])
	}
	if notRecent {
		c.Not = append(c.Not, imap.SearchCriteria{UID: []imap.UIDSet{recent()}})
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

// candidate is a message under test; its record's parse and its text are
// read at most once, and only if a criterion needs them.
type candidate struct {
	f      fetched
	v      *mail.View
	text   *mail.TextSearch
	folds  map[string]string
	doc    *mail.TextDoc
	loaded bool
	err    error
}

func (m *candidate) load() bool {
	if m.loaded {
		return m.err == nil
	}
	m.loaded = true
	parsed, err := m.v.Parsed(m.f.msg.Blob)
	if err != nil {
		m.err = err
		return false
	}
	m.f.parsed = parsed
	return true
}

func (m *candidate) loadDoc() bool {
	if m.doc != nil {
		return true
	}
	if m.err != nil {
		return false
	}
	d, err := m.text.Doc(m.v, m.f.msg)
	if err != nil {
		m.err = err
		return false
	}
	m.doc = d
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
		if !m.matchHeader(h.Key, h.Value) {
			return false
		}
	}
	for _, t := range c.Body {
		if !m.loadDoc() || !m.doc.MatchBody(fold(m.folds, t)) {
			return false
		}
	}
	for _, t := range c.Text {
		if !m.loadDoc() || !m.doc.MatchText(fold(m.folds, t)) {
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

// matchHeader matches a HEADER, FROM, TO, CC or BCC criterion against the
// field's text; an address field also matches on its parsed addresses,
// "name <mailbox@host>" without the comments and spaces the text may hold
// (issue #21: FROM user-from@domain.org and "<user-from (comment)@
// (comment) domain.org>").
func (m *candidate) matchHeader(key, value string) bool {
	if !m.loadDoc() {
		return false
	}
	want := fold(m.folds, value)
	if m.doc.MatchHeader(key, want) {
		return true
	}
	field := addressField(key)
	if field == nil || !m.load() {
		return false
	}
	for _, a := range field(m.f.parsed.GetEnvelope()) {
		if a.Group {
			continue
		}
		s := a.Name + " <" + a.Mailbox + "@" + a.Host + ">"
		if strings.Contains(mail.FoldText(s), want) {
			return true
		}
	}
	return false
}

// addressField returns the envelope's addresses for an address header
// name, nil for any other header.
func addressField(key string) func(*storagepb.Envelope) []*storagepb.Address {
	switch strings.ToLower(key) {
	case "from":
		return (*storagepb.Envelope).GetFrom
	case "to":
		return (*storagepb.Envelope).GetTo
	case "cc":
		return (*storagepb.Envelope).GetCc
	case "bcc":
		return (*storagepb.Envelope).GetBcc
	}
	return nil
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
