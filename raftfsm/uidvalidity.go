package raftfsm

import (
	"fmt"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// applyUIDValidityRenew gives every mailbox of one user (user_id) or of
// every user (0) a new UIDVALIDITY from the state's own counter, so it is
// never lower than any value the cluster used before.
//
// It emits no event: its one proposer today is the offline restore
// (ApplyOffline), before any session exists. A live proposer would first
// have to give IMAP sessions an event that makes them drop the mailbox.
func applyUIDValidityRenew(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	var users []*storagepb.User
	if id := c.GetUidValidityRenew().GetUserId(); id != 0 {
		u, err := t.b.User(id)
		if ok, err := found(err); err != nil {
			return nil, err
		} else if !ok {
			return notFound("user"), nil
		}
		users = []*storagepb.User{u}
	} else {
		var err error
		if users, err = t.b.Users(); err != nil {
			return nil, err
		}
	}
	for _, u := range users {
		mbs, err := t.b.Mailboxes(u.GetId())
		if err != nil {
			return nil, err
		}
		for _, m := range mbs {
			v, err := t.b.NextUIDValidity()
			if err != nil {
				return nil, err
			}
			m.UidValidity = v
			if err := t.b.PutMailbox(m); err != nil {
				return nil, err
			}
		}
	}
	return okResult(), nil
}

// offline lists the operations ApplyOffline accepts: those whose effect
// does not depend on the log (time, dedupe, uploads) and that a node may
// apply to its own state while it is stopped.
var offline = map[string]bool{"uid_validity_renew": true}

// ApplyOffline applies one command to db outside Raft, on a stopped node,
// through the same handler a replicated entry uses: the applied index, the
// log time and the dedupe and upload expiries are left as they are. It is
// for a restore (node.Restore renews UIDVALIDITY) whose result the other
// nodes receive by InstallSnapshot, so replicas still agree. A domain
// failure is returned as an error.
func ApplyOffline(db *storage.DB, c *commandpb.Command) error {
	fd := c.ProtoReflect().WhichOneof(opOneof)
	if fd == nil || !offline[string(fd.Name())] {
		return fmt.Errorf("%w: not an offline operation", ErrUnknownOp)
	}
	b := db.NewBatch()
	defer b.Close()
	index, _, err := b.Applied()
	if err != nil {
		return err
	}
	now, err := b.LogTime()
	if err != nil {
		return err
	}
	res, err := handlers[fd.Number()](&tx{b: b, index: index, now: now}, c)
	if err != nil {
		return err
	}
	if res.GetCode() != commandpb.Code_CODE_OK {
		return fmt.Errorf("raftfsm: %s: %v: %s", fd.Name(), res.GetCode(), res.GetMessage())
	}
	return b.Commit(true)
}
