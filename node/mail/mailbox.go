package mail

import (
	"context"
	"time"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// Mailboxes lists a user's mailboxes from the local replica.
func (s *Service) Mailboxes(userID uint64) ([]*storagepb.Mailbox, error) {
	var out []*storagepb.Mailbox
	err := s.read(func(r storage.Reader) (err error) {
		out, err = r.Mailboxes(userID)
		return err
	})
	return out, err
}

// Mailbox returns one of a user's mailboxes by name.
func (s *Service) Mailbox(userID uint64, name string) (*storagepb.Mailbox, error) {
	var out *storagepb.Mailbox
	err := s.read(func(r storage.Reader) (err error) {
		out, err = r.MailboxByName(userID, name)
		return err
	})
	return out, err
}

// CreateMailbox creates a mailbox (and missing parents).
func (s *Service) CreateMailbox(ctx context.Context, userID uint64, name, specialUse string) error {
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_MailboxCreate{MailboxCreate: &commandpb.MailboxCreate{UserId: userID, Name: name, SpecialUse: specialUse}}})
}

// RenameMailbox renames a mailbox and its children.
func (s *Service) RenameMailbox(ctx context.Context, userID uint64, from, to string) error {
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_MailboxRename{MailboxRename: &commandpb.MailboxRename{UserId: userID, From: from, To: to}}})
}

// DeleteMailbox deletes a mailbox and its messages.
func (s *Service) DeleteMailbox(ctx context.Context, userID uint64, name string) error {
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_MailboxDelete{MailboxDelete: &commandpb.MailboxDelete{UserId: userID, Name: name}}})
}

// SetSubscribed subscribes or unsubscribes a mailbox.
func (s *Service) SetSubscribed(ctx context.Context, userID uint64, name string, subscribed bool) error {
	return s.write(ctx, &commandpb.Command{Op: &commandpb.Command_MailboxSubscribe{MailboxSubscribe: &commandpb.MailboxSubscribe{UserId: userID, Name: name, Subscribed: subscribed}}})
}

// Append stores a message in one mailbox (IMAP APPEND). The result carries
// the mailbox's UIDVALIDITY and the new UID (APPENDUID, RFC 4315).
func (s *Service) Append(ctx context.Context, userID, mailboxID uint64, flags []string, date time.Time, data []byte) (*commandpb.Result, error) {
	if int64(len(data)) > s.opts.MaxMessageBytes {
		return nil, ErrTooBig
	}
	blob, err := s.blobFor(ctx, data, nil)
	if err != nil {
		return nil, err
	}
	return s.appendBlob(ctx, userID, mailboxID, flags, date, blob)
}

// appendBlob proposes the Append of a blob (inline, or uploaded already).
func (s *Service) appendBlob(ctx context.Context, userID, mailboxID uint64, flags []string, date time.Time, blob *commandpb.Blob) (*commandpb.Result, error) {
	if date.IsZero() {
		date = time.Now()
	}
	return s.result(ctx, &commandpb.Command{Op: &commandpb.Command_Append{Append: &commandpb.Append{
		UserId: userID, MailboxId: mailboxID, Flags: flags, InternalDateUnix: date.Unix(),
		Blob: blob,
	}}})
}

// StoreFlags changes flags on the messages in uids.
func (s *Service) StoreFlags(ctx context.Context, userID, mailboxID uint64, uids []*commandpb.UIDRange, op commandpb.FlagOp, flags []string, unchangedSince uint64) (*commandpb.Result, error) {
	res, err := s.result(ctx, &commandpb.Command{Op: &commandpb.Command_StoreFlags{StoreFlags: &commandpb.StoreFlags{
		UserId: userID, MailboxId: mailboxID, Uids: uids, Op: op, Flags: flags, UnchangedSince: unchangedSince,
	}}})
	if err != nil && res == nil {
		return nil, err
	}
	return res, err
}

// Copy copies messages to another of the user's mailboxes.
func (s *Service) Copy(ctx context.Context, userID, mailboxID uint64, uids []*commandpb.UIDRange, destID uint64) (*commandpb.Result, error) {
	return s.result(ctx, &commandpb.Command{Op: &commandpb.Command_Copy{Copy: &commandpb.Copy{UserId: userID, MailboxId: mailboxID, Uids: uids, DestMailboxId: destID}}})
}

// Move moves messages to another of the user's mailboxes in one command.
func (s *Service) Move(ctx context.Context, userID, mailboxID uint64, uids []*commandpb.UIDRange, destID uint64) (*commandpb.Result, error) {
	return s.result(ctx, &commandpb.Command{Op: &commandpb.Command_Move{Move: &commandpb.Move{UserId: userID, MailboxId: mailboxID, Uids: uids, DestMailboxId: destID}}})
}

// Expunge removes \Deleted messages (only those in uids, when given).
func (s *Service) Expunge(ctx context.Context, userID, mailboxID uint64, uids []*commandpb.UIDRange) (*commandpb.Result, error) {
	return s.result(ctx, &commandpb.Command{Op: &commandpb.Command_Expunge{Expunge: &commandpb.Expunge{UserId: userID, MailboxId: mailboxID, Uids: uids}}})
}

// result proposes cmd and returns its result; a non-OK code is returned
// as an error alongside the result (CONDSTORE's MODIFIED needs both).
func (s *Service) result(ctx context.Context, cmd *commandpb.Command) (*commandpb.Result, error) {
	res, err := s.propose(ctx, cmd)
	if err != nil {
		return nil, err
	}
	if err := codeError(res); err != nil {
		if res.Code == commandpb.Code_CODE_MODIFIED {
			return res, err
		}
		return nil, err
	}
	return res, nil
}
