package mail

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/continuum-mail/continuum/node/search"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

// The compliance archive's operations: retention policies and runs, legal
// holds, the audit log, journal verification and eDiscovery. The rules
// themselves are applied by raftfsm (archive.go); this file builds the
// commands and reads the results.

// LocalAdmin is the audit identity of an admin request that carries none
// (no client certificate).
const LocalAdmin = "local-admin"

type actorKey struct{}

// WithActor marks ctx as an operator's request by actor: every command
// proposed under it is wrapped in an AdminCommand and so recorded in the
// audit log, atomically with its effect.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// Actor returns the identity WithActor set, if any.
func Actor(ctx context.Context) (string, bool) {
	a, ok := ctx.Value(actorKey{}).(string)
	return a, ok && a != ""
}

// audited wraps cmd for the audit log when ctx is an operator's request.
func audited(ctx context.Context, cmd *commandpb.Command) *commandpb.Command {
	actor, ok := Actor(ctx)
	if !ok || cmd.GetAdminCommand() != nil || cmd.GetConsistencyCheck() != nil || cmd.GetBlobChunk() != nil {
		return cmd
	}
	action, detail := describe(cmd)
	return &commandpb.Command{Skippable: cmd.GetSkippable(), Op: &commandpb.Command_AdminCommand{AdminCommand: &commandpb.AdminCommand{
		Actor: clip(actor, 256), Action: action, Detail: clip(detail, 4096), Command: cmd}}}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// describe names an admin write for the audit log, without secrets.
func describe(c *commandpb.Command) (action, detail string) {
	scope := func(domain, user string) string {
		if domain != "" {
			return storage.DomainScope(domain)
		}
		return storage.UserScope(user)
	}
	switch op := c.GetOp().(type) {
	case *commandpb.Command_DomainAdd:
		return "domain add", op.DomainAdd.GetName()
	case *commandpb.Command_DomainDel:
		return "domain del", op.DomainDel.GetName()
	case *commandpb.Command_UserAdd:
		return "user add", fmt.Sprintf("%s quota=%d", op.UserAdd.GetEmail(), op.UserAdd.GetQuotaBytes())
	case *commandpb.Command_UserPasswd:
		return "user passwd", op.UserPasswd.GetEmail()
	case *commandpb.Command_UserDel:
		return "user del", op.UserDel.GetEmail()
	case *commandpb.Command_AliasSet:
		return "alias set", op.AliasSet.GetEmail() + " -> " + strings.Join(op.AliasSet.GetTargets(), ",")
	case *commandpb.Command_QuotaSet:
		return "quota set", fmt.Sprintf("%s quota=%d", op.QuotaSet.GetEmail(), op.QuotaSet.GetQuotaBytes())
	case *commandpb.Command_RetentionSet:
		return "retention set", fmt.Sprintf("%s days=%d", scope(op.RetentionSet.GetDomain(), op.RetentionSet.GetUser()), op.RetentionSet.GetDays())
	case *commandpb.Command_RetentionRun:
		return "retention run", ""
	case *commandpb.Command_HoldPlace:
		return "hold place", scope(op.HoldPlace.GetDomain(), op.HoldPlace.GetUser()) + " reason=" + op.HoldPlace.GetReason()
	case *commandpb.Command_HoldRelease:
		return "hold release", scope(op.HoldRelease.GetDomain(), op.HoldRelease.GetUser())
	case *commandpb.Command_VaultRestore:
		return "vault restore", fmt.Sprintf("user=%d mailbox=%d uid=%d", op.VaultRestore.GetUserId(), op.VaultRestore.GetMailboxId(), op.VaultRestore.GetUid())
	}
	return string(c.ProtoReflect().WhichOneof(c.ProtoReflect().Descriptor().Oneofs().ByName("op")).Name()), ""
}

// SetRetention sets (days > 0) or removes (0) the retention policy of a
// domain or a user (exactly one).
func (s *Service) SetRetention(ctx context.Context, domain, user string, days uint32) error {
	domain, user, err := canonicalScope(domain, user)
	if err != nil {
		return err
	}
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_RetentionSet{RetentionSet: &commandpb.RetentionSet{Domain: domain, User: user, Days: days}}})
}

