package imapd

import (
	"errors"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// The selected-state writes. Each names messages by UID ranges built from
// the session's view and goes through node/mail, which returns once the
// write is committed and applied here, so the reply can report it. The
// state machine checks that the mailbox belongs to the session's user, so
// a UID is only ever one of the user's own messages.

// checkWrite refuses writes to a read-only selection and on a cut-off node.
func (s *session) checkWrite() error {
	if s.sel == nil {
		return errNoSelectable
	}
	if err := s.writable(); err != nil {
		return err
	}
	if s.sel.readOnly {
		if s.mail.CutOff() {
			return errCutOff
		}
		return errReadOnly
	}
	return nil
}

// uidRanges turns view positions into the command's UID ranges.
func (sel *selected) uidRanges(idx []int) []*commandpb.UIDRange {
	var out []*commandpb.UIDRange
	for _, r := range runs(idx) {
		out = append(out, &commandpb.UIDRange{Start: sel.uids[r[0]], Stop: sel.uids[r[1]]})
	}
	return out
}

// Store implements STORE (RFC 9051 §6.4.6).
func (s *session) store(w fetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	s.touched = true
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWrite(); err != nil {
		return reply(err)
	}
	sel := s.sel
	idx := sel.indices(numSet)
	if len(idx) == 0 {
		return nil
	}
	var op commandpb.FlagOp
	switch flags.Op {
	case imap.StoreFlagsAdd:
		op = commandpb.FlagOp_FLAG_OP_ADD
	case imap.StoreFlagsDel:
		op = commandpb.FlagOp_FLAG_OP_REMOVE
	default:
		op = commandpb.FlagOp_FLAG_OP_REPLACE
	}
	fs := make([]string, len(flags.Flags))
	for i, f := range flags.Flags {
		fs[i] = string(f)
	}
	var unchangedSince uint64
	if options != nil {
		unchangedSince = options.UnchangedSince
	}
	res, err := s.mail.StoreFlags(s.ctx(), s.user.ID, sel.id, sel.uidRanges(idx), op, fs, unchangedSince)
	if err != nil && !(errors.Is(err, mail.ErrModified) && res != nil) {
		return reply(err)
	}
	// UNCHANGEDSINCE (RFC 7162 §3.1.3): messages changed since are left
	// alone and named in OK [MODIFIED set].
	var modified imap.NumSet
	if len(res.GetModified()) > 0 {
		_, isUID := numSet.(imap.UIDSet)
		var uids imap.UIDSet
		var seqs imap.SeqSet
		for _, u := range res.GetModified() {
			uids.AddNum(imap.UID(u))
			if i, ok := sel.index(u); ok {
				seqs.AddNum(uint32(i + 1))
			}
		}
		modified = seqs
		if isUID {
			modified = uids
		}
	}
	// Read back the flags: the reply (unless .SILENT) reports them, and the
	// modseq of each marks the change as this session's own, so the next
	// poll does not report it again.
	_, isUID := numSet.(imap.UIDSet)
	msgs, err := s.readMessages(idx)
	if err != nil {
		return reply(err)
	}
	if sel.own == nil {
		sel.own = map[uint32]uint64{}
	}
	for _, m := range msgs {
		sel.own[m.msg.Uid] = m.msg.Modseq
		sel.noteFlags(m.msg.Flags)
	}
	done := func() error {
		if modified != nil {
			return okWith{"MODIFIED " + modified.String(), "Conditional STORE failed for some messages"}
		}
		return nil
	}
	if flags.Silent && !s.condstore {
		return done()
	}
	s.corkOn()
	defer s.corkOff()
	for _, m := range msgs {
		// With CONDSTORE even .SILENT reports the new MODSEQ (RFC 7162
		// §3.1.3), with the UID (§3.2).
		rw := w.CreateMessage(m.seq)
		if isUID || s.condstore {
			rw.WriteUID(imap.UID(m.msg.Uid))
		}
		if !flags.Silent {
			rw.WriteFlags(sel.flagsOf(m.msg.Uid, m.msg.Flags))
		}
		if s.condstore {
			rw.WriteModSeq(m.msg.Modseq)
		}
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return done()
}

// Copy implements COPY with COPYUID (RFC 9051 §6.4.7, RFC 4315).
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	s.touched = true
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return nil, reply(errNoSelectable)
	}
	if err := s.writable(); err != nil {
		return nil, reply(err)
	}
	dst, err := s.lookupNow(dest)
	if errors.Is(err, errNoMailbox) {
		return nil, tryCreate
	} else if err != nil {
		return nil, reply(err)
	}
	idx := s.sel.indices(numSet)
	if len(idx) == 0 {
		return nil, nil
	}
	res, err := s.mail.Copy(s.ctx(), s.user.ID, s.sel.id, s.sel.uidRanges(idx), dst.Id)
	if err != nil {
		return nil, reply(err)
	}
	return copyData(res, dst), nil
}

