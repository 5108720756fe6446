package raftfsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// The compliance archive: retention policies, legal holds, the vault of
// expunged-but-kept messages, the audit log and the journal. DESIGN.md
// ("Archive") states the rules; this file is their only implementation.

const (
	// maxRetentionDays bounds a policy (100 years).
	maxRetentionDays = 36500
	// defaultRetentionMax and maxRetentionMax bound the messages one
	// RetentionRun entry removes, so that one apply batch stays small.
	defaultRetentionMax = 5000
	maxRetentionMax     = 100000
	maxAuditField       = 256
	maxAuditDetail      = 4096
	maxHoldReason       = 1024
	secondsPerDay       = 86400
)

// keepRule is what decides whether a message its user expunges is
// destroyed or kept in the vault.
type keepRule struct {
	held bool
	hold string // the hold's reason, for refusals
	days uint32 // the effective retention policy; 0: none
}

// keeps reports whether a message with this INTERNALDATE goes to the vault
// instead of being destroyed, at log time now (unix ns).
func (k keepRule) keeps(internalDate, now int64) bool {
	return k.held || (k.days > 0 && !expired(internalDate, k.days, now))
}

// expired: a message is due when its INTERNALDATE is at least days before
// the log time.
func expired(internalDate int64, days uint32, now int64) bool {
	return internalDate <= now/1e9-int64(days)*secondsPerDay
}

// rule returns the hold state and the effective policy of an address: a
// hold on the user or on its domain; the user's policy, else the domain's.
func (t *tx) rule(email string) (keepRule, error) {
	domain := email[strings.LastIndexByte(email, '@')+1:]
	var k keepRule
	for _, scope := range []string{storage.UserScope(email), storage.DomainScope(domain)} {
		h, err := t.b.Hold(scope)
		if ok, err := found(err); err != nil {
			return k, err
		} else if ok && !k.held {
			k.held, k.hold = true, h.GetReason()
		}
	}
	for _, scope := range []string{storage.UserScope(email), storage.DomainScope(domain)} {
		p, err := t.b.RetentionPolicy(scope)
		if ok, err := found(err); err != nil {
			return k, err
		} else if ok {
			k.days = p.GetDays()
			break
		}
	}
	return k, nil
}

// hideMessage takes m out of box like removeMessage, but keeps its blob
// reference in a vault row: the user no longer sees it, an administrator
// still finds it (archive search --include-held) until retention purges it.
// Vaulted messages no longer count against the user's quota.
func (t *tx) hideMessage(u *storagepb.User, box *storagepb.Mailbox, m *storagepb.Message, held bool) error {
	box.HighestModseq++
	if err := t.b.DeleteMessage(box.Id, m, box.HighestModseq); err != nil {
		return err
	}
	box.Messages--
	if !hasFlag(m.Flags, `\Seen`) {
		box.Unseen--
	}
	box.Size -= m.Size
	u.UsedBytes -= min(u.UsedBytes, m.Size)
	t.event(MessageExpunged, box.UserId, box.Id, m.Uid, box.HighestModseq, "")
	return t.b.PutVault(&storagepb.VaultEntry{UserId: u.Id, MailboxId: box.Id, Mailbox: box.Name, Message: m,
		VaultedUnixNano: t.now, VaultedIndex: t.index, Held: held})
}

// discard expunges m from box under rule k: into the vault or destroyed.
// It records the journal reference.
func (t *tx) discard(u *storagepb.User, box *storagepb.Mailbox, m *storagepb.Message, k keepRule) error {
	keep := k.keeps(m.InternalDateUnix, t.now)
	t.ref(box.Id, m.Uid, m.Blob, keep)
	if keep {
		return t.hideMessage(u, box, m, k.held)
	}
	return t.removeMessage(u, box, m)
}

// purgeVault destroys one vault row and its blob reference.
func (t *tx) purgeVault(e *storagepb.VaultEntry) error {
	t.ref(e.GetMailboxId(), e.GetMessage().GetUid(), e.GetMessage().GetBlob(), false)
	if err := t.b.DeleteVault(e); err != nil {
		return err
	}
	_, err := t.b.ReleaseBlob(e.GetMessage().GetBlob())
	return err
}

