package mail

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// User is an authenticated account.
type User struct {
	ID    uint64
	Email string
}

// AddDomain makes a domain local.
func (s *Service) AddDomain(ctx context.Context, name, catchAll string) error {
	d, err := CanonicalDomain(name)
	if err != nil {
		return err
	}
	if catchAll != "" {
		if _, err := CanonicalEmail(catchAll + "@" + d); err != nil {
			return fmt.Errorf("%w: catch-all %q is not a valid local part", ErrInvalid, catchAll)
		}
	}
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_DomainAdd{DomainAdd: &commandpb.DomainAdd{Name: d, CatchAll: strings.ToLower(catchAll)}}})
}

// Domains lists the local domains.
func (s *Service) Domains() ([]string, error) {
	var out []string
	err := s.read(func(r storage.Reader) error {
		ds, err := r.Domains()
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return err
	})
	return out, err
}

// AddUser creates an account (and its default mailboxes) and returns its ID.
func (s *Service) AddUser(ctx context.Context, email, password string, quota uint64) (uint64, error) {
	e, err := CanonicalEmail(email)
	if err != nil {
		return 0, err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return 0, err
	}
	res, err := s.propose(ctx, &commandpb.Command{Op: &commandpb.Command_UserAdd{UserAdd: &commandpb.UserAdd{Email: e, PasswordHash: hash, QuotaBytes: quota}}})
	if err != nil {
		return 0, err
	}
	if err := codeError(res); err != nil {
		return 0, err
	}
	return res.UserId, nil
}

// SetPassword replaces a user's password.
func (s *Service) SetPassword(ctx context.Context, email, password string) error {
	e, err := CanonicalEmail(email)
	if err != nil {
		return err
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_UserPasswd{UserPasswd: &commandpb.UserPasswd{Email: e, PasswordHash: hash}}})
}

// DeleteUser removes an account and all its mail.
func (s *Service) DeleteUser(ctx context.Context, email string) error {
	e, err := CanonicalEmail(email)
	if err != nil {
		return err
	}
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_UserDel{UserDel: &commandpb.UserDel{Email: e}}})
}

// SetAlias points an address at one or more local users; no targets
// removes the alias.
func (s *Service) SetAlias(ctx context.Context, email string, targets []string) error {
	e, err := CanonicalEmail(email)
	if err != nil {
		return err
	}
	var ts []string
	for _, t := range targets {
		c, err := CanonicalEmail(t)
		if err != nil {
			return err
		}
		ts = append(ts, c)
	}
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_AliasSet{AliasSet: &commandpb.AliasSet{Email: e, Targets: ts}}})
}

// SetQuota sets a user's quota in bytes (0: unlimited).
func (s *Service) SetQuota(ctx context.Context, email string, quota uint64) error {
	e, err := CanonicalEmail(email)
	if err != nil {
		return err
	}
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_QuotaSet{QuotaSet: &commandpb.QuotaSet{Email: e, QuotaBytes: quota}}})
}

// Users lists every account.
func (s *Service) Users() ([]*storagepb.User, error) {
	var out []*storagepb.User
	err := s.read(func(r storage.Reader) (err error) {
		out, err = r.Users()
		return err
	})
	return out, err
}

// Authenticate checks a password against the credentials the cluster has
// committed, so a login at any node sees a user added, a password changed
// or a user disabled a moment ago at another (read-your-writes across
// nodes, docs/TESTPLAN.md F19). A wrong password and an unknown user give the same
// error.
//
// The check is made on the local replica first. A failed check (unknown
// user, wrong password, disabled user) is retried once after a read-index
// wait (Sync) before it counts as a failure, as an unknown recipient is in
// ResolveRecipient: a lagging replica must not refuse a credential the
// cluster has. A successful check is confirmed the same way: after the
// read-index wait the stored credential is read again, and checked again
// only if it changed, so an old password stops working everywhere once
// `user passwd` has returned. A node that is cut off (no leader for longer
// than the bound), or whose read-index wait fails, answers from the last
// credentials it applied: its sessions are read-only anyway
// (docs/ARCHITECTURE.md §1), and refusing every login there would take reads
// away too.
func (s *Service) Authenticate(ctx context.Context, email, password string) (*User, error) {
	e, err := CanonicalEmail(email)
	if err != nil {
		CheckPassword(dummyHash, password)
		return nil, ErrAuthFailed
	}
	u, cred, ok := s.checkLocal(e, password)
	if s.CutOff() {
		return authResult(u, ok)
	}
	if err := s.Sync(ctx); err != nil {
		// Not cut off, yet the leader could not confirm what is committed
		// (an election, a slow quorum): the local credentials may be stale
		// (a password just changed elsewhere) or not there yet (a user just
		// added). Neither accept nor refuse: a temporary failure, retried.
		s.log.Debug("login not checked: no read-index", "err", err)
		return nil, fmt.Errorf("%w: credentials cannot be confirmed: %v", ErrUnavailable, err)
	}
	if ok {
		// Committed credentials may have changed since the first read.
		if now, _ := s.credential(e); now == cred {
			return u, nil
		}
	}
	u, _, ok = s.checkLocal(e, password)
	return authResult(u, ok)
}

