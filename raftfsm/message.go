package raftfsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// checkBlob validates a command's message bytes: the SHA-256 the proposer
// computed must be the bytes' (the blob is stored under it, once, so a
// wrong hash would attach another message's stored bytes, perhaps another
// user's, to this one).
//
// A blob the proposer compressed (zstd set) is decompressed and hashed
// here too: the proposer is not trusted to have hashed what it compressed.
// Decompression is deterministic and bounded by the declared size; the
// cost is measured in docs/notes/fabric.md.
//
// It returns the message bytes when it had them inline, and for a
// compressed blob the prefix that holds the header block (headerPrefix).
func checkBlob(b *commandpb.Blob) ([]byte, *commandpb.Result) {
	if len(b.GetUploadId()) > 0 {
		return nil, checkChunkedBlob(b)
	}
	if len(b.GetZstd()) > 0 {
		switch {
		case len(b.GetData()) > 0:
			return nil, invalid("blob has both data and zstd")
		case b.GetSize() == 0 || b.GetSize() > maxMessageSize:
			return nil, invalid("compressed blob with a bad size")
		case len(b.GetSha256()) != sha256.Size:
			return nil, invalid("blob id is not a SHA-256")
		}
		// Hashed without keeping the bytes (raw frames in place, others
		// through a pooled buffer), save the header block's prefix.
		sum, data, err := storage.SumFrameHead(b.GetZstd(), b.GetSize(), headerPrefix(b.GetParsed()))
		if err != nil {
			return nil, invalid("compressed blob does not decompress to its size")
		}
		if !bytes.Equal(sum[:], b.GetSha256()) {
			return nil, invalid("blob SHA-256 does not match its data")
		}
		return data, nil
	}
	if len(b.GetData()) == 0 {
		return nil, invalid("empty message")
	}
	if sum := sha256.Sum256(b.GetData()); !bytes.Equal(sum[:], b.GetSha256()) {
		return nil, invalid("blob SHA-256 does not match its data")
	}
	return b.GetData(), nil
}

// checkBlob is checkBlob (above) that also keeps the command's header block
// for putBlob: bytes [header_start, header_end) of the message, as the
// parsed record's root names them (what FETCH BODY[HEADER] returns).
func (t *tx) checkBlob(b *commandpb.Blob) *commandpb.Result {
	data, res := checkBlob(b)
	t.header = nil
	if res == nil {
		t.header = headerBlock(b.GetParsed(), data)
	}
	return res
}

// headerBlock is the header block of data as parsed's root names it, or
// nil when there is none to store apart (no bytes at hand, offsets out of
// range, or longer than storage.MaxHeaderBlock).
func headerBlock(parsed *storagepb.ParsedMessage, data []byte) []byte {
	root := parsed.GetRoot()
	start, end := root.GetHeaderStart(), root.GetHeaderEnd()
	if start >= end || end > uint64(len(data)) || end-start > storage.MaxHeaderBlock {
		return nil
	}
	return data[start:end]
}

// headerPrefix is how many bytes of a compressed message checkBlob keeps:
// up to the header block's end, when it is small enough to store apart.
func headerPrefix(parsed *storagepb.ParsedMessage) int {
	end := parsed.GetRoot().GetHeaderEnd()
	if end > storage.MaxHeaderBlock+parsed.GetRoot().GetHeaderStart() {
		return 0
	}
	return int(end)
}

// maxMessageSize bounds a compressed blob's declared size (1 GiB, the
// largest max-message-bytes a node accepts).
const maxMessageSize = 1 << 30

// blobSize is the message's uncompressed size.
func blobSize(b *commandpb.Blob) uint64 {
	if len(b.GetZstd()) > 0 || len(b.GetUploadId()) > 0 {
		return b.GetSize()
	}
	return uint64(len(b.GetData()))
}

// putBlob stores the command's blob, compressed by the proposer or here,
// and, for a new blob, its header block apart (storage/headers.go).
func (t *tx) putBlob(b *commandpb.Blob) error {
	var err error
	created := false
	switch {
	case len(b.GetUploadId()) > 0:
		created, err = t.putChunkedBlob(b)
	case len(b.GetZstd()) > 0:
		created, err = t.b.PutBlobCompressed(b.GetSha256(), b.GetZstd(), b.GetSize(), b.GetParsed())
	default:
		created, err = t.b.PutBlob(b.GetSha256(), b.GetData(), b.GetParsed())
	}
	if err == nil && created {
		err = t.b.PutHeaderBlock(b.GetSha256(), t.header)
	}
	return err
}

func overQuota(u *storagepb.User, size uint64) bool {
	return u.QuotaBytes != 0 && u.UsedBytes+size > u.QuotaBytes
}

