package mail

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
	"github.com/continuum-mail/continuum/storage/failpoint"
)

// Envelope is an SMTP transaction's envelope, recipients already resolved
// to canonical user addresses (ResolveRecipient).
type Envelope struct {
	From string
	To   []string
}

// Delivery is the outcome for one recipient.
type Delivery struct {
	Err       error // nil, ErrOverQuota, ErrNoSuchUser, ErrInvalid
	MailboxID uint64
	UID       uint32
	Duplicate bool // a retry: the first delivery's copy stands
}

// DedupeKey identifies a delivery for retry dedupe: the recipient, the
// envelope sender and the body as received (before this node added its own
// trace headers, which differ between nodes and attempts).
func DedupeKey(rcpt, from string, received []byte) []byte {
	body := sha256.Sum256(received)
	h := sha256.New()
	h.Write([]byte(rcpt))
	h.Write([]byte{0})
	h.Write([]byte(from))
	h.Write([]byte{0})
	h.Write(body[:])
	return h.Sum(nil)
}

// Deliver stores one message for every recipient in one command: the body
// is stored once however many recipients. stored is the message as it is
// kept (with Received and Return-Path); received is the body as the client
// sent it, for the dedupe key. It returns one Delivery per recipient, in
// order, only after the command is committed on a quorum and applied here.
func (s *Service) Deliver(ctx context.Context, env Envelope, stored, received []byte) ([]Delivery, error) {
	if int64(len(stored)) > s.opts.MaxMessageBytes {
		return nil, ErrTooBig
	}
	blob, err := s.blobFor(ctx, stored, nil)
	if err != nil {
		return nil, err
	}
	return s.deliverBlob(ctx, env, blob, func(rcpt string) []byte { return DedupeKey(rcpt, env.From, received) })
}

// deliverBlob proposes the Deliver of a blob (inline, or uploaded already).
func (s *Service) deliverBlob(ctx context.Context, env Envelope, blob *commandpb.Blob, dedupeKey func(rcpt string) []byte) ([]Delivery, error) {
	d := &commandpb.Deliver{
		Blob:             blob,
		InternalDateUnix: time.Now().Unix(),
	}
	for _, rcpt := range env.To {
		d.Recipients = append(d.Recipients, &commandpb.Recipient{Email: rcpt, DedupeKey: dedupeKey(rcpt)})
	}
	if failpoint.Hit(failpoint.DeliverDrop, 0) { // test-only (tag failpoints): the checkers must catch it
		return make([]Delivery, len(env.To)), nil
	}
	res, err := s.proposeWait(ctx, &commandpb.Command{Op: &commandpb.Command_Deliver{Deliver: d}}, false)
	if err != nil {
		return nil, err
	}
	if err := codeError(res); err != nil {
		return nil, err
	}
	if len(res.Deliveries) != len(env.To) {
		return nil, fmt.Errorf("%w: %d results for %d recipients", ErrUnknownOutcome, len(res.Deliveries), len(env.To))
	}
	out := make([]Delivery, len(env.To))
	for i, dr := range res.Deliveries {
		out[i] = Delivery{MailboxID: dr.MailboxId, UID: dr.Uid, Duplicate: dr.Duplicate}
		switch dr.Code {
		case commandpb.Code_CODE_OK:
		case commandpb.Code_CODE_NOT_FOUND:
			out[i].Err = ErrNoSuchUser
		default:
			out[i].Err = codeError(&commandpb.Result{Code: dr.Code})
		}
	}
	return out, nil
}

// newBlob hashes and compresses a message once, here on the proposer: the
// log carries the compressed frame, and every replica stores it as is.
func newBlob(data []byte, parsed *storagepb.ParsedMessage) *commandpb.Blob {
	return newBlobSum(data, sha256.Sum256(data), parsed)
}

// newBlobSum is newBlob for bytes whose SHA-256 is known (the state
// machine checks it against the bytes all the same).
func newBlobSum(data []byte, sum [sha256.Size]byte, parsed *storagepb.ParsedMessage) *commandpb.Blob {
	return &commandpb.Blob{Sha256: sum[:], Zstd: storage.Compress(data), Size: uint64(len(data)), Parsed: parsed}
}
