package mail

import (
	"errors"
	"fmt"

	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// View is one command's consistent read of this node's replica: every
// method answers from the same point of the log, so a FETCH or SEARCH that
// lists messages and then reads their bytes never sees a message half
// gone. The frontends open one per command (Service.View) and close it
// before they write the reply, so no database view outlives a command or
// waits on a slow client. It reads the local replica as it is; a caller
// that must see everything committed cluster-wide calls Sync first.
//
// A row that is not there is ErrNotFound (wrapped), whichever method
// finds it missing. The records are the replicated ones (proto/storagepb,
// see doc.go "Records"); treat them as read-only.
type View struct {
	snap *storage.Snap
}

// View opens a read view of the local replica. The caller closes it, and
// does not use it from two goroutines at once.
func (s *Service) View() *View { return &View{snap: s.db.Snapshot()} }

// Close releases the view. Records read through it stay valid.
func (v *View) Close() { v.snap.Close() }

// notFound maps storage's missing-row error to this package's; any other
// error (a callback's among them) is returned as it is.
func notFound(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// Mailbox is the user's mailbox of that name, in the stored (canonical)
// form (canon.MailboxName): the caller canonicalises what a client sent.
func (v *View) Mailbox(userID uint64, name string) (*storagepb.Mailbox, error) {
	mb, err := v.snap.MailboxByName(userID, name)
	return mb, notFound(err)
}

// Mailboxes lists the user's mailboxes, in no particular order.
func (v *View) Mailboxes(userID uint64) ([]*storagepb.Mailbox, error) {
	boxes, err := v.snap.Mailboxes(userID)
	return boxes, notFound(err)
}

// Message is the message of that UID in the mailbox.
func (v *View) Message(mailboxID uint64, uid uint32) (*storagepb.Message, error) {
	m, err := v.snap.Message(mailboxID, uid)
	return m, notFound(err)
}

// Messages calls fn for every message of the mailbox with start ≤ UID ≤
// stop, in ascending UID order; stop 0 means no upper bound. An error from
// fn stops the walk and is returned unchanged.
func (v *View) Messages(mailboxID uint64, start, stop uint32, fn func(*storagepb.Message) error) error {
	return notFound(v.snap.Messages(mailboxID, start, stop, fn))
}

// Blob is a stored message's bytes, decompressed whole. A message over
// ChunkBytes is better streamed (Service.OpenBlob).
func (v *View) Blob(sha []byte) ([]byte, error) {
	b, err := v.snap.Blob(sha)
	return b, notFound(err)
}

// Parsed is a stored message's structure as computed at delivery (part
// offsets, envelope, body structure), read without the message's bytes.
func (v *View) Parsed(sha []byte) (*storagepb.ParsedMessage, error) {
	p, err := v.snap.Parsed(sha)
	return p, notFound(err)
}

// Changes calls fn for every change to the mailbox above sinceModSeq, in
// ascending MODSEQ: each live message at its current MODSEQ, and each
// expunge (RFC 7162's CHANGEDSINCE and VANISHED come from here).
func (v *View) Changes(mailboxID uint64, sinceModSeq uint64, fn func(modseq uint64, e *storagepb.ModSeqEntry) error) error {
	return notFound(v.snap.Changes(mailboxID, sinceModSeq, fn))
}

// Quota is the user's storage quota: bytes used over all mailboxes, and the
// limit (0: none).
func (v *View) Quota(userID uint64) (used, limit uint64, err error) {
	u, err := v.snap.User(userID)
	if err != nil {
		return 0, 0, notFound(err)
	}
	return u.UsedBytes, u.QuotaBytes, nil
}

// HeaderBlock is headerBlock (headers.go) through the view.
func (v *View) HeaderBlock(sha []byte) ([]byte, error) { return headerBlock(v.snap, sha) }

// HeaderBlocks is headerBlocks (headers.go) through the view.
func (v *View) HeaderBlocks(shas [][]byte, fn func(i int, block []byte) error) error {
	return headerBlocks(v.snap, shas, fn)
}
