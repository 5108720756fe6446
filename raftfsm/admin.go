package raftfsm

import (
	"slices"
	"strings"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

func exists(what string) *commandpb.Result {
	return result(commandpb.Code_CODE_EXISTS, what+" exists")
}

func applyDomainAdd(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetDomainAdd()
	name, ok := normalizeDomain(op.GetName())
	if !ok {
		return invalid("bad domain name"), nil
	}
	catchAll := asciiLower(op.GetCatchAll())
	if catchAll != "" && !validLocalPart(catchAll) {
		return invalid("bad catch-all local part"), nil
	}
	_, err := t.b.Domain(name)
	if ok, err := found(err); err != nil {
		return nil, err
	} else if ok {
		return exists("domain"), nil
	}
	return okResult(), t.b.PutDomain(&storagepb.Domain{Name: name, CatchAll: catchAll, CreatedUnixNano: t.now})
}

func applyDomainDel(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	name, ok := normalizeDomain(c.GetDomainDel().GetName())
	if !ok {
		return invalid("bad domain name"), nil
	}
	_, err := t.b.Domain(name)
	if ok, err := found(err); err != nil || !ok {
		return notFound("domain"), err
	}
	// Admin operation, rare: a scan of the users and aliases is fine.
	users, err := t.b.Users()
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		if strings.HasSuffix(u.GetEmail(), "@"+name) {
			return result(commandpb.Code_CODE_NOT_EMPTY, "domain has users"), nil
		}
	}
	return okResult(), t.b.DeleteDomain(name)
}

// localAddress resolves an address to its user if it is one; it reports
// whether the domain is local.
func (t *tx) localAddress(email, domain string) (u *storagepb.User, local bool, err error) {
	_, err = t.b.Domain(domain)
	if ok, err := found(err); err != nil || !ok {
		return nil, false, err
	}
	u, err = t.b.UserByEmail(email)
	if ok, err := found(err); err != nil || !ok {
		return nil, true, err
	}
	return u, true, nil
}

// defaultMailboxes are created for every new user, in this order (so their
// IDs and UIDVALIDITYs are the same on every node).
var defaultMailboxes = []struct{ name, specialUse string }{
	{"INBOX", ""}, {"Sent", `\Sent`}, {"Drafts", `\Drafts`}, {"Trash", `\Trash`},
	{"Junk", `\Junk`}, {"Archive", `\Archive`},
}

func applyUserAdd(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetUserAdd()
	email, domain, ok := normalizeEmail(op.GetEmail())
	if !ok {
		return invalid("bad address"), nil
	}
	if len(op.GetPasswordHash()) > maxPasswordHash {
		return invalid("password hash too long"), nil
	}
	u, local, err := t.localAddress(email, domain)
	if err != nil {
		return nil, err
	}
	if !local {
		return notFound("domain"), nil
	}
	if u != nil {
		return exists("user"), nil
	}
	_, err = t.b.Alias(email)
	if ok, err := found(err); err != nil {
		return nil, err
	} else if ok {
		return exists("alias"), nil
	}
	id, err := t.b.NextUserID()
	if err != nil {
		return nil, err
	}
	u = &storagepb.User{Id: id, Email: email, PasswordHash: op.GetPasswordHash(), QuotaBytes: op.GetQuotaBytes(), CreatedUnixNano: t.now}
	if err := t.b.PutUser(u); err != nil {
		return nil, err
	}
	for _, d := range defaultMailboxes {
		if _, err := t.newMailbox(id, d.name, d.specialUse, true); err != nil {
			return nil, err
		}
	}
	return &commandpb.Result{UserId: id}, nil
}

// userByEmail validates the address and looks its user up.
func (t *tx) userByEmail(raw string) (*storagepb.User, *commandpb.Result, error) {
	email, _, ok := normalizeEmail(raw)
	if !ok {
		return nil, invalid("bad address"), nil
	}
	u, err := t.b.UserByEmail(email)
	if ok, err := found(err); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, notFound("user"), nil
	}
	return u, nil, nil
}

func applyUserPasswd(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetUserPasswd()
	if len(op.GetPasswordHash()) > maxPasswordHash {
		return invalid("password hash too long"), nil
	}
	u, res, err := t.userByEmail(op.GetEmail())
	if res != nil || err != nil {
		return res, err
	}
	u.PasswordHash = op.GetPasswordHash()
	return &commandpb.Result{UserId: u.Id}, t.b.PutUser(u)
}

func applyQuotaSet(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetQuotaSet()
	u, res, err := t.userByEmail(op.GetEmail())
	if res != nil || err != nil {
		return res, err
	}
	u.QuotaBytes = op.GetQuotaBytes()
	return &commandpb.Result{UserId: u.Id}, t.b.PutUser(u)
}

// applyUserDel deletes an account with all its mail, its vault included;
// a user under legal hold (its own or its domain's) is refused.
func applyUserDel(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	u, res, err := t.userByEmail(c.GetUserDel().GetEmail())
	if res != nil || err != nil {
		return res, err
	}
	k, err := t.rule(u.Email)
	if err != nil {
		return nil, err
	}
	if k.held {
		return result(commandpb.Code_CODE_HELD, "user "+u.Email+" is under legal hold ("+k.hold+"): release the hold first"), nil
	}
	boxes, err := t.b.Mailboxes(u.Id)
	if err != nil {
		return nil, err
	}
	for _, box := range boxes {
		if err := t.dropMailbox(u, box, keepRule{}); err != nil {
			return nil, err
		}
	}
	if err := t.dropVault(u); err != nil {
		return nil, err
	}
	if err := t.b.DeleteUser(u); err != nil {
		return nil, err
	}
	return &commandpb.Result{UserId: u.Id}, t.link("user-del", u.Id, u.Email)
}

func applyAliasSet(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetAliasSet()
	email, domain, ok := normalizeEmail(op.GetEmail())
	if !ok {
		return invalid("bad address"), nil
	}
	if len(op.GetTargets()) > maxAliasTargets {
		return invalid("too many targets"), nil
	}
	u, local, err := t.localAddress(email, domain)
	if err != nil {
		return nil, err
	}
	if !local {
		return notFound("domain"), nil
	}
	if u != nil {
		return exists("user"), nil
	}
	targets := make([]string, 0, len(op.GetTargets()))
	for _, raw := range op.GetTargets() {
		target, tdomain, ok := normalizeEmail(raw)
		if !ok || target == email {
			return invalid("bad target"), nil
		}
		// A target is a user or another address of a local domain (an
		// alias, maybe set later): never a remote address, so an alias
		// cannot turn the cluster into a relay.
		_, tlocal, err := t.localAddress(target, tdomain)
		if err != nil {
			return nil, err
		}
		if !tlocal {
			return notFound("target domain"), nil
		}
		targets = append(targets, target)
	}
	slices.Sort(targets)
	targets = slices.Compact(targets)
	if len(targets) == 0 {
		_, err := t.b.Alias(email)
		if ok, err := found(err); err != nil || !ok {
			return okResult(), err
		}
		return okResult(), t.b.DeleteAlias(email)
	}
	return okResult(), t.b.PutAlias(&storagepb.Alias{Email: email, Targets: targets})
}
