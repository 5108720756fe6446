package raftfsm

import (
	"fmt"
	"math"

	"github.com/continuum-mail/continuum/proto/commandpb"
)

// applyAppendAll implements MULTIAPPEND (RFC 3502 §3): the messages of one
// APPEND command go into one mailbox of the user together, with
// consecutive UIDs, or none does. Everything that could refuse an item —
// its blob, its flags, the quota for their sum, the UIDs left — is checked
// before anything is written, so a refused command leaves the batch as it
// found it (the rule of handler). Items carry their message inline: a
// message proposed in chunks (an upload) is refused, as is a dedupe key.
func applyAppendAll(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetAppendAll()
	items := op.GetItems()
	if n := len(items); n == 0 || n > maxBatchItems {
		return invalid("MULTIAPPEND of %d messages", n), nil
	}
	u, box, res, err := t.userAndMailbox(op.GetUserId(), op.GetMailboxId())
	if res != nil || err != nil {
		return res, err
	}
	flags := make([][]string, len(items))
	var total uint64
	for i, it := range items {
		switch {
		case len(it.GetBlob().GetUploadId()) > 0:
			return invalid("MULTIAPPEND item %d: uploaded blobs are not taken", i+1), nil
		case len(it.GetDedupeKey()) > 0:
			return invalid("MULTIAPPEND item %d: dedupe keys are not taken", i+1), nil
		}
		if res := t.checkBlob(it.GetBlob()); res != nil {
			res.Message = fmt.Sprintf("MULTIAPPEND item %d: %s", i+1, res.Message)
			return res, nil
		}
		f, ok := normalizeFlags(it.GetFlags())
		if !ok {
			return invalid("MULTIAPPEND item %d: bad flags", i+1), nil
		}
		flags[i] = f
		total += blobSize(it.GetBlob())
	}
	if overQuota(u, total) {
		return result(commandpb.Code_CODE_OVER_QUOTA, "over quota"), nil
	}
	if uint64(box.UidNext)+uint64(len(items)) > math.MaxUint32-1 {
		return invalid("UIDs exhausted"), nil
	}
	out := &commandpb.Result{UserId: u.Id, MailboxId: box.Id, UidValidity: box.UidValidity}
	for i, it := range items {
		t.checkBlob(it.GetBlob()) // again: it keeps the header block for putBlob
		m, code, err := t.storeMessage(u, box, it.GetBlob(), flags[i], it.GetInternalDateUnix())
		if err != nil {
			return nil, err
		}
		if code != commandpb.Code_CODE_OK {
			// The checks above make this impossible; if it happens the
			// earlier items are in the batch, so stop rather than commit
			// a partial MULTIAPPEND.
			return nil, fmt.Errorf("raftfsm: MULTIAPPEND item %d refused (%v) after its checks passed", i+1, code)
		}
		t.ref(box.Id, m.Uid, m.Blob, false)
		out.Uids = append(out.Uids, m.Uid)
		out.Modseq = m.Modseq
	}
	if err := t.link("append", u.Id, ""); err != nil {
		return nil, err
	}
	return out, nil
}