func delivery(code commandpb.Code) *commandpb.Delivery { return &commandpb.Delivery{Code: code} }

// applyDeliver stores one message for every recipient: the blob once, a
// message per recipient. Each recipient has its own outcome; the command's
// code is OK unless the command itself is invalid.
func applyDeliver(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetDeliver()
	if res := t.checkBlob(op.GetBlob()); res != nil {
		return res, nil
	}
	if len(op.GetRecipients()) == 0 {
		return invalid("no recipients"), nil
	}
	if res, err := t.openUpload(op.GetBlob()); res != nil || err != nil {
		return res, err
	}
	res := &commandpb.Result{}
	for _, r := range op.GetRecipients() {
		d, err := t.deliverOne(op, r)
		if err != nil {
			return nil, err
		}
		res.Deliveries = append(res.Deliveries, d)
		if d.Code == commandpb.Code_CODE_OK && !d.Duplicate {
			t.ref(d.MailboxId, d.Uid, op.GetBlob().GetSha256(), false)
		}
	}
	if len(t.refs) > 0 {
		if err := t.link("deliver", 0, ""); err != nil {
			return nil, err
		}
	}
	return res, t.finishUpload()
}

func (t *tx) deliverOne(op *commandpb.Deliver, r *commandpb.Recipient) (*commandpb.Delivery, error) {
	email, _, ok := normalizeEmail(r.GetEmail())
	if !ok {
		return delivery(commandpb.Code_CODE_INVALID), nil
	}
	flags, ok := normalizeFlags(r.GetFlags())
	if !ok || len(r.GetDedupeKey()) > maxDedupeKeyLen {
		return delivery(commandpb.Code_CODE_INVALID), nil
	}
	u, err := t.b.UserByEmail(email)
	if ok, err := found(err); err != nil {
		return nil, err
	} else if !ok || u.Disabled {
		return delivery(commandpb.Code_CODE_NOT_FOUND), nil
	}
	key := r.GetDedupeKey()
	if len(key) > 0 {
		d, err := t.b.Dedupe(key)
		if ok, err := found(err); err != nil {
			return nil, err
		} else if ok && d.ExpiresUnixNano > t.now {
			// A retry: report the first delivery, provided it was to this
			// user (a deleted and re-created user is a new recipient).
			_, err := t.b.Mailbox(u.Id, d.MailboxId)
			if ok, err := found(err); err != nil {
				return nil, err
			} else if ok {
				return &commandpb.Delivery{MailboxId: d.MailboxId, Uid: d.Uid, Duplicate: true}, nil
			}
		}
	}
	var box *storagepb.Mailbox
	if r.GetMailbox() != "" {
		if name, ok := normalizeMailboxName(r.GetMailbox()); ok {
			box, err = t.b.MailboxByName(u.Id, name)
			if _, err := found(err); err != nil {
				return nil, err
			}
		}
	}
	if box == nil {
		// A missing or unusable target folder falls back to INBOX, as
		// Sieve's fileinto does (RFC 5228 §4.1).
		if box, err = t.b.MailboxByName(u.Id, "INBOX"); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return delivery(commandpb.Code_CODE_NOT_FOUND), nil
			}
			return nil, err
		}
	}
	m, code, err := t.storeMessage(u, box, op.GetBlob(), flags, op.GetInternalDateUnix())
	if err != nil || code != commandpb.Code_CODE_OK {
		return delivery(code), err
	}
	if len(key) > 0 {
		if err := t.b.PutDedupe(key, &storagepb.Dedupe{MailboxId: box.Id, Uid: m.Uid, ExpiresUnixNano: t.now + dedupeTTL}); err != nil {
			return nil, err
		}
	}
	return &commandpb.Delivery{MailboxId: box.Id, Uid: m.Uid}, nil
}

// storeMessage adds one message to box (quota and UID space permitting):
// the blob (once), the message row, and the mailbox and user counters.
func (t *tx) storeMessage(u *storagepb.User, box *storagepb.Mailbox, blob *commandpb.Blob, flags []string, date int64) (*storagepb.Message, commandpb.Code, error) {
	size := blobSize(blob)
	if overQuota(u, size) {
		return nil, commandpb.Code_CODE_OVER_QUOTA, nil
	}
	if box.UidNext == ^uint32(0) {
		return nil, commandpb.Code_CODE_INVALID, nil // UIDs exhausted: RFC 9051 §2.3.1.1
	}
	if err := t.putBlob(blob); err != nil {
		return nil, 0, err
	}
	m := &storagepb.Message{Blob: blob.GetSha256(), Flags: flags, InternalDateUnix: date, Size: size, SaveDateUnix: t.now / 1e9}
	if err := t.addMessage(u, box, m); err != nil {
		return nil, 0, err
	}
	if err := t.b.PutMailbox(box); err != nil {
		return nil, 0, err
	}
	if err := t.b.PutUser(u); err != nil {
		return nil, 0, err
	}
	return m, commandpb.Code_CODE_OK, nil
}