func canonicalScope(domain, user string) (string, string, error) {
	if (domain == "") == (user == "") {
		return "", "", fmt.Errorf("%w: give exactly one of --domain and --user", ErrInvalid)
	}
	if domain != "" {
		d, err := CanonicalDomain(domain)
		return d, "", err
	}
	u, err := CanonicalEmail(user)
	return "", u, err
}

// maxRetentionEntries bounds how many RetentionRun entries one run
// proposes (each removes at most 5000 messages).
const maxRetentionEntries = 1000

// RunRetention proposes RetentionRun entries until one reports nothing
// more to do, and returns how many messages went and how many entries it
// took. The scheduled run (node) and `continuum retention run` both use it.
func (s *Service) RunRetention(ctx context.Context) (removed uint64, entries int, err error) {
	for entries < maxRetentionEntries {
		res, err := s.propose(ctx, &commandpb.Command{Op: &commandpb.Command_RetentionRun{RetentionRun: &commandpb.RetentionRun{}}})
		if err != nil {
			return removed, entries, err
		}
		entries++
		if err := codeError(res); err != nil {
			return removed, entries, err
		}
		removed += res.GetCount()
		if !res.GetMore() {
			break
		}
		// Only the first entry is the operator's request; the rest
		// continue it and are in the journal.
		ctx = WithActor(ctx, "")
	}
	return removed, entries, nil
}

// PlaceHold puts a domain or a user under legal hold.
func (s *Service) PlaceHold(ctx context.Context, domain, user, reason string) error {
	domain, user, err := canonicalScope(domain, user)
	if err != nil {
		return err
	}
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("%w: a hold needs a --reason", ErrInvalid)
	}
	by, _ := Actor(ctx)
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_HoldPlace{HoldPlace: &commandpb.HoldPlace{Domain: domain, User: user, Reason: reason, PlacedBy: clip(by, 256)}}})
}

// ReleaseHold lifts a hold.
func (s *Service) ReleaseHold(ctx context.Context, domain, user string) error {
	domain, user, err := canonicalScope(domain, user)
	if err != nil {
		return err
	}
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_HoldRelease{HoldRelease: &commandpb.HoldRelease{Domain: domain, User: user}}})
}

// Audit records an operator's read (a search, an export) in the audit log
// and returns the entry's index. The read must not happen if this fails.
func (s *Service) Audit(ctx context.Context, action, detail string) (uint64, error) {
	actor, ok := Actor(ctx)
	if !ok {
		actor = LocalAdmin
	}
	res, idx, err := s.proposeAt(ctx, &commandpb.Command{Op: &commandpb.Command_AdminCommand{AdminCommand: &commandpb.AdminCommand{
		Actor: clip(actor, 256), Action: action, Detail: clip(detail, 4096)}}}, true)
	if err != nil {
		return 0, err
	}
	return idx, codeError(res)
}