// scope validates the domain-or-user pair of a policy or hold command and
// returns its scope key; the domain or user must exist.
func (t *tx) scope(domain, user string) (string, *commandpb.Result, error) {
	switch {
	case (domain == "") == (user == ""):
		return "", invalid("give exactly one of domain and user"), nil
	case domain != "":
		name, ok := normalizeDomain(domain)
		if !ok {
			return "", invalid("bad domain name"), nil
		}
		_, err := t.b.Domain(name)
		if ok, err := found(err); err != nil || !ok {
			return "", notFound("domain"), err
		}
		return storage.DomainScope(name), nil, nil
	default:
		u, res, err := t.userByEmail(user)
		if res != nil || err != nil {
			return "", res, err
		}
		return storage.UserScope(u.Email), nil, nil
	}
}

func applyRetentionSet(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetRetentionSet()
	if op.GetDays() > maxRetentionDays {
		return invalid("retention of %d days: at most %d", op.GetDays(), maxRetentionDays), nil
	}
	scope, res, err := t.scope(op.GetDomain(), op.GetUser())
	if res != nil || err != nil {
		return res, err
	}
	if op.GetDays() == 0 {
		_, err := t.b.RetentionPolicy(scope)
		if ok, err := found(err); err != nil || !ok {
			return notFound("retention policy"), err
		}
		if err := t.b.DeleteRetentionPolicy(scope); err != nil {
			return nil, err
		}
	} else if err := t.b.PutRetentionPolicy(&storagepb.RetentionPolicy{Scope: scope, Days: op.GetDays(), SetUnixNano: t.now, SetIndex: t.index}); err != nil {
		return nil, err
	}
	return okResult(), t.link("retention-set", 0, fmt.Sprintf("%s days=%d", scope, op.GetDays()))
}

func applyHoldPlace(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetHoldPlace()
	switch {
	case op.GetReason() == "" || len(op.GetReason()) > maxHoldReason:
		return invalid("a hold needs a reason of at most %d bytes", maxHoldReason), nil
	case len(op.GetPlacedBy()) > maxAuditField:
		return invalid("placed_by too long"), nil
	}
	scope, res, err := t.scope(op.GetDomain(), op.GetUser())
	if res != nil || err != nil {
		return res, err
	}
	_, err = t.b.Hold(scope)
	if ok, err := found(err); err != nil {
		return nil, err
	} else if ok {
		return exists("hold"), nil
	}
	if err := t.b.PutHold(&storagepb.Hold{Scope: scope, Reason: op.GetReason(), PlacedBy: op.GetPlacedBy(),
		PlacedUnixNano: t.now, PlacedIndex: t.index}); err != nil {
		return nil, err
	}
	return okResult(), t.link("hold-place", 0, scope+" reason="+op.GetReason())
}

func applyHoldRelease(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetHoldRelease()
	scope, res, err := t.scope(op.GetDomain(), op.GetUser())
	if res != nil || err != nil {
		return res, err
	}
	_, err = t.b.Hold(scope)
	if ok, err := found(err); err != nil || !ok {
		return notFound("hold"), err
	}
	if err := t.b.DeleteHold(scope); err != nil {
		return nil, err
	}
	return okResult(), t.link("hold-release", 0, scope)
}

// applyRetentionRun expires messages as of the entry's log time: for every
// user not under hold, live messages and vault rows whose INTERNALDATE is
// past the effective policy, and vault rows of users with no policy (kept
// only by a hold that has since been released). Users without a policy
// lose nothing live. One entry removes at most max messages and scans
// about retentionScanBudget rows (whole users at a time); where it stops
// is meta/retention-cursor, and Result.more asks for the next entry.
func applyRetentionRun(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	limit := c.GetRetentionRun().GetMax()
	if limit > maxRetentionMax {
		return invalid("max %d: at most %d", limit, maxRetentionMax), nil
	}
	if limit == 0 {
		limit = defaultRetentionMax
	}
	cursor, err := t.b.Counter(storage.MetaRetentionCursor)
	if err != nil {
		return nil, err
	}
	users, err := t.b.Users()
	if err != nil {
		return nil, err
	}
	out := &commandpb.Result{}
	var scanned uint64
	next := uint64(0) // where the next entry starts; 0: the run is complete
	for _, u := range users {
		if u.Id < cursor {
			continue
		}
		if out.Count >= uint64(limit) || scanned >= retentionScanBudget {
			next = u.Id
			break
		}
		k, err := t.rule(u.Email)
		if err != nil {
			return nil, err
		}
		if k.held {
			continue
		}
		n, seen, more, err := t.expireUser(u, k.days, uint64(limit)-out.Count)
		if err != nil {
			return nil, err
		}
		out.Count += n
		scanned += seen
		if more {
			next = u.Id
			break
		}
	}
	out.More = next != 0
	if next != cursor {
		if err := t.b.SetRetentionCursor(next); err != nil {
			return nil, err
		}
	}
	if out.Count == 0 {
		return out, nil
	}
	return out, t.link("retention", 0, fmt.Sprintf("removed=%d", out.Count))
}