// applyAppend implements APPEND (RFC 9051 §6.3.12) into a mailbox of the user.
func applyAppend(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetAppend()
	if res := t.checkBlob(op.GetBlob()); res != nil {
		return res, nil
	}
	flags, ok := normalizeFlags(op.GetFlags())
	if !ok {
		return invalid("bad flags"), nil
	}
	u, box, res, err := t.userAndMailbox(op.GetUserId(), op.GetMailboxId())
	if res != nil || err != nil {
		return res, err
	}
	if res, err := t.openUpload(op.GetBlob()); res != nil || err != nil {
		return res, err
	}
	m, code, err := t.storeMessage(u, box, op.GetBlob(), flags, op.GetInternalDateUnix())
	if err == nil && code == commandpb.Code_CODE_OK {
		// A failed APPEND leaves no trace; its upload expires.
		t.ref(box.Id, m.Uid, m.Blob, false)
		if err = t.link("append", u.Id, ""); err == nil {
			err = t.finishUpload()
		}
	}
	switch {
	case err != nil:
		return nil, err
	case code == commandpb.Code_CODE_OVER_QUOTA:
		return result(code, "over quota"), nil
	case code != commandpb.Code_CODE_OK:
		return invalid("UIDs exhausted"), nil
	}
	return &commandpb.Result{UserId: u.Id, MailboxId: box.Id, UidValidity: box.UidValidity,
		Uids: []uint32{m.Uid}, Modseq: m.Modseq}, nil
}

// applyStoreFlags implements STORE (RFC 9051 §6.4.6) with CONDSTORE's
// UNCHANGEDSINCE (RFC 7162 §3.1.3). Every changed message gets its own new
// MODSEQ; unchanged messages keep theirs.
func applyStoreFlags(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetStoreFlags()
	flags, ok := normalizeFlags(op.GetFlags())
	if !ok {
		return invalid("bad flags"), nil
	}
	switch op.GetOp() {
	case commandpb.FlagOp_FLAG_OP_ADD, commandpb.FlagOp_FLAG_OP_REMOVE, commandpb.FlagOp_FLAG_OP_REPLACE:
	default:
		return invalid("unknown flag operation"), nil
	}
	box, res, err := t.userMailbox(op.GetUserId(), op.GetMailboxId())
	if res != nil || err != nil {
		return res, err
	}
	msgs, res, err := t.selectMessages(box.Id, op.GetUids())
	if res != nil || err != nil {
		return res, err
	}
	out := &commandpb.Result{UserId: box.UserId, MailboxId: box.Id, UidValidity: box.UidValidity}
	for _, m := range msgs {
		if op.GetUnchangedSince() != 0 && m.Modseq > op.GetUnchangedSince() {
			out.Modified = append(out.Modified, m.Uid)
			continue
		}
		nf := newFlags(m.Flags, flags, op.GetOp())
		if slices.Equal(nf, m.Flags) {
			continue
		}
		wasSeen, isSeen := hasFlag(m.Flags, `\Seen`), hasFlag(nf, `\Seen`)
		switch {
		case wasSeen && !isSeen:
			box.Unseen++
		case !wasSeen && isSeen:
			box.Unseen--
		}
		old := m.Modseq
		box.HighestModseq++
		m.Flags, m.Modseq = nf, box.HighestModseq
		if err := t.b.PutMessage(box.Id, m, old); err != nil {
			return nil, err
		}
		out.Uids = append(out.Uids, m.Uid)
		t.event(FlagsChanged, box.UserId, box.Id, m.Uid, m.Modseq, "")
	}
	if len(out.Uids) > 0 {
		if err := t.b.PutMailbox(box); err != nil {
			return nil, err
		}
	}
	out.Modseq = box.HighestModseq
	if len(out.Modified) > 0 {
		out.Code = commandpb.Code_CODE_MODIFIED
	}
	return out, nil
}

func newFlags(cur, flags []string, op commandpb.FlagOp) []string {
	var out []string
	switch op {
	case commandpb.FlagOp_FLAG_OP_REPLACE:
		out = slices.Clone(flags)
	case commandpb.FlagOp_FLAG_OP_ADD:
		out = slices.Clone(cur)
		for _, f := range flags {
			if !hasFlag(out, f) {
				out = append(out, f)
			}
		}
	case commandpb.FlagOp_FLAG_OP_REMOVE:
		for _, f := range cur {
			if !hasFlag(flags, f) {
				out = append(out, f)
			}
		}
	}
	sortFlags(out)
	return out
}

