package imapd

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/imapd/wire"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// QRESYNC (RFC 7162 §3.2) on top of CONDSTORE.
//
// Every flag change, arrival and expunge has an entry in the mailbox's
// modseq index at the MODSEQ the log gave it, the same on every node; an
// expunge leaves a tombstone (storagepb.ModSeqEntry.expunged) that is
// never removed while the mailbox lives. So VANISHED (EARLIER) is exact
// for any MODSEQ a client brings back, and the seq-match-data of a QRESYNC
// SELECT (a hint for servers that forget expunges) is checked for syntax
// and not needed.
//
// Once ENABLE QRESYNC is given, every expunge the session reports is an
// untagged VANISHED of UIDs instead of EXPUNGE of sequence numbers
// (session.vanished, used by expungeFromView).

// qresyncParams is the QRESYNC parameter of SELECT/EXAMINE:
// (uidvalidity modseq [known-uids [seq-match-data]]).
type qresyncParams struct {
	uidValidity uint32
	modseq      uint64
	known       imap.UIDSet // nil: every UID
}

// enableQresync turns QRESYNC (and with it CONDSTORE) on for the session;
// it reports whether it was off.
func (c *conn) enableQresync() bool {
	c.enableCondstore()
	if c.s.vanished != nil {
		return false
	}
	c.s.vanished = func(uids imap.UIDSet) error {
		c.w.Raw("* VANISHED ").Raw(uids.String()).CRLF()
		// Flushed at once: during IDLE nothing else may follow to
		// carry it out.
		return c.w.Flush()
	}
	return true
}

// selectParams parses the parameter list of SELECT/EXAMINE: CONDSTORE
// (RFC 7162 §3.1.8) and QRESYNC (§3.2.5). QRESYNC without ENABLE QRESYNC
// first is BAD (§3.2.5).
func (c *conn) selectParams(p wire.Value) (*qresyncParams, error) {
	if p.Kind != wire.List || len(p.List) == 0 {
		return nil, errBad("SELECT parameters are a list")
	}
	var q *qresyncParams
	for i := 0; i < len(p.List); i++ {
		v := p.List[i]
		switch {
		case v.Kind == wire.Atom && strings.EqualFold(v.Str, "CONDSTORE"):
			c.enableCondstore()
		case v.Kind == wire.Atom && strings.EqualFold(v.Str, "QRESYNC") && q == nil:
			if c.s.vanished == nil {
				return nil, errBad("QRESYNC parameter without ENABLE QRESYNC")
			}
			if i+1 >= len(p.List) {
				return nil, errBad("QRESYNC needs (uidvalidity modseq [known-uids [seq-match-data]])")
			}
			i++
			var err error
			if q, err = parseQresync(p.List[i]); err != nil {
				return nil, err
			}
		default:
			return nil, errBad("Unknown SELECT parameter")
		}
	}
	return q, nil
}

func parseQresync(v wire.Value) (*qresyncParams, error) {
	bad := errBad("QRESYNC takes (uidvalidity modseq [known-uids [(known-sequence-set known-uid-set)]])")
	if v.Kind != wire.List || len(v.List) < 2 || len(v.List) > 4 {
		return nil, bad
	}
	l := v.List
	for _, x := range l[:2] {
		if x.Kind != wire.Atom || x.HasSection {
			return nil, bad
		}
	}
	uv, err := strconv.ParseUint(l[0].Str, 10, 32)
	if err != nil || uv == 0 {
		return nil, errBad("Bad UIDVALIDITY in QRESYNC")
	}
	ms, err := strconv.ParseUint(l[1].Str, 10, 63)
	if err != nil || ms == 0 {
		return nil, errBad("Bad mod-sequence in QRESYNC")
	}
	q := &qresyncParams{uidValidity: uint32(uv), modseq: ms}
	rest := l[2:]
	if len(rest) > 0 && rest[0].Kind == wire.Atom {
		set, err := numSetArg(rest[0], true)
		if err != nil || imap.IsSearchRes(set) {
			return nil, errBad("Bad known-uids in QRESYNC")
		}
		q.known = set.(imap.UIDSet)
		rest = rest[1:]
	}
	if len(rest) > 0 {
		// seq-match-data: two sets of equal size; checked, not needed.
		m := rest[0]
		if len(rest) != 1 || m.Kind != wire.List || len(m.List) != 2 {
			return nil, bad
		}
		seqs, err1 := numSetArg(m.List[0], false)
		uids, err2 := numSetArg(m.List[1], true)
		if err1 != nil || err2 != nil || imap.IsSearchRes(seqs) || imap.IsSearchRes(uids) {
			return nil, errBad("Bad seq-match-data in QRESYNC")
		}
		if len(numsOf(seqs)) != len(numsOf(uids)) {
			return nil, errBad("seq-match-data: the two sets differ in size")
		}
	}
	return q, nil
}

