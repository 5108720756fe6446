package raftfsm

import (
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// Limits of AppendBatch, part of the determinism contract like those in
// validate.go.
const (
	// maxBatchItems bounds the messages of one AppendBatch (the proposer
	// also keeps the entry near 1 MiB, see node/mail.ImportBatchBytes).
	maxBatchItems = 1000
	// importDedupeTTL is how long, in log time, an item's dedupe key
	// stays: long enough to outlive any proposal still in flight when an
	// import was interrupted, short enough that a large import does not
	// leave millions of rows behind for a week.
	importDedupeTTL = 60 * 60 * 1e9
)

// applyAppendBatch stores many messages in one mailbox (continuum import).
// Every item is checked before it writes and has its own outcome, so a bad
// or over-quota message fails alone; the command fails as a whole only when
// the batch is malformed or its user or mailbox is missing.
func applyAppendBatch(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetAppendBatch()
	if n := len(op.GetItems()); n == 0 || n > maxBatchItems {
		return invalid("batch of %d messages", n), nil
	}
	u, box, res, err := t.userAndMailbox(op.GetUserId(), op.GetMailboxId())
	if res != nil || err != nil {
		return res, err
	}
	// Every dedupe row this batch writes is matched by one expired here,
	// beyond the per-command expiry, so imports cannot outgrow it.
	if _, err := t.b.ExpireDedupe(t.now, len(op.GetItems())); err != nil {
		return nil, err
	}
	out := &commandpb.Result{UserId: u.Id, MailboxId: box.Id, UidValidity: box.UidValidity}
	first := len(t.events)
	for _, it := range op.GetItems() {
		d, err := t.appendItem(u, box, it)
		if err != nil {
			return nil, err
		}
		out.Deliveries = append(out.Deliveries, d)
	}
	for i := first; i < len(t.events); i++ {
		t.events[i].Bulk = true
	}
	out.Modseq = box.HighestModseq
	return out, nil
}

func (t *tx) appendItem(u *storagepb.User, box *storagepb.Mailbox, it *commandpb.AppendItem) (*commandpb.Delivery, error) {
	if res := t.checkBlob(it.GetBlob()); res != nil {
		return delivery(res.Code), nil
	}
	flags, ok := normalizeFlags(it.GetFlags())
	if !ok || len(it.GetDedupeKey()) > maxDedupeKeyLen {
		return delivery(commandpb.Code_CODE_INVALID), nil
	}
	key := it.GetDedupeKey()
	if len(key) > 0 {
		d, err := t.b.Dedupe(key)
		if ok, err := found(err); err != nil {
			return nil, err
		} else if ok && d.ExpiresUnixNano > t.now && d.MailboxId == box.Id {
			// Still there? An expunged first copy does not hold back a
			// new one.
			_, err := t.b.Message(box.Id, d.Uid)
			if ok, err := found(err); err != nil {
				return nil, err
			} else if ok {
				return &commandpb.Delivery{MailboxId: box.Id, Uid: d.Uid, Duplicate: true}, nil
			}
		}
	}
	if res, err := t.openUpload(it.GetBlob()); res != nil || err != nil {
		if err != nil {
			return nil, err
		}
		return delivery(res.Code), nil
	}
	m, code, err := t.storeMessage(u, box, it.GetBlob(), flags, it.GetInternalDateUnix())
	if err == nil && code == commandpb.Code_CODE_OK {
		err = t.finishUpload()
	} else {
		t.upload, t.uploadID = nil, nil // not adopted: it expires
	}
	if err != nil || code != commandpb.Code_CODE_OK {
		return delivery(code), err
	}
	if len(key) > 0 {
		if err := t.b.PutDedupe(key, &storagepb.Dedupe{MailboxId: box.Id, Uid: m.Uid, ExpiresUnixNano: t.now + importDedupeTTL}); err != nil {
			return nil, err
		}
	}
	return &commandpb.Delivery{MailboxId: box.Id, Uid: m.Uid}, nil
}