func authResult(u *User, ok bool) (*User, error) {
	if !ok {
		return nil, ErrAuthFailed
	}
	return u, nil
}

// credential is what a password check depends on, compared to tell whether
// a stored credential changed between two reads.
type credential struct {
	id       uint64
	hash     string
	disabled bool
}

func (s *Service) credential(email string) (credential, bool) {
	var u *storagepb.User
	err := s.read(func(r storage.Reader) (err error) {
		u, err = r.UserByEmail(email)
		return err
	})
	if err != nil {
		return credential{}, false
	}
	return credential{id: u.Id, hash: string(u.PasswordHash), disabled: u.Disabled}, true
}

// checkLocal checks a password against the local replica and returns the
// credential it checked against.
func (s *Service) checkLocal(email, password string) (*User, credential, bool) {
	var u *storagepb.User
	err := s.read(func(r storage.Reader) (err error) {
		u, err = r.UserByEmail(email)
		return err
	})
	if err != nil || u.Disabled {
		// Spend the same time as a real check, so timing does not reveal
		// which addresses exist.
		CheckPassword(dummyHash, password)
		return nil, credential{}, false
	}
	cred := credential{id: u.Id, hash: string(u.PasswordHash), disabled: u.Disabled}
	if !s.auth.check(u.PasswordHash, password) {
		return nil, cred, false
	}
	return &User{ID: u.Id, Email: u.Email}, cred, true
}

var dummyHash, _ = HashPassword("not-a-real-password")

// write proposes a command whose result carries nothing but a code.
func (s *Service) write(ctx context.Context, cmd *commandpb.Command) error {
	res, err := s.propose(ctx, cmd)
	if err != nil {
		return err
	}
	return codeError(res)
}

// ResolveRecipient maps an envelope recipient to the canonical addresses of
// the local users that receive it: the user itself, an alias's targets, the
// user behind a plus address (user+tag@domain), or the domain's catch-all.
// It reads the local replica; a negative answer is checked again after a
// read-index wait, because a lagging replica (a new node, one that was cut
// off) must not bounce mail for a user the cluster has: a refusal caused by
// the cluster would be a 5xx that loses mail. When no leader can confirm,
// the answer is ErrUnavailable (a temporary failure). A positive answer
// that went stale is caught again at apply.
func (s *Service) ResolveRecipient(ctx context.Context, addr string) ([]string, error) {
	out, err := s.resolveLocal(addr)
	if !errors.Is(err, ErrNoSuchUser) && !errors.Is(err, ErrNotLocalDomain) {
		return out, err
	}
	if serr := s.Sync(ctx); serr != nil {
		return nil, serr
	}
	return s.resolveLocal(addr)
}

func (s *Service) resolveLocal(addr string) ([]string, error) {
	e, err := recipientAddress(addr)
	if err != nil {
		return nil, err
	}
	at := strings.LastIndexByte(e, '@')
	local, domain := e[:at], e[at+1:]
	var out []string
	err = s.read(func(r storage.Reader) error {
		d, err := r.Domain(domain)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotLocalDomain
		} else if err != nil {
			return err
		}
		try := []string{e}
		if i := strings.IndexByte(local, '+'); i > 0 {
			try = append(try, local[:i]+"@"+domain)
		}
		if d.CatchAll != "" {
			try = append(try, d.CatchAll+"@"+domain)
		}
		for _, cand := range try {
			if _, err := r.UserByEmail(cand); err == nil {
				out = []string{cand}
				return nil
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if a, err := r.Alias(cand); err == nil && len(a.Targets) > 0 {
				out = append([]string(nil), a.Targets...)
				return nil
			} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		return ErrNoSuchUser
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
