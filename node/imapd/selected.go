package imapd

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// selected is a session's view of its selected mailbox. Message sequence
// numbers (RFC 9051 §2.3.1.2) are positions in uids, the UIDs the client
// has been told about; uids changes only when this session sends EXISTS
// or EXPUNGE, so the client's numbering and ours never disagree.
//
// What changed since the view was last brought up to date is read from
// the mailbox's modseq index (mail.View.Changes above modseq): every
// flag change, arrival and expunge has an entry there, written by the same
// apply on every node. The change feed only says when to look, so a feed
// overflow loses nothing.
type selected struct {
	id          uint64
	name        string
	uidValidity uint32
	readOnly    bool // EXAMINE, or SELECT on a cut-off node
	uids        []uint32
	modseq      uint64              // changes up to here are reflected
	expunged    map[uint32]struct{} // in uids, gone, EXPUNGE not yet sent
	own         map[uint32]uint64   // UID → MODSEQ of this session's own flag change, already reported
	sub         *mail.Subscription
	searchRes   imap.UIDSet
	// keywords are those the client has been told of in FLAGS; a flag
	// change or arrival that brings a new one sets newKeyword, and the
	// next update sends FLAGS again (RFC 9051 §7.3.5).
	keywords   map[string]struct{}
	newKeyword bool
	// recent holds, for an IMAP4rev1 session, the UIDs that are \Recent
	// to it: those announced by EXISTS while it had the mailbox selected
	// (docs/notes/imap-server.md, "\Recent").
	recent map[uint32]struct{}
}

// flagsOf is a message's flags as this session shows them: the stored
// ones, plus \Recent where the rule gives it.
func (sel *selected) flagsOf(uid uint32, stored []string) []imap.Flag {
	fs := imapFlags(stored)
	if _, ok := sel.recent[uid]; ok {
		fs = append(fs, `\Recent`)
	}
	return fs
}

