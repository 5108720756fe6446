package mail

import (
	"errors"
	"sort"

	"github.com/continuum-mail/continuum/node/search"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// TextDoc is a message's searchable text (node/search.Doc): what SEARCH
// TEXT, BODY and HEADER match, on both the indexed and the scanning path.
type TextDoc = search.Doc

// FoldText normalises a SEARCH string the way documents are (search.Fold).
func FoldText(s string) string { return search.Fold(s) }

// SetIndex installs the node's full-text index. Without one (or with
// Options.NoIndex on the search) every message is scanned.
func (s *Service) SetIndex(x *search.Index) { s.index.Store(x) }

// Index returns the node's full-text index, or nil.
func (s *Service) Index() *search.Index { return s.index.Load() }

// TextSearch is one SEARCH's access to message text in one mailbox: which
// messages can match (from the index) and each candidate's text (from the
// index, else extracted from the stored message). Close it.
type TextSearch struct {
	db          *storage.DB // large messages are streamed from it
	view        *search.View
	mailboxID   uint64
	hw          uint32 // messages with a UID ≤ hw are indexed
	indexed     bool   // the index holds this incarnation of the mailbox
	uidValidity uint32
}

// TextSearch opens a text search over the mailbox. scanOnly ignores the
// index: the scanning path, kept as the fallback and as the oracle the
// indexed path is tested against.
func (s *Service) TextSearch(mailboxID uint64, uidValidity uint32, scanOnly bool) (*TextSearch, error) {
	t := &TextSearch{db: s.db, mailboxID: mailboxID, uidValidity: uidValidity}
	x := s.index.Load()
	if x == nil || scanOnly {
		return t, nil
	}
	t.view = x.View()
	hw, uv, ok, err := t.view.Indexed(mailboxID)
	if err != nil {
		t.Close()
		return nil, err
	}
	t.indexed = ok && uv == uidValidity
	t.hw = hw
	return t, nil
}

// Close releases the index view.
func (t *TextSearch) Close() {
	if t.view != nil {
		t.view.Close()
		t.view = nil
	}
}

// Narrow returns the positions in uids (ascending UIDs of the session's
// view) of the messages that can contain every one of the queries
// (Folded), or all of them when the index cannot tell: a superset of the
// matches, which the caller verifies.
func (t *TextSearch) Narrow(uids []uint32, queries []string) ([]int, error) {
	var usable []string
	for _, q := range queries {
		if search.Usable(q) {
			usable = append(usable, q)
		}
	}
	if !t.indexed || len(usable) == 0 {
		return allPositions(len(uids)), nil
	}
	cands, err := t.view.Candidates(t.mailboxID, t.hw, usable)
	if err != nil {
		return nil, err
	}
	var out []int
	i := 0
	for _, u := range cands {
		for i < len(uids) && uids[i] < u {
			i++
		}
		if i < len(uids) && uids[i] == u {
			out = append(out, i)
		}
	}
	// Messages above the watermark are not indexed yet: scan them.
	for j := sort.Search(len(uids), func(k int) bool { return uids[k] > t.hw }); j < len(uids); j++ {
		out = append(out, j)
	}
	return out, nil
}

func allPositions(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// MessageReader is what Doc reads a stored message through: the command's
// View (a frontend), or a storage snapshot (node's own code and tests).
type MessageReader interface {
	Blob(sha []byte) ([]byte, error)
	Parsed(sha []byte) (*storagepb.ParsedMessage, error)
}

// Doc returns the searchable text of message m of the mailbox: the
// index's copy when it has one, else extracted from the stored bytes read
// through r.
func (t *TextSearch) Doc(r MessageReader, m *storagepb.Message) (*TextDoc, error) {
	if t.indexed {
		d, err := t.view.Doc(t.mailboxID, m.Uid)
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, search.ErrNotFound) {
			return nil, err
		}
	}
	return extractDoc(t.db, r, m)
}

// extractDoc is a stored message's searchable text, extracted from its
// bytes (the scanning path); a message over ChunkBytes is streamed from
// db (one chunk at a time), keeping only the ranges its text comes from.
func extractDoc(db *storage.DB, r MessageReader, m *storagepb.Message) (*TextDoc, error) {
	parsed, err := r.Parsed(m.Blob)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if db != nil && m.Size > ChunkBytes {
		br, err := db.OpenBlob(m.Blob)
		if err != nil {
			return nil, err
		}
		defer br.Close()
		return search.ExtractReader(br, br.Size, parsed)
	}
	data, err := r.Blob(m.Blob)
	if err != nil {
		return nil, err
	}
	return search.Extract(data, parsed), nil
}

// Matching returns what the index knows of the messages whose TEXT holds
// every one of queries (each Folded): sure are UIDs that do (no
// verification needed), maybe are UIDs that may (verify each on its Doc),
// both ascending, disjoint and ≤ hw; messages above hw are not covered by
// the index and must be checked by the caller. indexed is false when the
// index cannot narrow at all (no index, the mailbox not indexed yet, or no
// query usable): then every message must be checked.
//
// A query without white space is answered exactly from the token
// postings (search.View.TokenMatches); one with white space (a phrase)
// narrows through the postings of its pieces (search.View.Candidates) and
// its candidates are all maybe.
//
// Archive search uses it per mailbox; IMAP SEARCH can use it for its
// top-level TEXT criteria (sure UIDs skip the text check).
func (t *TextSearch) Matching(queries []string) (sure, maybe []uint32, hw uint32, indexed bool, err error) {
	if !t.indexed || len(queries) == 0 {
		return nil, nil, 0, false, nil
	}
	first, exact := true, true
	for _, q := range queries {
		var s, m []uint32
		switch {
		case search.Tokenizable(q):
			s, m, err = t.view.TokenMatches(t.mailboxID, t.hw, q)
		case search.Usable(q):
			m, err = t.view.Candidates(t.mailboxID, t.hw, []string{q})
		default:
			exact = false // no restriction from this one: nothing is sure
			continue
		}
		if err != nil {
			return nil, nil, 0, false, err
		}
		if first {
			sure, maybe, first = s, m, false
			continue
		}
		// AND: a message is a candidate if it is one for every query, sure
		// if sure for every query.
		all := union(sure, maybe)
		cand := intersect(all, union(s, m))
		sure = intersect(sure, s)
		maybe = difference(cand, sure)
	}
	if first {
		return nil, nil, 0, false, nil
	}
	if !exact {
		maybe, sure = union(sure, maybe), nil
	}
	return sure, maybe, t.hw, true, nil
}

func union(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out, i = append(out, a[i]), i+1
		case i == len(a) || b[j] < a[i]:
			out, j = append(out, b[j]), j+1
		default:
			out, i, j = append(out, a[i]), i+1, j+1
		}
	}
	return out
}

func intersect(a, b []uint32) []uint32 {
	var out []uint32
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] < b[j]:
			i++
		case b[j] < a[i]:
			j++
		default:
			out, i, j = append(out, a[i]), i+1, j+1
		}
	}
	return out
}

func difference(a, b []uint32) []uint32 {
	var out []uint32
	j := 0
	for _, u := range a {
		for j < len(b) && b[j] < u {
			j++
		}
		if j == len(b) || b[j] != u {
			out = append(out, u)
		}
	}
	return out
}
