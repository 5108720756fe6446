package raftfsm

import (
	"strings"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// mailboxUser checks that the user of a mailbox command exists.
func (t *tx) mailboxUser(userID uint64) (*storagepb.User, *commandpb.Result, error) {
	u, err := t.b.User(userID)
	if ok, err := found(err); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, notFound("user"), nil
	}
	return u, nil, nil
}

func (t *tx) mailboxExists(userID uint64, name string) (bool, error) {
	_, err := t.b.MailboxByName(userID, name)
	return found(err)
}

// createParents creates the missing ancestors of name, as IMAP CREATE and
// RENAME do (RFC 9051 §6.3.4, §6.3.6).
func (t *tx) createParents(userID uint64, name string) error {
	for _, p := range parentNames(name) {
		ok, err := t.mailboxExists(userID, p)
		if err != nil {
			return err
		}
		if !ok {
			if _, err := t.newMailbox(userID, p, "", false); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyMailboxCreate implements CREATE (RFC 9051 §6.3.4) with CREATE-SPECIAL-USE
// (RFC 6154 §3).
func applyMailboxCreate(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetMailboxCreate()
	name, ok := normalizeMailboxName(op.GetName())
	if !ok {
		return invalid("bad mailbox name"), nil
	}
	use, ok := normalizeSpecialUse(op.GetSpecialUse())
	if !ok {
		return invalid("unknown special use"), nil
	}
	if _, res, err := t.mailboxUser(op.GetUserId()); res != nil || err != nil {
		return res, err
	}
	if ok, err := t.mailboxExists(op.GetUserId(), name); err != nil {
		return nil, err
	} else if ok {
		return exists("mailbox"), nil
	}
	if err := t.createParents(op.GetUserId(), name); err != nil {
		return nil, err
	}
	m, err := t.newMailbox(op.GetUserId(), name, use, false)
	if err != nil {
		return nil, err
	}
	return &commandpb.Result{UserId: m.UserId, MailboxId: m.Id, UidValidity: m.UidValidity}, nil
}

// applyMailboxRename implements RENAME (RFC 9051 §6.3.6). A renamed mailbox
// keeps its ID and UIDVALIDITY (its UIDs still name the same messages), and
// its inferior names move with it. Renaming INBOX moves its messages to a
// new mailbox and leaves INBOX empty; INBOX's inferiors stay where they are.
func applyMailboxRename(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetMailboxRename()
	from, ok1 := normalizeMailboxName(op.GetFrom())
	to, ok2 := normalizeMailboxName(op.GetTo())
	if !ok1 || !ok2 {
		return invalid("bad mailbox name"), nil
	}
	if to == "INBOX" {
		return invalid("cannot rename to INBOX"), nil
	}
	if to == from || (from != "INBOX" && strings.HasPrefix(to, from+"/")) {
		return invalid("cannot rename a mailbox into itself"), nil
	}
	u, res, err := t.mailboxUser(op.GetUserId())
	if res != nil || err != nil {
		return res, err
	}
	src, err := t.b.MailboxByName(u.Id, from)
	if ok, err := found(err); err != nil || !ok {
		return notFound("mailbox"), err
	}
	if ok, err := t.mailboxExists(u.Id, to); err != nil {
		return nil, err
	} else if ok {
		return exists("mailbox"), nil
	}
	if from == "INBOX" {
		return t.renameInbox(u, src, to)
	}
	// The inferiors, checked for a clash before anything is written.
	type child struct {
		id      uint64
		newName string
	}
	var children []child
	if err := t.b.MailboxNames(u.Id, from+"/", func(name string, id uint64) error {
		children = append(children, child{id, to + name[len(from):]})
		return nil
	}); err != nil {
		return nil, err
	}
	for _, ch := range children {
		if len(ch.newName) > maxMailboxNameLen || strings.Count(ch.newName, "/") >= maxMailboxDepth {
			return invalid("renamed inferior name too long"), nil
		}
		if ok, err := t.mailboxExists(u.Id, ch.newName); err != nil {
			return nil, err
		} else if ok {
			return exists("mailbox " + ch.newName), nil
		}
	}
	if err := t.createParents(u.Id, to); err != nil {
		return nil, err
	}
	rename := func(m *storagepb.Mailbox, name string) error {
		if err := t.b.DeleteMailboxName(u.Id, m.Name); err != nil {
			return err
		}
		m.Name = name
		if err := t.b.PutMailbox(m); err != nil {
			return err
		}
		t.event(MailboxRenamed, u.Id, m.Id, 0, 0, name)
		return nil
	}
	if err := rename(src, to); err != nil {
		return nil, err
	}
	for _, ch := range children {
		m, err := t.b.Mailbox(u.Id, ch.id)
		if err != nil {
			return nil, err
		}
		if err := rename(m, ch.newName); err != nil {
			return nil, err
		}
	}
	return &commandpb.Result{UserId: u.Id, MailboxId: src.Id, UidValidity: src.UidValidity}, nil
}

// renameInbox moves every INBOX message, with its UID and flags, to a new
// mailbox; INBOX keeps its ID and UIDVALIDITY and records the expunges.
func (t *tx) renameInbox(u *storagepb.User, inbox *storagepb.Mailbox, to string) (*commandpb.Result, error) {
	if err := t.createParents(u.Id, to); err != nil {
		return nil, err
	}
	dst, err := t.newMailbox(u.Id, to, "", false)
	if err != nil {
		return nil, err
	}
	var msgs []*storagepb.Message
	if err := t.b.Messages(inbox.Id, 1, 0, func(m *storagepb.Message) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		return nil, err
	}
	for _, m := range msgs {
		inbox.HighestModseq++
		if err := t.b.DeleteMessage(inbox.Id, m, inbox.HighestModseq); err != nil {
			return nil, err
		}
		t.event(MessageExpunged, u.Id, inbox.Id, m.Uid, inbox.HighestModseq, "")
		dst.HighestModseq++
		moved := &storagepb.Message{Uid: m.Uid, Blob: m.Blob, Flags: m.Flags, InternalDateUnix: m.InternalDateUnix,
			Size: m.Size, Modseq: dst.HighestModseq, SaveDateUnix: m.SaveDateUnix}
		if err := t.b.PutMessage(dst.Id, moved, 0); err != nil {
			return nil, err
		}
	}
	dst.UidNext = inbox.UidNext
	dst.Messages, dst.Unseen, dst.Size = inbox.Messages, inbox.Unseen, inbox.Size
	inbox.Messages, inbox.Unseen, inbox.Size = 0, 0, 0
	if err := t.b.PutMailbox(dst); err != nil {
		return nil, err
	}
	if err := t.b.PutMailbox(inbox); err != nil {
		return nil, err
	}
	t.event(MailboxChanged, u.Id, inbox.Id, 0, inbox.HighestModseq, inbox.Name)
	return &commandpb.Result{UserId: u.Id, MailboxId: dst.Id, UidValidity: dst.UidValidity}, nil
}

// applyMailboxDelete implements DELETE (RFC 9051 §6.3.5): the mailbox and its
// messages go, its inferiors stay.
func applyMailboxDelete(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetMailboxDelete()
	name, ok := normalizeMailboxName(op.GetName())
	if !ok {
		return invalid("bad mailbox name"), nil
	}
	if name == "INBOX" {
		return invalid("cannot delete INBOX"), nil
	}
	u, res, err := t.mailboxUser(op.GetUserId())
	if res != nil || err != nil {
		return res, err
	}
	box, err := t.b.MailboxByName(u.Id, name)
	if ok, err := found(err); err != nil || !ok {
		return notFound("mailbox"), err
	}
	k, err := t.rule(u.Email)
	if err != nil {
		return nil, err
	}
	if err := t.dropMailbox(u, box, k); err != nil {
		return nil, err
	}
	if err := t.b.PutUser(u); err != nil {
		return nil, err
	}
	if len(t.refs) > 0 {
		if err := t.link("mailbox-delete", u.Id, box.Name); err != nil {
			return nil, err
		}
	}
	return &commandpb.Result{UserId: u.Id, MailboxId: box.Id}, nil
}

// applyMailboxSubscribe implements SUBSCRIBE and UNSUBSCRIBE (RFC 9051
// §6.3.7, §6.3.8) for existing mailboxes: the flag lives on the mailbox row.
func applyMailboxSubscribe(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetMailboxSubscribe()
	name, ok := normalizeMailboxName(op.GetName())
	if !ok {
		return invalid("bad mailbox name"), nil
	}
	box, err := t.b.MailboxByName(op.GetUserId(), name)
	if ok, err := found(err); err != nil || !ok {
		return notFound("mailbox"), err
	}
	if box.Subscribed == op.GetSubscribed() {
		return &commandpb.Result{UserId: box.UserId, MailboxId: box.Id}, nil
	}
	box.Subscribed = op.GetSubscribed()
	t.event(MailboxChanged, box.UserId, box.Id, 0, 0, box.Name)
	return &commandpb.Result{UserId: box.UserId, MailboxId: box.Id}, t.b.PutMailbox(box)
}
