package raftfsm

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
	"github.com/continuum-mail/continuum/storage/failpoint"
)

// handler applies one operation. It returns a Result for every outcome the
// proposer should see, including domain failures, and an error only when
// storage failed (the FSM then stops). A handler checks everything before it
// writes, so a failed command leaves the batch as it found it.
type handler func(t *tx, c *commandpb.Command) (*commandpb.Result, error)

// handlers is the registry of operations, keyed by the field number of the
// Command.op oneof case. It only grows, like the oneof.
var handlers = map[protoreflect.FieldNumber]handler{
	10: applyDomainAdd,
	11: applyDomainDel,
	12: applyUserAdd,
	13: applyUserPasswd,
	14: applyUserDel,
	15: applyAliasSet,
	16: applyQuotaSet,
	17: applyMailboxCreate,
	18: applyMailboxRename,
	19: applyMailboxDelete,
	20: applyMailboxSubscribe,
	21: applyDeliver,
	22: applyAppend,
	23: applyStoreFlags,
	24: applyCopy,
	25: applyMove,
	26: applyExpunge,
	27: applyBlobChunk,
	40: applyConsistencyCheck,
	// 50 (AdminCommand) is added by init: it dispatches through this map.
	51: applyRetentionSet,
	52: applyRetentionRun,
	53: applyHoldPlace,
	54: applyHoldRelease,
	55: applyVaultRestore,
	60: applyAppendBatch,
	// From 300: issue 11 (architecture).
	300: applyUIDValidityRenew,
	// From 400: issue 20 (disaster recovery).
	400: applyClusterRecovered,
	// From 1100: issue 21 (IMAP server).
	1100: applyAppendAll,
	1600: applyAppendAllUploaded,
}

// applyConsistencyCheck changes nothing: ApplyBatch commits right after it
// and hands the state to Options.OnCheck.
func applyConsistencyCheck(*tx, *commandpb.Command) (*commandpb.Result, error) {
	return okResult(), nil
}

var opOneof = (&commandpb.Command{}).ProtoReflect().Descriptor().Oneofs().ByName("op")

func init() {
	handlers[fieldAdmin] = applyAdmin
	// Every case of the oneof has a handler: a new operation without one
	// would otherwise be silently unknown to its own binary.
	fields := opOneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		if handlers[fields.Get(i).Number()] == nil {
			panic(fmt.Sprintf("raftfsm: no handler for operation %s", fields.Get(i).Name()))
		}
	}
}

// tx is the context of one command's apply.
type tx struct {
	b      *storage.Batch
	index  uint64
	now    int64 // log time, unix nanoseconds, monotone
	events []Event

	// upload is the open upload of the command's chunked blob, until a
	// message adopts it (openUpload, finishUpload).
	upload   *storagepb.Upload
	uploadID []byte
	// header is the header block of the blob checkBlob last accepted, or
	// nil: putBlob stores it apart when the blob is new.
	header []byte

	// journal is off only in benchmarks (Options.NoJournal); refs are the
	// messages of the command's journal link, collected as it applies.
	journal bool
	refs    []*storagepb.JournalRef
}

// ApplyCommand applies one decoded command into b as the entry at index. It
// is pure: the result depends only on the state in b and the command. The
// error is a storage failure (or a command with no operation); domain
// failures are Result codes.
func ApplyCommand(b *storage.Batch, index uint64, c *commandpb.Command) (*commandpb.Result, []Event, error) {
	return applyCommand(b, index, c, true)
}

func applyCommand(b *storage.Batch, index uint64, c *commandpb.Command, journal bool) (*commandpb.Result, []Event, error) {
	fd := c.ProtoReflect().WhichOneof(opOneof)
	if fd == nil {
		return nil, nil, ErrUnknownOp
	}
	h := handlers[fd.Number()]
	if h == nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownOp, fd.Name())
	}
	now, err := b.AdvanceLogTime(c.GetTimeUnixNano())
	if err != nil {
		return nil, nil, err
	}
	if _, err := b.ExpireDedupe(now, expirePerCommand); err != nil {
		return nil, nil, err
	}
	if _, err := b.ExpireUploads(now, expireUploadsPerCommand); err != nil {
		return nil, nil, err
	}
	t := &tx{b: b, index: index, now: now, journal: journal}
	res, err := h(t, c)
	if err != nil {
		return nil, nil, err
	}
	return res, t.events, nil
}