// AuditEntries returns the audit log, newest first, at most limit (0: all).
func (s *Service) AuditEntries(limit int) ([]*storagepb.AuditEntry, error) {
	var out []*storagepb.AuditEntry
	snap := s.db.Snapshot()
	defer snap.Close()
	err := snap.AuditEntries(0, func(e *storagepb.AuditEntry) error {
		out = append(out, e)
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

// VerifyJournal recomputes this node's journal (raftfsm.VerifyJournal) on
// a consistent view and returns the report and the applied index it is of.
func (s *Service) VerifyJournal() (raftfsm.JournalReport, uint64, error) {
	snap := s.db.Snapshot()
	defer snap.Close()
	applied, _, err := s.db.Applied()
	if err != nil {
		return raftfsm.JournalReport{}, 0, err
	}
	rep, err := raftfsm.VerifyJournal(snap)
	return rep, applied, err
}

// ArchiveSummary is the retention and hold state of the whole store.
type ArchiveSummary struct {
	Policies   []*storagepb.RetentionPolicy
	Holds      []*storagepb.Hold
	HeldByHold map[string]uint64 // messages (live and vaulted) under each hold scope
	Messages   uint64            // live messages
	Held       uint64            // live and vaulted messages of held users
	Vaulted    uint64
	// NextExpiry is the earliest INTERNALDATE + policy (unix seconds) of
	// a message a run would remove, held users aside; math.MaxInt64: none.
	NextExpiry int64
	Due        uint64 // messages a run would remove now
}

// Summary scans the local replica: a full pass over every message row
// (cheap rows, not blobs). nowUnix is the time "due" is judged at.
func (s *Service) Summary(nowUnix int64) (*ArchiveSummary, error) {
	snap := s.db.Snapshot()
	defer snap.Close()
	out := &ArchiveSummary{HeldByHold: map[string]uint64{}, NextExpiry: math.MaxInt64}
	var err error
	if out.Policies, err = snap.RetentionPolicies(); err != nil {
		return nil, err
	}
	if out.Holds, err = snap.Holds(); err != nil {
		return nil, err
	}
	policy := map[string]uint32{}
	for _, p := range out.Policies {
		policy[p.Scope] = p.Days
	}
	held := map[string]bool{}
	for _, h := range out.Holds {
		held[h.Scope] = true
	}
	users, err := snap.Users()
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		domain := u.Email[strings.LastIndexByte(u.Email, '@')+1:]
		us, ds := storage.UserScope(u.Email), storage.DomainScope(domain)
		days, hasPolicy := policy[us]
		if !hasPolicy {
			days, hasPolicy = policy[ds]
		}
		isHeld := held[us] || held[ds]
		consider := func(internalDate int64, vaulted bool) {
			switch {
			case isHeld:
				out.Held++
				for _, sc := range []string{us, ds} {
					if held[sc] {
						out.HeldByHold[sc]++
					}
				}
			case vaulted && !hasPolicy:
				out.NextExpiry = min(out.NextExpiry, internalDate)
				out.Due++
			case hasPolicy:
				at := internalDate + int64(days)*86400
				out.NextExpiry = min(out.NextExpiry, at)
				if at <= nowUnix {
					out.Due++
				}
			}
		}
		vault, err := snap.Vault(u.Id)
		if err != nil {
			return nil, err
		}
		for _, e := range vault {
			out.Vaulted++
			consider(e.GetMessage().GetInternalDateUnix(), true)
		}
		boxes, err := snap.Mailboxes(u.Id)
		if err != nil {
			return nil, err
		}
		for _, b := range boxes {
			if err := snap.Messages(b.Id, 1, 0, func(m *storagepb.Message) error {
				out.Messages++
				consider(m.InternalDateUnix, false)
				return nil
			}); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// SearchQuery is an eDiscovery search.
type SearchQuery struct {
	Query       string // matched as IMAP SEARCH TEXT matches: a substring of the message's searchable text (search.Doc), Unicode-folded
	User        string // empty: every user
	From, To    int64  // INTERNALDATE bounds, unix seconds, inclusive; 0: open
	IncludeHeld bool   // also the vault (expunged messages kept by hold or retention)
	Limit       int    // 0: 1000
	// Scan ignores the full-text index and checks every message: the
	// fallback, and the oracle the indexed path is tested against.
	Scan bool
}

// Hit is one message a search found.
type Hit struct {
	User, Mailbox      string
	UID                uint32
	InternalDate       int64
	Subject, From, MID string
	SHA256             []byte
	Size               uint64
	Vaulted, Held      bool
}

// Search finds the messages of every user (or one user) on this node's
// replica, after a read-index wait, whose text holds the query (as
// SEARCH TEXT: decoded text parts, HTML stripped, RFC 2047 headers, file
// names, Unicode-folded). Mailbox by mailbox, the full-text index gives
// the candidates (TextSearch.Matching) and only those are read; messages
// the index does not cover yet and the vault are checked one by one. With
// q.Scan every message is checked: same results, the old cost. scanned
// counts the messages whose text was checked.
func (s *Service) Search(ctx context.Context, q SearchQuery) (hits []Hit, scanned uint64, truncated bool, err error) {
	if strings.TrimSpace(q.Query) == "" {
		return nil, 0, false, fmt.Errorf("%w: empty query", ErrInvalid)
	}
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	if err := s.Sync(ctx); err != nil {
		return nil, 0, false, err
	}
	needle := FoldText(q.Query)
	// Index views are taken before the state snapshot: every message of
	// the snapshot with a UID ≤ a mailbox's watermark is in the view.
	var view *search.View
	if x := s.index.Load(); x != nil && !q.Scan {
		view = x.View()
		defer view.Close()
	}
	snap := s.db.Snapshot()
	defer snap.Close()
	var users []*storagepb.User
	if q.User != "" {
		e, err := CanonicalEmail(q.User)
		if err != nil {
			return nil, 0, false, err
		}
		u, err := snap.UserByEmail(e)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, 0, false, fmt.Errorf("%w: user %s", ErrNotFound, e)
		} else if err != nil {
			return nil, 0, false, err
		}
		users = append(users, u)
	} else if users, err = snap.Users(); err != nil {
		return nil, 0, false, err
	}
	holds, err := snap.Holds()
	if err != nil {
		return nil, 0, false, err
	}
	held := map[string]bool{}
	for _, h := range holds {
		held[h.Scope] = true
	}
	inRange := func(m *storagepb.Message) bool {
		return (q.From == 0 || m.InternalDateUnix >= q.From) && (q.To == 0 || m.InternalDateUnix <= q.To)
	}
	errFull := errors.New("full")
	for _, u := range users {
		if err := ctx.Err(); err != nil {
			return nil, scanned, false, err
		}
		domain := u.Email[strings.LastIndexByte(u.Email, '@')+1:]
		isHeld := held[storage.UserScope(u.Email)] || held[storage.DomainScope(domain)]
		// hit records m if its text holds the needle (verify) or it is
		// known to (!verify).
		hit := func(ts *TextSearch, mailbox string, m *storagepb.Message, vaulted, verify bool) error {
			if !inRange(m) {
				return nil
			}
			if verify {
				scanned++
				var d *TextDoc
				var err error
				if ts != nil {
					d, err = ts.Doc(snap, m)
				} else {
					d, err = extractDoc(s.db, snap, m)
				}
				if err != nil {
					return err
				}
				if !d.MatchText(needle) {
					return nil
				}
			}
			if len(hits) == q.Limit {
				return errFull
			}
			h := Hit{User: u.Email, Mailbox: mailbox, UID: m.Uid, InternalDate: m.InternalDateUnix,
				SHA256: m.Blob, Size: m.Size, Vaulted: vaulted, Held: isHeld}
			if p, err := snap.Parsed(m.Blob); err == nil && p.GetEnvelope() != nil {
				env := p.GetEnvelope()
				h.Subject, h.MID = env.GetSubject(), env.GetMessageId()
				if f := env.GetFrom(); len(f) > 0 {
					h.From = f[0].GetMailbox() + "@" + f[0].GetHost()
				}
			}
			hits = append(hits, h)
			return nil
		}
		boxes, err := snap.Mailboxes(u.Id)
		if err != nil {
			return nil, scanned, false, err
		}
		for _, b := range boxes {
			if err := s.searchMailbox(snap, view, b, needle, hit); errors.Is(err, errFull) {
				return hits, scanned, true, nil
			} else if err != nil {
				return nil, scanned, false, err
			}
		}
		if q.IncludeHeld {
			vault, err := snap.Vault(u.Id)
			if err != nil {
				return nil, scanned, false, err
			}
			for _, e := range vault {
				if err := hit(nil, e.Mailbox, e.Message, true, true); errors.Is(err, errFull) {
					return hits, scanned, true, nil
				} else if err != nil {
					return nil, scanned, false, err
				}
			}
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return hits[i].InternalDate < hits[j].InternalDate })
	return hits, scanned, false, nil
}

// searchMailbox calls hit for the mailbox's messages that can match, in
// UID order: the index's sure and maybe candidates up to its watermark,
// then every message above it; every message when the index cannot help.
func (s *Service) searchMailbox(snap *storage.Snap, view *search.View, b *storagepb.Mailbox, needle string,
	hit func(ts *TextSearch, mailbox string, m *storagepb.Message, vaulted, verify bool) error) error {
	from := uint32(1)
	if view != nil {
		ts := &TextSearch{db: s.db, view: view, mailboxID: b.Id, uidValidity: b.UidValidity}
		hw, uv, ok, err := view.Indexed(b.Id)
		if err != nil {
			return err
		}
		ts.indexed, ts.hw = ok && uv == b.UidValidity, hw
		sure, maybe, hw, indexed, err := ts.Matching([]string{needle})
		if err != nil {
			return err
		}
		if indexed {
			// Merge the two ascending lists, so hits come in UID order as
			// on the scanning path.
			i, j := 0, 0
			for i < len(sure) || j < len(maybe) {
				var uid uint32
				verify := false
				if j == len(maybe) || (i < len(sure) && sure[i] < maybe[j]) {
					uid, i = sure[i], i+1
				} else {
					uid, j, verify = maybe[j], j+1, true
				}
				m, err := snap.Message(b.Id, uid)
				if errors.Is(err, storage.ErrNotFound) {
					continue // expunged after the index view
				}
				if err != nil {
					return err
				}
				if err := hit(ts, b.Name, m, false, verify); err != nil {
					return err
				}
			}
			from = hw + 1
			if hw == ^uint32(0) {
				return nil
			}
		}
		return snap.Messages(b.Id, from, 0, func(m *storagepb.Message) error { return hit(ts, b.Name, m, false, true) })
	}
	return snap.Messages(b.Id, from, 0, func(m *storagepb.Message) error { return hit(nil, b.Name, m, false, true) })
}

// Blob returns a stored message's bytes by SHA-256 (archive export).
func (s *Service) Blob(sha []byte) ([]byte, error) {
	var out []byte
	err := s.read(func(r storage.Reader) (err error) {
		out, err = r.Blob(sha)
		return err
	})
	return out, err
}

// RestoreVault puts a user's vaulted messages back: one, named by its
// mailbox's name then and its UID (as Search shows it), or, with neither,
// all of them. It returns how many were restored.
func (s *Service) RestoreVault(ctx context.Context, user, mailbox string, uid uint32) (uint64, error) {
	e, err := CanonicalEmail(user)
	if err != nil {
		return 0, err
	}
	if (mailbox == "") != (uid == 0) {
		return 0, fmt.Errorf("%w: give both --mailbox and --uid, or neither", ErrInvalid)
	}
	if err := s.Sync(ctx); err != nil {
		return 0, err
	}
	op := &commandpb.VaultRestore{}
	snap := s.db.Snapshot()
	u, err := snap.UserByEmail(e)
	if err == nil {
		op.UserId = u.Id
		if uid != 0 {
			var vault []*storagepb.VaultEntry
			vault, err = snap.Vault(u.Id)
			for _, v := range vault {
				if v.Mailbox == mailbox && v.GetMessage().GetUid() == uid {
					op.MailboxId, op.Uid = v.MailboxId, uid
				}
			}
			if err == nil && op.Uid == 0 {
				err = fmt.Errorf("%w: no vaulted message %s/%d of %s", ErrNotFound, mailbox, uid, e)
			}
		}
	}
	snap.Close()
	if errors.Is(err, storage.ErrNotFound) {
		return 0, fmt.Errorf("%w: user %s", ErrNotFound, e)
	} else if err != nil {
		return 0, err
	}
	var total uint64
	for i := 0; i < maxRetentionEntries; i++ {
		res, err := s.propose(ctx, &commandpb.Command{Op: &commandpb.Command_VaultRestore{VaultRestore: op}})
		if err != nil {
			return total, err
		}
		if err := codeError(res); err != nil {
			if total > 0 && errors.Is(err, ErrNotFound) {
				break
			}
			return total, err
		}
		total += res.GetCount()
		if !res.GetMore() {
			break
		}
		ctx = WithActor(ctx, "")
	}
	return total, nil
}
