package imapd

import (
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/loginguard"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/raftfsm/canon"
)

// session is one IMAP connection's state above the protocol: the user and
// the selected mailbox. conn.go calls its methods from the connection's
// goroutine one at a time; during IDLE a second goroutine reads DONE and
// only closes the stop channel. mu guards sel.
type session struct {
	srv    *Server
	mail   *mail.Service
	bye    func(text string) // says BYE and closes the connection
	cork   *corkConn
	remote string // client IP, the key of the login throttle

	user *mail.User
	// rev2 is set by ENABLE IMAP4rev2; a rev1 session sees \Recent.
	rev2 bool
	// condstore is set once the client uses CONDSTORE (RFC 7162 §3.1):
	// from then on every FETCH of flags carries MODSEQ.
	condstore bool
	// vanished is set by ENABLE QRESYNC (conn_qresync.go): expunges are
	// then reported as VANISHED of UIDs.
	vanished func(uids imap.UIDSet) error

	// touched is set by every session method; Poll finding it unset knows
	// the command was NOOP or CHECK, which must catch up (read-index).
	touched bool

	mu  sync.Mutex
	sel *selected
}

func (s *session) ctx() context.Context { return s.srv.ctx }

func (s *session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unselectLocked()
	return nil
}

// Login checks a password (RFC 9051 §6.2.3) through the node's login
// guard: throttled per client address across the cluster, and bounded in
// the checks in flight (node/loginguard).
func (s *session) Login(username, password string) error {
	var u *mail.User
	var authErr error
	err := s.srv.logins.Attempt(s.ctx(), s.remote, func() loginguard.Outcome {
		u, authErr = s.mail.Authenticate(s.ctx(), username, password)
		switch {
		case authErr == nil:
			return loginguard.Success
		case errors.Is(authErr, mail.ErrAuthFailed):
			return loginguard.Wrong
		}
		return loginguard.Unknown
	})
	switch {
	case errors.Is(err, loginguard.ErrThrottled):
		s.srv.log.Info("login refused: too many failures", "remote", s.remote)
		return reply(errThrottled)
	case err != nil:
		return reply(mail.ErrUnavailable)
	case authErr != nil:
		if errors.Is(authErr, mail.ErrAuthFailed) {
			s.srv.log.Info("login failed", "remote", s.remote)
		}
		return reply(authErr)
	}
	s.user = u
	return nil
}

func (s *session) Unauthenticate() error {
	s.mu.Lock()
	s.unselectLocked()
	s.mu.Unlock()
	s.user = nil
	return nil
}

func (s *session) AppendLimit() uint32 {
	return uint32(min(s.mail.MaxMessageBytes(), math.MaxUint32))
}

// catchUp is the read-index wait before SELECT, EXAMINE, STATUS and NOOP:
// this node applies everything the leader had committed, so a client that
// moves between nodes never sees time go backwards. It reports whether
// the node is cut off, in which case the local replica is served
// read-only (docs/ARCHITECTURE.md §1).
func (s *session) catchUp() (cutOff bool, err error) {
	if s.mail.CutOff() {
		return true, nil
	}
	if err := s.mail.Sync(s.ctx()); err != nil {
		if errors.Is(err, mail.ErrUnavailable) {
			return true, nil
		}
		return false, err
	}
	return false, nil
}

// writable refuses a write up front on a node that is cut off, so the
// client hears NO [UNAVAILABLE] at once rather than after a timeout.
func (s *session) writable() error {
	if s.mail.CutOff() {
		return errCutOff
	}
	return nil
}

// lookup finds one of the session user's mailboxes. Every name resolves
// inside the user's own namespace, so no spelling reaches another user's
// mailbox: names that are not valid are simply not found.
func (s *session) lookup(v *mail.View, name string) (*storagepb.Mailbox, error) {
	n, ok := normalizeName(name)
	if !ok {
		return nil, errNoMailbox
	}
	mb, err := v.Mailbox(s.user.ID, n)
	if errors.Is(err, mail.ErrNotFound) {
		return nil, errNoMailbox
	}
	return mb, err
}

func (s *session) lookupNow(name string) (*storagepb.Mailbox, error) {
	v := s.mail.View()
	defer v.Close()
	return s.lookup(v, name)
}

// tryCreate is the reply for a missing APPEND/COPY/MOVE destination
// (RFC 9051 §6.3.12).
var tryCreate = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}

func (s *session) Create(name string, options *imap.CreateOptions) error {
	s.touched = true
	if err := s.writable(); err != nil {
		return reply(err)
	}
	name = strings.TrimSuffix(name, "/")
	n, ok := normalizeName(name)
	if !ok {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Invalid mailbox name"}
	}
	use := ""
	if options != nil && len(options.SpecialUse) > 0 {
		if len(options.SpecialUse) > 1 {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "One special use per mailbox"}
		}
		use = string(options.SpecialUse[0])
	}
	return reply(s.mail.CreateMailbox(s.ctx(), s.user.ID, n, use))
}