// retentionScanBudget is about how many message and vault rows one
// RetentionRun entry reads, so that its apply stays short however large
// the store.
const retentionScanBudget = 50000

// expireUser removes up to limit of the user's expired messages and vault
// rows; seen counts the rows it read; more reports that the limit stopped it.
func (t *tx) expireUser(u *storagepb.User, days uint32, limit uint64) (n, seen uint64, more bool, err error) {
	vault, err := t.b.Vault(u.Id)
	if err != nil {
		return 0, 0, false, err
	}
	seen = uint64(len(vault))
	for _, e := range vault {
		if days != 0 && !expired(e.GetMessage().GetInternalDateUnix(), days, t.now) {
			continue
		}
		if n == limit {
			return n, seen, true, nil
		}
		if err := t.purgeVault(e); err != nil {
			return 0, 0, false, err
		}
		n++
	}
	if days == 0 {
		return n, seen, false, nil
	}
	boxes, err := t.b.Mailboxes(u.Id)
	if err != nil {
		return 0, 0, false, err
	}
	changed := false
	for _, box := range boxes {
		var due []*storagepb.Message
		if err := t.b.Messages(box.Id, 1, 0, func(m *storagepb.Message) error {
			seen++
			if expired(m.InternalDateUnix, days, t.now) {
				due = append(due, m)
			}
			return nil
		}); err != nil {
			return 0, 0, false, err
		}
		for i, m := range due {
			if n == limit {
				more = true
				due = due[:i]
				break
			}
			t.ref(box.Id, m.Uid, m.Blob, false)
			if err := t.removeMessage(u, box, m); err != nil {
				return 0, 0, false, err
			}
			n++
		}
		if len(due) > 0 {
			changed = true
			if err := t.b.PutMailbox(box); err != nil {
				return 0, 0, false, err
			}
		}
		if more {
			break
		}
	}
	if changed {
		if err := t.b.PutUser(u); err != nil {
			return 0, 0, false, err
		}
	}
	return n, seen, more, nil
}

// dropVault destroys every vault row of a user being deleted.
func (t *tx) dropVault(u *storagepb.User) error {
	vault, err := t.b.Vault(u.Id)
	if err != nil {
		return err
	}
	for _, e := range vault {
		if err := t.purgeVault(e); err != nil {
			return err
		}
	}
	return nil
}

// applyAdmin applies an operator's command and records it in the audit log
// with its outcome, in the same batch: a refused command (a user del under
// hold) is recorded too, though it changes nothing else.
func applyAdmin(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetAdminCommand()
	switch {
	case op.GetActor() == "" || len(op.GetActor()) > maxAuditField:
		return invalid("audit actor must be 1-%d bytes", maxAuditField), nil
	case op.GetAction() == "" || len(op.GetAction()) > maxAuditField:
		return invalid("audit action must be 1-%d bytes", maxAuditField), nil
	case len(op.GetDetail()) > maxAuditDetail:
		return invalid("audit detail over %d bytes", maxAuditDetail), nil
	}
	res := okResult()
	if inner := op.GetCommand(); inner != nil {
		fd := inner.ProtoReflect().WhichOneof(opOneof)
		switch {
		case fd == nil:
			return invalid("admin command without an operation"), nil
		case fd.Number() == fieldAdmin || fd.Number() == fieldConsistencyCheck || fd.Number() == fieldBlobChunk:
			return invalid("%s cannot be an admin command", fd.Name()), nil
		}
		var err error
		if res, err = handlers[fd.Number()](t, inner); err != nil {
			return nil, err
		}
	}
	return res, t.b.PutAudit(&storagepb.AuditEntry{Index: t.index, TimeUnixNano: t.now, Actor: op.GetActor(),
		Action: op.GetAction(), Detail: op.GetDetail(), Code: uint32(res.GetCode()), Message: res.GetMessage()})
}

// Field numbers of the Command.op cases that applyAdmin refuses to wrap.
const (
	fieldBlobChunk        = 27
	fieldConsistencyCheck = 40
	fieldAdmin            = 50
)