func copyData(res *commandpb.Result, dst *storagepb.Mailbox) *imap.CopyData {
	if len(res.Uids) == 0 || len(res.Uids) != len(res.SrcUids) {
		return nil
	}
	d := &imap.CopyData{UIDValidity: res.UidValidity}
	if d.UIDValidity == 0 {
		d.UIDValidity = dst.UidValidity
	}
	var src, dstUIDs imap.UIDSet
	for i := range res.Uids {
		src.AddNum(imap.UID(res.SrcUids[i]))
		dstUIDs.AddNum(imap.UID(res.Uids[i]))
	}
	d.SourceUIDs, d.DestUIDs = src, dstUIDs
	return d
}

// Move implements MOVE (RFC 6851): one command copies and expunges.
func (s *session) move(w moveWriter, numSet imap.NumSet, dest string) error {
	s.touched = true
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkWrite(); err != nil {
		return reply(err)
	}
	dst, err := s.lookupNow(dest)
	if errors.Is(err, errNoMailbox) {
		return tryCreate
	} else if err != nil {
		return reply(err)
	}
	idx := s.sel.indices(numSet)
	if len(idx) == 0 {
		return nil
	}
	if dst.Id == s.sel.id {
		return s.moveWithin(w, idx, dst)
	}
	res, err := s.mail.Move(s.ctx(), s.user.ID, s.sel.id, s.sel.uidRanges(idx), dst.Id)
	if err != nil {
		return reply(err)
	}
	if d := copyData(res, dst); d != nil {
		if err := w.WriteCopyData(d); err != nil {
			return err
		}
	}
	gone := make(map[uint32]struct{}, len(res.SrcUids))
	for _, u := range res.SrcUids {
		gone[u] = struct{}{}
	}
	return s.expungeFromView(gone, w.WriteExpunge)
}

// Expunge implements EXPUNGE, UID EXPUNGE (RFC 4315 §2.1) and the
// expunge of CLOSE. On a mailbox opened with EXAMINE it does nothing,
// as CLOSE must (RFC 9051 §6.4.1).
// moveWithin moves messages into the mailbox they are in, as Dovecot does
// (RFC 6851 does not forbid it): new UIDs, EXPUNGE of the old ones, EXISTS
// with the next update. It is COPY, then \Deleted and UID EXPUNGE of the
// sources: three log entries, not one, because the FSM refuses a
// same-mailbox MOVE and changing what an entry does would make nodes of
// two versions apply it differently. If a later step fails the client is
// told NO and sees the copies, as after a COPY.
func (s *session) moveWithin(w moveWriter, idx []int, mb *storagepb.Mailbox) error {
	sel := s.sel
	ranges := sel.uidRanges(idx)
	res, err := s.mail.Copy(s.ctx(), s.user.ID, sel.id, ranges, sel.id)
	if err != nil {
		return reply(err)
	}
	if _, err := s.mail.StoreFlags(s.ctx(), s.user.ID, sel.id, ranges, commandpb.FlagOp_FLAG_OP_ADD, []string{string(imap.FlagDeleted)}, 0); err != nil {
		return reply(err)
	}
	exp, err := s.mail.Expunge(s.ctx(), s.user.ID, sel.id, ranges)
	if err != nil {
		return reply(err)
	}
	if d := copyData(res, mb); d != nil {
		if err := w.WriteCopyData(d); err != nil {
			return err
		}
	}
	gone := make(map[uint32]struct{}, len(exp.Uids))
	for _, u := range exp.Uids {
		gone[u] = struct{}{}
	}
	return s.expungeFromView(gone, w.WriteExpunge)
}

func (s *session) expunge(writeExpunge func(seq uint32) error, uids *imap.UIDSet) error {
	s.touched = true
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sel == nil {
		return reply(errNoSelectable)
	}
	if s.sel.readOnly && !s.mail.CutOff() {
		return nil
	}
	if err := s.checkWrite(); err != nil {
		return reply(err)
	}
	var ranges []*commandpb.UIDRange
	if uids != nil {
		idx := s.sel.indices(*uids)
		if len(idx) == 0 {
			return nil
		}
		ranges = s.sel.uidRanges(idx)
	}
	res, err := s.mail.Expunge(s.ctx(), s.user.ID, s.sel.id, ranges)
	if err != nil {
		return reply(err)
	}
	gone := make(map[uint32]struct{}, len(res.Uids))
	for _, u := range res.Uids {
		gone[u] = struct{}{}
	}
	return s.expungeFromView(gone, writeExpunge)
}

func (s *session) corkOn() {
	if s.cork != nil {
		s.cork.cork()
	}
}

func (s *session) corkOff() {
	if s.cork != nil {
		s.cork.uncork()
	}
}
