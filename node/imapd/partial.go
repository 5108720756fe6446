package imapd

import (
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/imapd/wire"
)

// PARTIAL (RFC 9394): paged results. SEARCH, UID SEARCH, SORT and UID SORT
// take RETURN (PARTIAL range) and answer PARTIAL (range set-or-NIL) with
// the results at those positions; FETCH and UID FETCH take the modifier
// (PARTIAL range) and return only the messages of the set at those
// positions. A range n:m counts from the first result (1 is the first),
// -n:-m from the last (-1 is the last); 500:400 is 400:500. Positions
// are in the result's order: ascending for SEARCH and FETCH, the sort
// order for SORT.
//
// Choices where the RFC leaves room: with CHANGEDSINCE, PARTIAL picks
// among the messages of the set first and CHANGEDSINCE then drops the
// unchanged ones ("the flag changes of the newest 100 messages"); SAVE
// with PARTIAL saves the messages PARTIAL returned.

// partialRange is a parsed partial-range.
type partialRange struct {
	text    string // as the client sent it, echoed in the response
	lo, hi  uint32 // 1 ≤ lo ≤ hi: positions (counted from the end when fromEnd)
	fromEnd bool
}

// parsePartialRange reads partial-range-first (nz-number ":" nz-number) or
// partial-range-last ("-" nz-number ":" "-" nz-number); "*" is not allowed.
func parsePartialRange(v wire.Value) (partialRange, error) {
	bad := errBad("PARTIAL takes a range such as 1:100 or -1:-100")
	if v.Kind != wire.Atom || v.HasSection {
		return partialRange{}, bad
	}
	a, b, ok := strings.Cut(v.Str, ":")
	if !ok {
		return partialRange{}, bad
	}
	neg := strings.HasPrefix(a, "-")
	if neg != strings.HasPrefix(b, "-") {
		return partialRange{}, bad
	}
	if neg {
		a, b = a[1:], b[1:]
	}
	x, errA := parseNZNumber(a)
	y, errB := parseNZNumber(b)
	if errA != nil || errB != nil {
		return partialRange{}, bad
	}
	return partialRange{text: v.Str, lo: min(x, y), hi: max(x, y), fromEnd: neg}, nil
}

// parseNZNumber reads a non-zero 32-bit number in decimal, no sign.
func parseNZNumber(s string) (uint32, error) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, strconv.ErrSyntax
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}

// window returns the half-open index range [start, end) of the positions
// the range selects in a result of n items (empty when none).
func (r partialRange) window(n int) (start, end int) {
	if !r.fromEnd {
		start, end = int(r.lo)-1, min(int(r.hi), n)
	} else {
		start, end = max(n-int(r.hi), 0), n-int(r.lo)+1
	}
	if start >= n || end <= start {
		return 0, 0
	}
	return start, end
}

// pick returns the items of nums the range selects, in their order.
func (r partialRange) pick(nums []uint32) []uint32 {
	start, end := r.window(len(nums))
	return nums[start:end]
}

// write writes " PARTIAL (range set)" for the picked items ("NIL" when
// none), keeping their order.
func (r partialRange) write(c *conn, picked []uint32) {
	c.w.Raw(" PARTIAL (").Raw(r.text).SP()
	if len(picked) == 0 {
		c.w.Raw("NIL")
	} else {
		c.w.Raw(orderedSet(picked))
	}
	c.w.Raw(")")
}

// partialOf returns the UIDs of the messages of set (in the view, ascending)
// at r's positions, as a UID set for fetch.
func (s *session) partialOf(set imap.NumSet, r partialRange) (imap.UIDSet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil {
		return nil, reply(errNoSelectable)
	}
	idx := sel.indices(set)
	start, end := r.window(len(idx))
	var out imap.UIDSet
	for _, i := range idx[start:end] {
		out.AddNum(imap.UID(sel.uids[i]))
	}
	return out, nil
}

// saveResult replaces the saved search result (SEARCHRES) with the
// messages nums (UIDs when uid, else sequence numbers).
func (s *session) saveResult(nums []uint32, uid bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil {
		return
	}
	var out imap.UIDSet
	for _, n := range nums {
		if uid {
			out.AddNum(imap.UID(n))
		} else if n >= 1 && int(n) <= len(sel.uids) {
			out.AddNum(imap.UID(sel.uids[n-1]))
		}
	}
	sel.searchRes = out
}

// partialOption reads the range after the PARTIAL at list[i] (a RETURN
// option or a FETCH modifier) and returns it with the index of its last
// item; cur is the range already read, which makes a second PARTIAL BAD.
func partialOption(list []wire.Value, i int, cur *partialRange) (*partialRange, int, error) {
	if cur != nil || i+1 == len(list) {
		return nil, i, errBad("PARTIAL takes one range, once")
	}
	r, err := parsePartialRange(list[i+1])
	if err != nil {
		return nil, i, err
	}
	return &r, i + 1, nil
}

// splitPartial takes a PARTIAL modifier out of a FETCH modifier list.
func splitPartial(m wire.Value) (rest wire.Value, r *partialRange, err error) {
	if m.Kind != wire.List || len(m.List) == 0 {
		return m, nil, errBad("FETCH modifiers are a list")
	}
	rest = wire.Value{Kind: wire.List}
	for i := 0; i < len(m.List); i++ {
		v := m.List[i]
		if v.Kind != wire.Atom || !strings.EqualFold(v.Str, "PARTIAL") {
			rest.List = append(rest.List, v)
			continue
		}
		if r, i, err = partialOption(m.List, i, r); err != nil {
			return m, nil, err
		}
	}
	return rest, r, nil
}
