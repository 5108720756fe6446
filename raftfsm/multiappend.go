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
// found it (the rule of handler). append_all items carry their message
// inline (an upload is refused); append_all_uploaded items may name a
// message proposed in chunks, each upload checked complete and verified
// (openUpload) with the rest, and adopted or dropped as APPEND does. A
// dedupe key is refused in both.
func applyAppendAll(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	return appendAllItems(t, c.GetAppendAll(), false)
}

// applyAppendAllUploaded is applyAppendAll whose items may be uploads.
func applyAppendAllUploaded(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	return appendAllItems(t, c.GetAppendAllUploaded(), true)
}

func appendAllItems(t *tx, op *commandpb.AppendBatch, uploads bool) (*commandpb.Result, error) {
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
	seen := map[string]bool{}
	for i, it := range items {
		id := it.GetBlob().GetUploadId()
		switch {
		case len(id) > 0 && !uploads:
			return invalid("MULTIAPPEND item %d: uploaded blobs are not taken", i+1), nil
		case len(id) > 0 && seen[string(id)]:
			// One upload is adopted by one message: a second item naming
			// it would fail after the first had been written.
			return invalid("MULTIAPPEND item %d: upload named twice", i+1), nil
		case len(it.GetDedupeKey()) > 0:
			return invalid("MULTIAPPEND item %d: dedupe keys are not taken", i+1), nil
		}
		seen[string(id)] = len(id) > 0
		if res := t.checkBlob(it.GetBlob()); res != nil {
			res.Message = fmt.Sprintf("MULTIAPPEND item %d: %s", i+1, res.Message)
			return res, nil
		}
		if res, err := t.openUpload(it.GetBlob()); res != nil || err != nil {
			if res != nil {
				res.Message = fmt.Sprintf("MULTIAPPEND item %d: %s", i+1, res.Message)
			}
			return res, err
		}
		t.upload, t.uploadID = nil, nil // opened again when the item is stored
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
		// Again for an upload (it verified above, and no earlier item
		// touched it): it sets the upload and header block storeMessage
		// adopts. The second verification is the cost of keeping one
		// upload state in tx.
		if res, err := t.openUpload(it.GetBlob()); res != nil || err != nil {
			if err == nil {
				err = fmt.Errorf("raftfsm: MULTIAPPEND item %d: upload refused (%s) after its checks passed", i+1, res.GetMessage())
			}
			return nil, err
		}
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
		if err := t.finishUpload(); err != nil {
			return nil, err
		}
		out.Uids = append(out.Uids, m.Uid)
		out.Modseq = m.Modseq
	}
	if err := t.link("append", u.Id, ""); err != nil {
		return nil, err
	}
	return out, nil
}