// inUIDSet reports whether uid is in set, "*" being the largest UID and
// a range's ends in either order (RFC 9051 §9, seq-range).
func inUIDSet(set imap.UIDSet, uid uint32) bool {
	for _, r := range set {
		a, b := uint32(r.Start), uint32(r.Stop)
		if a == 0 {
			a = math.MaxUint32
		}
		if b == 0 {
			b = math.MaxUint32
		}
		if a > b {
			a, b = b, a
		}
		if a <= uid && uid <= b {
			return true
		}
	}
	return false
}

// changesSince reads the modseq index of the selected mailbox above
// since: the expunged UIDs in set (nil: any) that the session's view no
// longer holds, ascending, and the view's messages changed or added above
// since, ascending by UID. A UID still in the view whose tombstone is
// there is reported by the next update as VANISHED, not here (VANISHED
// (EARLIER) does not renumber, RFC 7162 §3.2.10).
func (s *session) changesSince(since uint64, set imap.UIDSet) (vanished []uint32, changed []*storagepb.Message, err error) {
	sel := s.sel
	v := s.mail.View()
	defer v.Close()
	var live []uint32
	err = v.Changes(sel.id, since, func(_ uint64, e *storagepb.ModSeqEntry) error {
		if set != nil && !inUIDSet(set, e.Uid) {
			return nil
		}
		_, inView := sel.index(e.Uid)
		switch {
		case e.Expunged && !inView:
			vanished = append(vanished, e.Uid)
		case !e.Expunged && inView:
			live = append(live, e.Uid)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(vanished)
	slices.Sort(live)
	for _, uid := range live {
		m, gerr := v.Message(sel.id, uid)
		if gerr != nil {
			continue // expunged since: the next update says so
		}
		changed = append(changed, m)
	}
	return vanished, changed, nil
}

// writeVanishedEarlier sends "* VANISHED (EARLIER) uids" when there are any.
func (c *conn) writeVanishedEarlier(uids []uint32) {
	if len(uids) == 0 {
		return
	}
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	c.w.Raw("* VANISHED (EARLIER) ").Raw(set.String()).CRLF()
}

// qresyncSelect ends a SELECT/EXAMINE with the QRESYNC parameter (RFC 7162
// §3.2.5.2): if the client's UIDVALIDITY is the mailbox's, the UIDs
// expunged since its MODSEQ (among its known UIDs) as VANISHED (EARLIER),
// then a FETCH (UID FLAGS MODSEQ) of every message changed since. On a
// UIDVALIDITY mismatch the client must start over and gets neither.
func (c *conn) qresyncSelect(q *qresyncParams) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sel := s.sel
	if sel == nil || q.uidValidity != sel.uidValidity {
		return nil
	}
	vanished, changed, err := s.changesSince(q.modseq, q.known)
	if err != nil {
		return reply(err)
	}
	c.writeVanishedEarlier(vanished)
	for _, m := range changed {
		i, _ := sel.index(m.Uid)
		connUpdates{c: c}.WriteMessageFlags(uint32(i+1), imap.UID(m.Uid), sel.flagsOf(m.Uid, m.Flags), m.Modseq)
	}
	return c.w.Err()
}

// fetchModifiers parses FETCH's modifier list: (CHANGEDSINCE m) of
// CONDSTORE and, for UID FETCH once QRESYNC is on, VANISHED (RFC 7162
// §3.2.6), which needs CHANGEDSINCE.
func (c *conn) fetchModifiers(m wire.Value, uid bool) (changedSince uint64, vanished bool, err error) {
	if m.Kind != wire.List || len(m.List) == 0 {
		return 0, false, errBad("FETCH modifiers are a list")
	}
	hasSince := false
	for i := 0; i < len(m.List); i++ {
		v := m.List[i]
		switch {
		case v.Kind == wire.Atom && strings.EqualFold(v.Str, "CHANGEDSINCE") && !hasSince:
			if i+1 >= len(m.List) {
				return 0, false, errBad("CHANGEDSINCE needs a mod-sequence")
			}
			i++
			n, perr := strconv.ParseUint(m.List[i].Str, 10, 63)
			if perr != nil || m.List[i].Kind != wire.Atom {
				return 0, false, errBad("Bad CHANGEDSINCE value")
			}
			changedSince, hasSince = n, true
		case v.Kind == wire.Atom && strings.EqualFold(v.Str, "VANISHED") && !vanished:
			if !uid {
				return 0, false, errBad("VANISHED is a UID FETCH modifier")
			}
			if c.s.vanished == nil {
				return 0, false, errBad("VANISHED without ENABLE QRESYNC")
			}
			vanished = true
		default:
			return 0, false, errBad("Unknown FETCH modifier")
		}
	}
	if !hasSince {
		// Also VANISHED alone (RFC 7162 §3.2.6: it needs CHANGEDSINCE).
		return 0, false, errBad("FETCH modifiers need CHANGEDSINCE")
	}
	return changedSince, vanished, nil
}

// fetchVanished sends, before the FETCH responses of a UID FETCH (...)
// (CHANGEDSINCE m VANISHED), the UIDs of set expunged since m (RFC 7162
// §3.2.6).
func (c *conn) fetchVanished(set imap.NumSet, since uint64) error {
	uids, ok := set.(imap.UIDSet)
	if !ok {
		return errBad("VANISHED needs a UID set")
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return reply(errNoSelectable)
	}
	vanished, _, err := s.changesSince(since, uids)
	if err != nil {
		return reply(err)
	}
	c.writeVanishedEarlier(vanished)
	return nil
}

// vanishFromView is expungeFromView for a QRESYNC session: one VANISHED
// of the UIDs instead of an EXPUNGE per message.
func (s *session) vanishFromView(uids map[uint32]struct{}) error {
	sel := s.sel
	var set imap.UIDSet
	var list []uint32
	for uid := range uids {
		if _, ok := sel.index(uid); ok {
			list = append(list, uid)
		}
	}
	slices.Sort(list)
	for _, u := range list {
		set.AddNum(imap.UID(u))
	}
	sel.uids = slices.DeleteFunc(sel.uids, func(u uint32) bool { _, ok := uids[u]; return ok })
	for uid := range uids {
		delete(sel.expunged, uid)
	}
	if len(list) == 0 {
		return nil
	}
	return s.vanished(set)
}

// expungeDone completes EXPUNGE and UID EXPUNGE. With CONDSTORE on, the
// tagged OK carries HIGHESTMODSEQ (RFC 7162 response code; Dovecot sends
// it too): the update is sent first, so every change up to that MODSEQ
// has been reported to the client.
func (c *conn) expungeDone(cmd *wire.Command) error {
	if !c.s.condstore {
		return nil
	}
	c.update(cmd)
	c.s.mu.Lock()
	var modseq uint64
	if c.s.sel != nil {
		modseq = c.s.sel.modseq
	}
	c.s.mu.Unlock()
	c.w.Status(cmd.Tag, "OK", "HIGHESTMODSEQ "+strconv.FormatUint(modseq, 10), cmd.Name+" completed")
	return errDone
}