func (s *session) Delete(name string) error {
	s.touched = true
	if err := s.writable(); err != nil {
		return reply(err)
	}
	n, ok := normalizeName(name)
	if !ok {
		return reply(errNoMailbox)
	}
	return reply(s.mail.DeleteMailbox(s.ctx(), s.user.ID, n))
}

func (s *session) Rename(from, to string, _ *imap.RenameOptions) error {
	s.touched = true
	if err := s.writable(); err != nil {
		return reply(err)
	}
	f, ok := normalizeName(from)
	if !ok {
		return reply(errNoMailbox)
	}
	t, ok := normalizeName(strings.TrimSuffix(to, "/"))
	if !ok {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Invalid mailbox name"}
	}
	return reply(s.mail.RenameMailbox(s.ctx(), s.user.ID, f, t))
}

func (s *session) Subscribe(name string) error   { return s.subscribe(name, true) }
func (s *session) Unsubscribe(name string) error { return s.subscribe(name, false) }

func (s *session) subscribe(name string, on bool) error {
	s.touched = true
	if err := s.writable(); err != nil {
		return reply(err)
	}
	n, ok := normalizeName(name)
	if !ok {
		return reply(errNoMailbox)
	}
	return reply(s.mail.SetSubscribed(s.ctx(), s.user.ID, n, on))
}

func (s *session) Namespace() (*imap.NamespaceData, error) {
	s.touched = true
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: '/'}}}, nil
}

// Status implements STATUS (RFC 9051 §6.3.11) from the mailbox record,
// after the read-index wait.
func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	s.touched = true
	if _, err := s.catchUp(); err != nil {
		return nil, reply(err)
	}
	v := s.mail.View()
	defer v.Close()
	mb, err := s.lookup(v, name)
	if err != nil {
		return nil, reply(err)
	}
	data, err := s.statusData(v, mb, options)
	if err != nil {
		return nil, reply(err)
	}
	data.Mailbox = name
	return data, nil
}