// ref adds a message to the journal link of the command being applied.
func (t *tx) ref(mailboxID uint64, uid uint32, blob []byte, vaulted bool) {
	if !t.journal {
		return
	}
	t.refs = append(t.refs, &storagepb.JournalRef{MailboxId: mailboxID, Uid: uid, Blob: blob, Vaulted: vaulted})
}

// link appends the command's journal link: kind, the messages ref
// collected, chained to the previous link. A command writes at most one.
func (t *tx) link(kind string, userID uint64, detail string) error {
	if !t.journal {
		return nil
	}
	_, prev, err := t.b.JournalHead()
	if err != nil {
		return err
	}
	if prev == nil {
		prev = make([]byte, sha256.Size)
	}
	l := &storagepb.JournalLink{Index: t.index, TimeUnixNano: t.now, Kind: kind, UserId: userID, Detail: detail, Refs: t.refs, Prev: prev}
	l.Hash = LinkHash(l)
	t.refs = nil
	return t.b.PutJournalLink(l)
}

// LinkHash is SHA-256 over a link's canonical encoding with its prev hash:
// a fixed layout of lengths and big-endian integers, not protobuf, so the
// chain does not depend on a protobuf library's choices.
func LinkHash(l *storagepb.JournalLink) []byte {
	h := sha256.New()
	var b []byte
	str := func(s []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
		b = append(b, s...)
	}
	b = append(b, "continuum journal v1\x00"...)
	b = binary.BigEndian.AppendUint64(b, l.GetIndex())
	b = binary.BigEndian.AppendUint64(b, uint64(l.GetTimeUnixNano()))
	str([]byte(l.GetKind()))
	b = binary.BigEndian.AppendUint64(b, l.GetUserId())
	str([]byte(l.GetDetail()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(l.GetRefs())))
	for _, r := range l.GetRefs() {
		b = binary.BigEndian.AppendUint64(b, r.GetMailboxId())
		b = binary.BigEndian.AppendUint32(b, r.GetUid())
		str(r.GetBlob())
		if r.GetVaulted() {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
	}
	str(l.GetPrev())
	h.Write(b)
	return h.Sum(nil)
}

// JournalReader is what VerifyJournal reads: a storage.Snap.
type JournalReader interface {
	JournalLinks(fn func(index uint64, l *storagepb.JournalLink, err error) error) error
	JournalHead() (uint64, []byte, error)
	Message(mailboxID uint64, uid uint32) (*storagepb.Message, error)
	Blob(sha []byte) ([]byte, error)
}

// JournalReport is the outcome of VerifyJournal.
type JournalReport struct {
	Links        uint64
	HeadIndex    uint64
	BreakIndex   uint64 // the first link that does not verify; 0: none
	Reason       string
	BlobsChecked uint64
}

// OK reports whether the whole journal verified.
func (r JournalReport) OK() bool { return r.BreakIndex == 0 && r.Reason == "" }

// VerifyJournal recomputes the hash chain from its first link: each link
// must name the previous link's hash and hash to its own, and the head must
// be the last link. It also checks the messages the delivery links name
// that are still stored: their row must point at the logged blob, and the
// blob's bytes must hash to it. It stops at the first break. The error is
// a storage failure, not a break.
func VerifyJournal(r JournalReader) (JournalReport, error) {
	var rep JournalReport
	prev := make([]byte, sha256.Size)
	var last uint64
	checked := map[string]bool{}
	errStop := fmt.Errorf("stop")
	brk := func(index uint64, format string, args ...any) error {
		rep.BreakIndex, rep.Reason = index, fmt.Sprintf(format, args...)
		return errStop
	}
	err := r.JournalLinks(func(index uint64, l *storagepb.JournalLink, derr error) error {
		switch {
		case derr != nil:
			return brk(index, "link does not decode: %v", derr)
		case l.GetIndex() != index:
			return brk(index, "link says index %d", l.GetIndex())
		case !bytes.Equal(l.GetPrev(), prev):
			return brk(index, "link does not follow the link at index %d", last)
		case !bytes.Equal(LinkHash(l), l.GetHash()):
			return brk(index, "link's content does not match its hash")
		}
		for _, ref := range l.GetRefs() {
			if ref.GetVaulted() || (l.GetKind() != "deliver" && l.GetKind() != "append" && l.GetKind() != "vault-restore") {
				continue
			}
			m, err := r.Message(ref.GetMailboxId(), ref.GetUid())
			if ok, err := found(err); err != nil {
				return err
			} else if !ok {
				continue // expunged later, by a linked change
			}
			if !bytes.Equal(m.GetBlob(), ref.GetBlob()) {
				return brk(index, "message %d/%d points at another blob than delivered", ref.GetMailboxId(), ref.GetUid())
			}
			if checked[string(ref.GetBlob())] {
				continue
			}
			data, err := r.Blob(ref.GetBlob())
			if err != nil {
				return brk(index, "blob %x of message %d/%d: %v", ref.GetBlob()[:8], ref.GetMailboxId(), ref.GetUid(), err)
			}
			if sum := sha256.Sum256(data); !bytes.Equal(sum[:], ref.GetBlob()) {
				return brk(index, "blob %x of message %d/%d was altered", ref.GetBlob()[:8], ref.GetMailboxId(), ref.GetUid())
			}
			checked[string(ref.GetBlob())] = true
			rep.BlobsChecked++
		}
		rep.Links++
		prev, last = l.GetHash(), index
		return nil
	})
	if err == errStop {
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	head, hash, err := r.JournalHead()
	if err != nil {
		return rep, err
	}
	rep.HeadIndex = head
	if head != last || (last != 0 && !bytes.Equal(hash, prev)) {
		rep.BreakIndex = max(head, last)
		rep.Reason = fmt.Sprintf("journal head names index %d, the last link is at %d", head, last)
	}
	return rep, nil
}

// applyVaultRestore puts vaulted messages back where the user can see them
// (see VaultRestore in command.proto). The blob reference moves from the
// vault row to the new message row; quota applies as to a delivery.
func applyVaultRestore(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetVaultRestore()
	if (op.GetMailboxId() == 0) != (op.GetUid() == 0) {
		return invalid("give both mailbox and UID, or neither"), nil
	}
	u, res, err := t.mailboxUser(op.GetUserId())
	if res != nil || err != nil {
		return res, err
	}
	var rows []*storagepb.VaultEntry
	if op.GetUid() != 0 {
		e, err := t.b.VaultEntry(u.Id, op.GetMailboxId(), op.GetUid())
		if ok, err := found(err); err != nil || !ok {
			return notFound("vaulted message"), err
		}
		rows = append(rows, e)
	} else if rows, err = t.b.Vault(u.Id); err != nil {
		return nil, err
	} else if len(rows) == 0 {
		return notFound("vaulted message"), nil
	}
	out := &commandpb.Result{UserId: u.Id}
	if len(rows) > defaultRetentionMax {
		rows, out.More = rows[:defaultRetentionMax], true
	}
	var size uint64
	for _, e := range rows {
		size += e.GetMessage().GetSize()
	}
	if overQuota(u, size) {
		return result(commandpb.Code_CODE_OVER_QUOTA, "over quota"), nil
	}
	boxes := map[uint64]*storagepb.Mailbox{}
	var changed []*storagepb.Mailbox // in first-use order: no map order reaches the batch
	for _, e := range rows {
		box := boxes[e.GetMailboxId()]
		if box == nil {
			m, err := t.b.Mailbox(u.Id, e.GetMailboxId())
			if ok, err := found(err); err != nil {
				return nil, err
			} else if !ok {
				if m, err = t.b.MailboxByName(u.Id, "INBOX"); err != nil {
					return nil, err
				}
			}
			if b := boxes[m.Id]; b != nil {
				m = b // INBOX already loaded: one record, updated once
			} else {
				changed = append(changed, m)
			}
			box, boxes[e.GetMailboxId()], boxes[m.Id] = m, m, m
		}
		if box.UidNext == ^uint32(0) {
			return invalid("UIDs exhausted"), nil
		}
		old := e.GetMessage()
		var flags []string
		for _, f := range old.GetFlags() {
			if f != `\Deleted` {
				flags = append(flags, f)
			}
		}
		m := &storagepb.Message{Blob: old.GetBlob(), Flags: flags, InternalDateUnix: old.GetInternalDateUnix(), Size: old.GetSize(), SaveDateUnix: t.now / 1e9}
		if err := t.addMessage(u, box, m); err != nil {
			return nil, err
		}
		if err := t.b.DeleteVault(e); err != nil {
			return nil, err
		}
		t.ref(box.Id, m.Uid, m.Blob, false)
		out.Uids = append(out.Uids, m.Uid)
		out.Count++
	}
	for _, box := range changed {
		if err := t.b.PutMailbox(box); err != nil {
			return nil, err
		}
	}
	if err := t.b.PutUser(u); err != nil {
		return nil, err
	}
	return out, t.link("vault-restore", u.Id, fmt.Sprintf("restored=%d", out.Count))
}