// applyCopy implements COPY (RFC 9051 §6.4.7) with UIDPLUS's COPYUID data
// (RFC 4315 §3): Result.src_uids and uids pair source and new UIDs.
func applyCopy(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetCopy()
	return t.copyMessages(op.GetUserId(), op.GetMailboxId(), op.GetDestMailboxId(), op.GetUids(), false)
}

// applyMove implements MOVE (RFC 6851 §3.1): a copy and an expunge of the
// source messages in one command, so no node ever shows both or neither.
func applyMove(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetMove()
	return t.copyMessages(op.GetUserId(), op.GetMailboxId(), op.GetDestMailboxId(), op.GetUids(), true)
}

func (t *tx) copyMessages(userID, srcID, dstID uint64, uids []*commandpb.UIDRange, move bool) (*commandpb.Result, error) {
	if move && srcID == dstID {
		return invalid("move into the same mailbox"), nil
	}
	u, res, err := t.mailboxUser(userID)
	if res != nil || err != nil {
		return res, err
	}
	src, res, err := t.userMailbox(u.Id, srcID)
	if res != nil || err != nil {
		return res, err
	}
	dst, res, err := t.userMailbox(u.Id, dstID)
	if res != nil || err != nil {
		return res, err
	}
	if srcID == dstID {
		dst = src // one record, updated once
	}
	msgs, res, err := t.selectMessages(src.Id, uids)
	if res != nil || err != nil {
		return res, err
	}
	var total uint64
	for _, m := range msgs {
		total += m.Size
	}
	if !move && overQuota(u, total) {
		return result(commandpb.Code_CODE_OVER_QUOTA, "over quota"), nil
	}
	if uint64(dst.UidNext)+uint64(len(msgs)) >= uint64(^uint32(0)) {
		return invalid("UIDs exhausted"), nil
	}
	out := &commandpb.Result{UserId: u.Id, MailboxId: dst.Id, UidValidity: dst.UidValidity}
	for _, m := range msgs {
		if err := t.b.RefBlob(m.Blob); err != nil {
			return nil, err
		}
		nm := &storagepb.Message{Blob: m.Blob, Flags: m.Flags, InternalDateUnix: m.InternalDateUnix,
			Size: m.Size, SaveDateUnix: t.now / 1e9}
		if err := t.addMessage(u, dst, nm); err != nil {
			return nil, err
		}
		out.SrcUids = append(out.SrcUids, m.Uid)
		out.Uids = append(out.Uids, nm.Uid)
		if move {
			if err := t.removeMessage(u, src, m); err != nil {
				return nil, err
			}
		}
	}
	if len(msgs) > 0 {
		if err := t.b.PutMailbox(dst); err != nil {
			return nil, err
		}
		if move {
			if err := t.b.PutMailbox(src); err != nil {
				return nil, err
			}
		}
		if err := t.b.PutUser(u); err != nil {
			return nil, err
		}
	}
	out.Modseq = dst.HighestModseq
	return out, nil
}

// applyExpunge implements EXPUNGE (RFC 9051 §6.4.3) and UID EXPUNGE (RFC 4315
// §2.1): the \Deleted messages, of uids when given, go; each leaves a
// tombstone at its own new MODSEQ.
func applyExpunge(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetExpunge()
	u, box, res, err := t.userAndMailbox(op.GetUserId(), op.GetMailboxId())
	if res != nil || err != nil {
		return res, err
	}
	ranges := op.GetUids()
	if len(ranges) == 0 {
		ranges = []*commandpb.UIDRange{{Start: 1}}
	}
	msgs, res, err := t.selectMessages(box.Id, ranges)
	if res != nil || err != nil {
		return res, err
	}
	// A held user's messages, and those its retention policy still
	// covers, go to the vault instead of being destroyed.
	k, err := t.rule(u.Email)
	if err != nil {
		return nil, err
	}
	out := &commandpb.Result{UserId: u.Id, MailboxId: box.Id, UidValidity: box.UidValidity}
	for _, m := range msgs {
		if !hasFlag(m.Flags, `\Deleted`) {
			continue
		}
		if err := t.discard(u, box, m, k); err != nil {
			return nil, err
		}
		out.Uids = append(out.Uids, m.Uid)
	}
	if len(out.Uids) > 0 {
		if err := t.b.PutMailbox(box); err != nil {
			return nil, err
		}
		if err := t.b.PutUser(u); err != nil {
			return nil, err
		}
		if err := t.link("expunge", u.Id, ""); err != nil {
			return nil, err
		}
	}
	out.Modseq = box.HighestModseq
	return out, nil
}