func (s *session) statusData(v *mail.View, mb *storagepb.Mailbox, options *imap.StatusOptions) (*imap.StatusData, error) {
	data := &imap.StatusData{Mailbox: mb.Name}
	if options.NumMessages {
		n := mb.Messages
		data.NumMessages = &n
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(mb.UidNext)
	}
	if options.UIDValidity {
		data.UIDValidity = mb.UidValidity
	}
	if options.NumUnseen {
		n := mb.Unseen
		data.NumUnseen = &n
	}
	if options.NumRecent {
		n := uint32(0)
		data.NumRecent = &n
	}
	if options.Size {
		n := int64(min(mb.Size, math.MaxInt64))
		data.Size = &n
	}
	if options.AppendLimit {
		n := s.AppendLimit()
		data.AppendLimit = &n
	}
	if options.HighestModSeq {
		data.HighestModSeq = mb.HighestModseq
	}
	if options.NumDeleted {
		var n uint32
		err := v.Messages(mb.Id, 1, 0, func(m *storagepb.Message) error {
			if hasFlag(m.Flags, string(imap.FlagDeleted)) {
				n++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		data.NumDeleted = &n
	}
	return data, nil
}

// listData is LIST's answer (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258,
// LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154), one entry per matching
// mailbox.
func (s *session) listData(ref string, patterns []string, options *imap.ListOptions) ([]*imap.ListData, error) {
	s.touched = true
	if len(patterns) == 0 || len(patterns) == 1 && patterns[0] == "" {
		// RFC 9051 §6.3.9: the hierarchy delimiter and root name.
		return []*imap.ListData{{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: '/', Mailbox: ""}}, nil
	}
	v := s.mail.View()
	defer v.Close()
	boxes, err := v.Mailboxes(s.user.ID)
	if err != nil {
		return nil, reply(err)
	}
	names := make(map[string]bool, len(boxes))
	for _, b := range boxes {
		names[b.Name] = true
	}
	sort.Slice(boxes, func(i, j int) bool { return boxes[i].Name < boxes[j].Name })
	var out []*imap.ListData
	for _, b := range boxes {
		match := false
		for _, p := range patterns {
			if matchList(b.Name, ref, p) || (b.Name == "INBOX" && matchList("INBOX", strings.ToUpper(ref), strings.ToUpper(p))) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		if options.SelectSubscribed && !b.Subscribed {
			continue
		}
		if options.SelectSpecialUse && b.SpecialUse == "" {
			continue
		}
		d := &imap.ListData{Delim: '/', Mailbox: b.Name}
		if hasChildren(names, b.Name) {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasChildren)
		} else {
			d.Attrs = append(d.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if b.Subscribed && (options.SelectSubscribed || options.ReturnSubscribed) {
			d.Attrs = append(d.Attrs, imap.MailboxAttrSubscribed)
		}
		if b.SpecialUse != "" {
			d.Attrs = append(d.Attrs, imap.MailboxAttr(b.SpecialUse))
		}
		if options.ReturnStatus != nil {
			if d.Status, err = s.statusData(v, b, options.ReturnStatus); err != nil {
				return nil, reply(err)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func hasChildren(names map[string]bool, name string) bool {
	prefix := name + "/"
	for n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// Append implements APPEND (RFC 9051 §6.3.12) with APPENDUID (RFC 4315).
// go-imap has already refused a literal over AppendLimit with NO [TOOBIG]
// before sending the continuation.
func (s *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (_ *imap.AppendData, err error) {
	defer func() { s.srv.countAppend(err) }()
	s.touched = true
	if err := s.writable(); err != nil {
		return nil, reply(err)
	}
	mb, err := s.lookupNow(name)
	if errors.Is(err, errNoMailbox) {
		return nil, tryCreate
	} else if err != nil {
		return nil, reply(err)
	}
	if r.Size() > s.mail.MaxMessageBytes() {
		return nil, reply(mail.ErrTooBig)
	}
	flags := make([]string, len(options.Flags))
	for i, f := range options.Flags {
		flags[i] = string(f)
	}
	var res *commandpb.Result
	if r.Size() > mail.ChunkBytes {
		// A large literal goes to a spool file as it arrives, not to
		// memory (node/mail proposes it in chunks).
		sp, ok := spooled(r) // already spooled by appendCmd (conn_multiappend.go)
		if !ok {
			var serr error
			if sp, serr = mail.NewSpool(""); serr != nil {
				return nil, reply(serr)
			}
			defer sp.Close()
			if _, err := io.Copy(sp, io.LimitReader(r, r.Size())); err != nil {
				return nil, err
			}
		}
		res, err = s.mail.AppendSpool(s.ctx(), s.user.ID, mb.Id, flags, options.Time, sp)
	} else {
		data := make([]byte, r.Size())
		if _, err := io.ReadFull(r, data); err != nil {
			return nil, err
		}
		res, err = s.mail.Append(s.ctx(), s.user.ID, mb.Id, flags, options.Time, data)
	}
	if err != nil {
		return nil, reply(err)
	}
	if len(res.Uids) != 1 {
		return nil, nil
	}
	return &imap.AppendData{UIDValidity: res.UidValidity, UID: imap.UID(res.Uids[0])}, nil
}

func hasFlag(flags []string, f string) bool {
	return slices.ContainsFunc(flags, func(x string) bool { return strings.EqualFold(x, f) })
}

// normalizeName maps a client's mailbox name to the stored form ("/"
// separated, INBOX upper-case in any case, RFC 9051 §5.1) by raftfsm's
// own rule (raftfsm/canon), so a name imapd accepts is one the state
// machine accepts; false means such a mailbox cannot exist.
func normalizeName(s string) (string, bool) {
	n, err := canon.MailboxName(s)
	return n, err == nil
}

// matchList reports whether a mailbox name matches a LIST reference and
// pattern (RFC 9051 §6.3.9): "*" matches any run of characters, "%" any
// run without the "/" delimiter. The reference is prefixed to the pattern
// unless the pattern starts with the delimiter. The match is a table over
// positions, so no pattern takes exponential time.
func matchList(name, ref, pattern string) bool {
	if strings.HasPrefix(pattern, "/") {
		ref, pattern = "", pattern[1:]
	}
	p := ref + pattern
	if len(p) > 1024 {
		return false
	}
	// ok[j]: name[:i] matches p[:j], for the current i.
	ok := make([]bool, len(p)+1)
	ok[0] = true
	for j := 1; j <= len(p); j++ {
		ok[j] = ok[j-1] && (p[j-1] == '*' || p[j-1] == '%')
	}
	next := make([]bool, len(p)+1)
	for i := 1; i <= len(name); i++ {
		c := name[i-1]
		next[0] = false
		for j := 1; j <= len(p); j++ {
			switch p[j-1] {
			case '*':
				next[j] = next[j-1] || ok[j]
			case '%':
				next[j] = next[j-1] || (ok[j] && c != '/')
			default:
				next[j] = ok[j-1] && p[j-1] == c
			}
		}
		ok, next = next, ok
	}
	return ok[len(p)]
}