func result(code commandpb.Code, msg string) *commandpb.Result {
	return &commandpb.Result{Code: code, Message: msg}
}

func okResult() *commandpb.Result { return &commandpb.Result{} }

func invalid(format string, args ...any) *commandpb.Result {
	return result(commandpb.Code_CODE_INVALID, fmt.Sprintf(format, args...))
}

func notFound(what string) *commandpb.Result {
	return result(commandpb.Code_CODE_NOT_FOUND, what+" not found")
}

func (t *tx) event(kind EventKind, userID, mailboxID uint64, uid uint32, modseq uint64, name string) {
	t.events = append(t.events, Event{Kind: kind, UserID: userID, MailboxID: mailboxID, UID: uid, ModSeq: modseq, Name: name})
}

// found turns ErrNotFound into ok == false and keeps other errors.
func found(err error) (ok bool, _ error) {
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// newMailbox allocates a mailbox with its own ID and UIDVALIDITY.
func (t *tx) newMailbox(userID uint64, name, specialUse string, subscribed bool) (*storagepb.Mailbox, error) {
	id, err := t.b.NextMailboxID()
	if err != nil {
		return nil, err
	}
	uv, err := t.b.NextUIDValidity()
	if err != nil {
		return nil, err
	}
	m := &storagepb.Mailbox{Id: id, UserId: userID, Name: name, UidValidity: uv, UidNext: 1,
		SpecialUse: specialUse, Subscribed: subscribed}
	if err := t.b.PutMailbox(m); err != nil {
		return nil, err
	}
	t.event(MailboxCreated, userID, id, 0, 0, name)
	return m, nil
}

// userMailbox returns the mailbox only if it belongs to the user: mailbox
// rows are keyed by user, so another user's mailbox ID is simply not found.
func (t *tx) userMailbox(userID, mailboxID uint64) (*storagepb.Mailbox, *commandpb.Result, error) {
	m, err := t.b.Mailbox(userID, mailboxID)
	if ok, err := found(err); err != nil {
		return nil, nil, err
	} else if !ok {
		return nil, notFound("mailbox"), nil
	}
	return m, nil, nil
}

// userAndMailbox returns the user and one of its mailboxes, or the result
// that refuses the command when either is missing.
func (t *tx) userAndMailbox(userID, mailboxID uint64) (*storagepb.User, *storagepb.Mailbox, *commandpb.Result, error) {
	u, res, err := t.mailboxUser(userID)
	if res != nil || err != nil {
		return nil, nil, res, err
	}
	box, res, err := t.userMailbox(u.Id, mailboxID)
	return u, box, res, err
}

// selectMessages validates a UID set and returns the messages it names, each
// once, ascending by UID.
func (t *tx) selectMessages(mailboxID uint64, ranges []*commandpb.UIDRange) ([]*storagepb.Message, *commandpb.Result, error) {
	if len(ranges) == 0 || len(ranges) > maxUIDRanges {
		return nil, invalid("%d UID ranges", len(ranges)), nil
	}
	rs := make([][2]uint32, 0, len(ranges))
	for _, r := range ranges {
		start, stop := r.GetStart(), r.GetStop()
		if start == 0 || (stop != 0 && stop < start) {
			return nil, invalid("bad UID range %d:%d", start, stop), nil
		}
		rs = append(rs, [2]uint32{start, stop})
	}
	// Merge overlapping ranges so each message is visited once.
	slices.SortFunc(rs, func(a, b [2]uint32) int { return int(int64(a[0]) - int64(b[0])) })
	var msgs []*storagepb.Message
	var last uint32
	for _, r := range rs {
		start, stop := r[0], r[1]
		if start <= last {
			if last == ^uint32(0) {
				break
			}
			start = last + 1
		}
		if stop != 0 && stop < start {
			continue
		}
		err := t.b.Messages(mailboxID, start, stop, func(m *storagepb.Message) error {
			msgs = append(msgs, m)
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
		if stop == 0 {
			break
		}
		last = stop
	}
	return msgs, nil, nil
}

// addMessage stores m as the next UID of box and updates the counts of box
// and u (both written by the caller). The caller takes the blob reference.
func (t *tx) addMessage(u *storagepb.User, box *storagepb.Mailbox, m *storagepb.Message) error {
	box.HighestModseq++
	m.Uid = box.UidNext
	m.Modseq = box.HighestModseq
	box.UidNext++
	if failpoint.Hit(failpoint.ApplyUIDStall, t.index) { // test-only (tag failpoints): the checkers must catch it
		box.UidNext--
	}
	if failpoint.Hit(failpoint.ApplyDiverge, t.index) { // test-only (tag failpoints): the checkers must catch it
		box.HighestModseq++
	}
	box.Messages++
	if !hasFlag(m.Flags, `\Seen`) {
		box.Unseen++
	}
	box.Size += m.Size
	u.UsedBytes += m.Size
	if err := t.b.PutMessage(box.Id, m, 0); err != nil {
		return err
	}
	t.event(MessageAdded, box.UserId, box.Id, m.Uid, m.Modseq, "")
	return nil
}

// removeMessage expunges m from box: a tombstone at a new MODSEQ, the blob
// released, counts of box and u updated (written by the caller).
func (t *tx) removeMessage(u *storagepb.User, box *storagepb.Mailbox, m *storagepb.Message) error {
	box.HighestModseq++
	if err := t.b.DeleteMessage(box.Id, m, box.HighestModseq); err != nil {
		return err
	}
	if _, err := t.b.ReleaseBlob(m.Blob); err != nil {
		return err
	}
	box.Messages--
	if !hasFlag(m.Flags, `\Seen`) {
		box.Unseen--
	}
	box.Size -= m.Size
	u.UsedBytes -= min(u.UsedBytes, m.Size)
	t.event(MessageExpunged, box.UserId, box.Id, m.Uid, box.HighestModseq, "")
	return nil
}

// dropMailbox deletes a mailbox with all its messages, releasing their
// blobs, except those rule k keeps: those go to the vault, still
// referenced; u.UsedBytes is updated (written by the caller).
func (t *tx) dropMailbox(u *storagepb.User, box *storagepb.Mailbox, k keepRule) error {
	var msgs []*storagepb.Message
	if err := t.b.Messages(box.Id, 1, 0, func(m *storagepb.Message) error {
		msgs = append(msgs, m)
		return nil
	}); err != nil {
		return err
	}
	for _, m := range msgs {
		if err := t.b.DeleteMessage(box.Id, m, 0); err != nil {
			return err
		}
		keep := k.keeps(m.InternalDateUnix, t.now)
		t.ref(box.Id, m.Uid, m.Blob, keep)
		if keep {
			if err := t.b.PutVault(&storagepb.VaultEntry{UserId: u.Id, MailboxId: box.Id, Mailbox: box.Name, Message: m,
				VaultedUnixNano: t.now, VaultedIndex: t.index, Held: k.held}); err != nil {
				return err
			}
		} else if _, err := t.b.ReleaseBlob(m.Blob); err != nil {
			return err
		}
		u.UsedBytes -= min(u.UsedBytes, m.Size)
	}
	// DeleteMailbox removes every modseq/ row, the tombstones just written
	// included: the mailbox ID is never reused, so nothing can ask for them.
	if err := t.b.DeleteMailbox(box); err != nil {
		return err
	}
	t.event(MailboxDeleted, box.UserId, box.Id, 0, 0, box.Name)
	return nil
}