// noteFlags records a message's flags and reports whether they hold a
// keyword the client has not been told of.
func (sel *selected) noteFlags(fs []string) {
	for _, f := range fs {
		if strings.HasPrefix(f, `\`) {
			continue
		}
		if _, ok := sel.keywords[f]; !ok {
			sel.keywords[f] = struct{}{}
			sel.newKeyword = true
		}
	}
}

// mailboxFlags is the FLAGS list: the system flags and every keyword in
// use, sorted.
func (sel *selected) mailboxFlags() []imap.Flag {
	flags := slices.Clone(systemFlags)
	for k := range sel.keywords {
		flags = append(flags, imap.Flag(k))
	}
	sort.Slice(flags[len(systemFlags):], func(i, j int) bool {
		return flags[len(systemFlags)+i] < flags[len(systemFlags)+j]
	})
	return flags
}

var systemFlags = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

// Select implements SELECT and EXAMINE (RFC 9051 §6.3.2, §6.3.3) after the
// read-index wait. On a node cut off from the cluster the mailbox is
// served from the local replica, read-only: go-imap sends [READ-ONLY] only
// for EXAMINE, so SELECT there answers with empty PERMANENTFLAGS and every
// write is refused with NO [UNAVAILABLE].
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.touched = true
	s.mu.Lock()
	s.unselectLocked()
	s.mu.Unlock()

	cutOff, err := s.catchUp()
	if err != nil {
		return nil, reply(err)
	}
	// Subscribe before reading, so no change falls between the two.
	sub := s.mail.Feed().Subscribe(s.user.ID)
	v := s.mail.View()
	mb, err := s.lookup(v, name)
	if err != nil {
		v.Close()
		sub.Cancel()
		return nil, reply(err)
	}
	sel := &selected{
		id: mb.Id, name: mb.Name, uidValidity: mb.UidValidity, modseq: mb.HighestModseq,
		readOnly: options.ReadOnly || cutOff, sub: sub,
		uids: make([]uint32, 0, mb.Messages),
	}
	keywords := map[string]struct{}{}
	var firstUnseen uint32
	err = v.Messages(mb.Id, 1, 0, func(m *storagepb.Message) error {
		sel.uids = append(sel.uids, m.Uid)
		if firstUnseen == 0 && !hasFlag(m.Flags, string(imap.FlagSeen)) {
			firstUnseen = uint32(len(sel.uids))
		}
		for _, f := range m.Flags {
			if !strings.HasPrefix(f, `\`) {
				keywords[f] = struct{}{}
			}
		}
		return nil
	})
	v.Close()
	if err != nil {
		sub.Cancel()
		return nil, reply(err)
	}
	sel.keywords = keywords
	flags := sel.mailboxFlags()
	var permanent []imap.Flag
	if !sel.readOnly {
		permanent = append(slices.Clone(flags), imap.FlagWildcard)
	}
	s.mu.Lock()
	s.sel = sel
	s.mu.Unlock()
	return &imap.SelectData{
		Flags:             flags,
		PermanentFlags:    permanent,
		NumMessages:       uint32(len(sel.uids)),
		FirstUnseenSeqNum: firstUnseen,
		UIDNext:           imap.UID(mb.UidNext),
		UIDValidity:       mb.UidValidity,
		HighestModSeq:     mb.HighestModseq,
	}, nil
}

func (s *session) Unselect() error {
	s.touched = true
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unselectLocked()
	return nil
}

func (s *session) unselectLocked() {
	if s.sel != nil {
		s.sel.sub.Cancel()
		s.sel = nil
	}
}

// Poll runs after every command: it reports what changed in the selected
// mailbox (RFC 9051 §7: EXPUNGE only where allowed, §7.4.1). After NOOP
// and CHECK it first does the read-index wait.
func (s *session) poll(w updateWriter, allowExpunge bool) error {
	noop := !s.touched
	s.touched = false
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return nil
	}
	if noop && allowExpunge {
		s.mu.Unlock()
		_, err := s.catchUp()
		s.mu.Lock()
		if err != nil {
			return reply(err)
		}
		if s.sel == nil {
			return nil
		}
	}
	drain(s.sel.sub)
	return s.updateLocked(w, allowExpunge)
}

func drain(sub *mail.Subscription) {
	for {
		select {
		case _, ok := <-sub.C:
			if !ok {
				return
			}
		default:
			sub.Overflowed()
			return
		}
	}
}

// updateLocked brings the view up to date and tells the client: EXPUNGE
// (when allowed), then EXISTS, then FETCH FLAGS of changed messages.
func (s *session) updateLocked(w updateWriter, allowExpunge bool) error {
	sel := s.sel
	var (
		added   []uint32
		changed []uint32
		flags   = map[uint32][]string{}
		modseqs = map[uint32]uint64{}
	)
	last := uint32(0)
	if len(sel.uids) > 0 {
		last = sel.uids[len(sel.uids)-1]
	}
	newModSeq := sel.modseq
	v := s.mail.View()
	err := v.Changes(sel.id, sel.modseq, func(modseq uint64, e *storagepb.ModSeqEntry) error {
		newModSeq = max(newModSeq, modseq)
		switch {
		case e.Expunged:
			if _, ok := sel.index(e.Uid); ok {
				if sel.expunged == nil {
					sel.expunged = map[uint32]struct{}{}
				}
				sel.expunged[e.Uid] = struct{}{}
			}
		case e.Uid > last:
			added = append(added, e.Uid)
		default:
			if _, ok := sel.index(e.Uid); ok && sel.own[e.Uid] != modseq {
				changed = append(changed, e.Uid)
			}
		}
		return nil
	})
	if err == nil {
		for _, uid := range changed {
			m, gerr := v.Message(sel.id, uid)
			if gerr == nil {
				flags[uid] = m.Flags
				modseqs[uid] = m.Modseq
				sel.noteFlags(m.Flags)
			}
		}
		for _, uid := range added {
			if m, gerr := v.Message(sel.id, uid); gerr == nil {
				sel.noteFlags(m.Flags)
			}
		}
	}
	v.Close()
	if err != nil {
		return reply(err)
	}
	sel.modseq = newModSeq
	sel.own = nil

	if sel.newKeyword {
		// go-imap can send FLAGS here but not PERMANENTFLAGS, which stays
		// "\*" (any keyword may be created).
		if err := w.WriteMailboxFlags(sel.mailboxFlags()); err != nil {
			return err
		}
		sel.newKeyword = false
	}

	if allowExpunge && len(sel.expunged) > 0 {
		if err := s.expungeFromView(sel.expunged, w.WriteExpunge); err != nil {
			return err
		}
		sel.expunged = nil
	}
	if len(added) > 0 {
		slices.Sort(added)
		added = slices.Compact(added)
		sel.uids = append(sel.uids, added...)
		if err := w.WriteNumMessages(uint32(len(sel.uids))); err != nil {
			return err
		}
		if !s.rev2 {
			if sel.recent == nil {
				sel.recent = map[uint32]struct{}{}
			}
			for _, u := range added {
				sel.recent[u] = struct{}{}
			}
			if err := w.WriteNumRecent(uint32(len(sel.recent))); err != nil {
				return err
			}
		}
	}
	for _, uid := range changed {
		f, ok := flags[uid]
		if !ok {
			continue
		}
		if _, gone := sel.expunged[uid]; gone {
			continue
		}
		i, ok := sel.index(uid)
		if !ok {
			continue
		}
		var ms uint64
		if s.condstore {
			ms = modseqs[uid]
		}
		if err := w.WriteMessageFlags(uint32(i+1), imap.UID(uid), sel.flagsOf(uid, f), ms); err != nil {
			return err
		}
	}
	return nil
}

// expungeFromView removes UIDs from the view, reporting each one's
// sequence number, highest first so that the numbers sent stay valid.
func (s *session) expungeFromView(uids map[uint32]struct{}, write func(seq uint32) error) error {
	if s.vanished != nil {
		return s.vanishFromView(uids) // QRESYNC
	}
	sel := s.sel
	var idx []int
	for uid := range uids {
		if i, ok := sel.index(uid); ok {
			idx = append(idx, i)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(idx)))
	for _, i := range idx {
		if err := write(uint32(i + 1)); err != nil {
			return err
		}
	}
	sel.uids = slices.DeleteFunc(sel.uids, func(u uint32) bool { _, ok := uids[u]; return ok })
	for uid := range uids {
		delete(sel.expunged, uid)
	}
	return nil
}

// Idle implements IDLE (RFC 2177, RFC 9051 §6.3.13): it waits on the
// node's change feed, fed by this node's apply of every entry wherever it
// was proposed, so a message delivered through any node is announced here.
// After Options.IdleTimeout it logs the client out.
func (s *session) idle(w updateWriter, stop <-chan struct{}) error {
	s.touched = true
	timer := time.NewTimer(s.srv.opts.IdleTimeout)
	defer timer.Stop()

	s.mu.Lock()
	if s.sel == nil {
		s.mu.Unlock()
		// Nothing to report outside a mailbox; wait for DONE or the timeout.
		select {
		case <-stop:
		case <-timer.C:
			s.bye("Autologout; idle for too long")
		}
		return nil
	}
	sub := s.sel.sub
	events := sub.C
	drain(sub)
	if err := s.updateLocked(w, true); err != nil {
		s.mu.Unlock()
		return err
	}
	s.mu.Unlock()

	for {
		select {
		case <-stop:
			return nil
		case <-timer.C:
			s.srv.log.Debug("idle timeout", "remote", s.remote)
			s.bye("Autologout; idle for too long")
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			s.mu.Lock()
			if s.sel == nil || s.sel.sub != sub {
				s.mu.Unlock()
				return nil
			}
			relevant := ev.MailboxID == s.sel.id
			// Take whatever else is queued, so a burst is one update.
			for more := true; more; {
				select {
				case ev, ok := <-events:
					if !ok {
						more = false
					} else if ev.MailboxID == s.sel.id {
						relevant = true
					}
				default:
					more = false
				}
			}
			if sub.Overflowed() {
				relevant = true
			}
			var err error
			if relevant {
				err = s.updateLocked(w, true)
			}
			s.mu.Unlock()
			if err != nil {
				return err
			}
		}
	}
}

// index returns the position of uid in the view.
func (sel *selected) index(uid uint32) (int, bool) {
	return slices.BinarySearch(sel.uids, uid)
}

// indices resolves a sequence or UID set against the view: ascending,
// unique positions. "*" is the last message the client knows (RFC 9051
// §6.4.8), "$" the saved search result (RFC 5182).
func (sel *selected) indices(numSet imap.NumSet) []int {
	if imap.IsSearchRes(numSet) {
		numSet = sel.searchRes
	}
	n := len(sel.uids)
	var out []int
	switch set := numSet.(type) {
	case imap.SeqSet:
		for _, r := range set {
			start, stop := r.Start, r.Stop
			if start == 0 {
				start = uint32(n)
			}
			if stop == 0 {
				stop = uint32(n)
			}
			if start > stop {
				start, stop = stop, start
			}
			if start == 0 {
				start = 1
			}
			for q := start; q <= stop && int(q) <= n; q++ {
				out = append(out, int(q-1))
			}
		}
	case imap.UIDSet:
		if n == 0 {
			return nil
		}
		maxUID := sel.uids[n-1]
		for _, r := range set {
			start, stop := uint32(r.Start), uint32(r.Stop)
			if start == 0 {
				start = maxUID
			}
			if stop == 0 {
				stop = maxUID
			}
			if start > stop {
				start, stop = stop, start
			}
			lo, _ := slices.BinarySearch(sel.uids, start)
			hi, _ := slices.BinarySearch(sel.uids, stop+1)
			if stop == ^uint32(0) {
				hi = n
			}
			for i := lo; i < hi; i++ {
				out = append(out, i)
			}
		}
	}
	if len(out) > 1 && !sort.IntsAreSorted(out) {
		slices.Sort(out)
	}
	return slices.Compact(out)
}

// runs splits ascending view positions into runs of adjacent positions:
// each run is one UID range holding exactly those of the view's messages
// (between two adjacent view UIDs there is nothing but expunged ones).
func runs(idx []int) [][2]int {
	var out [][2]int
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && idx[j+1] == idx[j]+1 {
			j++
		}
		out = append(out, [2]int{idx[i], idx[j]})
		i = j + 1
	}
	return out
}

func imapFlags(fs []string) []imap.Flag {
	out := make([]imap.Flag, len(fs))
	for i, f := range fs {
		out[i] = imap.Flag(f)
	}
	return out
}
