package mail

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// Import (continuum import) writes through AppendBatch: many messages of
// one mailbox per log entry, so an import pays one Raft round trip and one
// fsync per batch, not per message.
const (
	// ImportBatchBytes is the compressed message bytes one batch carries at
	// most: the log entry stays near the 1 MiB every other entry keeps to.
	ImportBatchBytes = 768 << 10
	// ImportBatchMessages is the most messages in one batch.
	ImportBatchMessages = 256
)

// ImportItem is one message of an import batch: its bytes (Data), or, for
// a message over ChunkBytes, its Spool; its flags and INTERNALDATE; and
// the dedupe key that makes it idempotent (ImportDedupeKey).
type ImportItem struct {
	Data      []byte
	Spool     *Spool
	Flags     []string
	Date      time.Time
	DedupeKey []byte
	// Sum is the SHA-256 of the bytes when the caller has it already (it
	// hashed them as they arrived); zero: computed here.
	Sum [sha256.Size]byte
}

// ImportResult is the outcome of one item: stored under UID, a duplicate
// of the message already stored under UID, or Err.
type ImportResult struct {
	UID       uint32
	Duplicate bool
	Err       error
}

// ImportDedupeKey names the n-th copy (1, 2, …) of the message with digest
// sum in a mailbox, for the short-lived dedupe of AppendBatch: a resumed
// import that proposes the same copy again while an earlier proposal of it
// may still commit stores it once.
func ImportDedupeKey(mailboxID uint64, sum [sha256.Size]byte, n int) []byte {
	h := sha256.New()
	h.Write([]byte("continuum-import\x00"))
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], mailboxID)
	binary.BigEndian.PutUint64(b[8:], uint64(n))
	h.Write(b[:])
	h.Write(sum[:])
	return h.Sum(nil)
}

// ImportBatch stores items in one of a user's mailboxes with one AppendBatch:
// PrepareImport then CommitImport.
func (s *Service) ImportBatch(ctx context.Context, userID, mailboxID uint64, items []ImportItem) ([]ImportResult, error) {
	p, err := s.PrepareImport(ctx, userID, mailboxID, items)
	if err != nil {
		return nil, err
	}
	return s.CommitImport(ctx, p)
}

// PreparedImport is a batch parsed, compressed (and, for a message over
// ChunkBytes, uploaded in chunks), ready to commit.
type PreparedImport struct {
	op  *commandpb.AppendBatch
	idx []int // op.Items[k] is item idx[k]
	out []ImportResult
}

// PrepareImport does the work of a batch that can run in parallel with
// other batches: parse, hash, compress, upload large messages. A message
// that does not parse fails alone (its result's Err); the error is
// temporary when a chunk upload failed.
func (s *Service) PrepareImport(ctx context.Context, userID, mailboxID uint64, items []ImportItem) (*PreparedImport, error) {
	p := &PreparedImport{op: &commandpb.AppendBatch{UserId: userID, MailboxId: mailboxID}, out: make([]ImportResult, len(items))}
	for i, it := range items {
		blob, err := s.importBlob(ctx, it)
		if err != nil {
			if IsTemporary(err) {
				return nil, err
			}
			p.out[i].Err = err
			continue
		}
		date := it.Date
		if date.IsZero() {
			date = time.Now()
		}
		p.op.Items = append(p.op.Items, &commandpb.AppendItem{Blob: blob, Flags: it.Flags, InternalDateUnix: date.Unix(), DedupeKey: it.DedupeKey})
		p.idx = append(p.idx, i)
	}
	return p, nil
}

// WithQueued returns a context under which CommitImport calls queued once
// the batch is in the leader's Raft queue, before it commits: an importer
// that waits for it before committing its next batch keeps the source's
// order with several batches in flight. Such a commit is never forwarded;
// at a node that is not the leader it fails as unavailable
// (consensus.WithEnqueued).
func WithQueued(ctx context.Context, queued func()) context.Context {
	return consensus.WithEnqueued(ctx, queued)
}

// CommitImport proposes a prepared batch and returns one result per item,
// in order, once it is committed and applied on the leader. An error means
// nothing of the batch is known to be stored: retry it (its dedupe keys
// make that safe). Commits of one mailbox made one after the other keep
// the source's order in the UIDs.
func (s *Service) CommitImport(ctx context.Context, p *PreparedImport) ([]ImportResult, error) {
	out := slices.Clone(p.out)
	if len(p.op.Items) == 0 {
		return out, nil
	}
	res, err := s.proposeWait(ctx, &commandpb.Command{Op: &commandpb.Command_AppendBatch{AppendBatch: p.op}}, false)
	if err != nil {
		return nil, err
	}
	if err := codeError(res); err != nil {
		return nil, err
	}
	if len(res.Deliveries) != len(p.op.Items) {
		return nil, fmt.Errorf("%w: %d results for %d messages", ErrUnknownOutcome, len(res.Deliveries), len(p.op.Items))
	}
	for k, d := range res.Deliveries {
		r := &out[p.idx[k]]
		r.UID, r.Duplicate = d.Uid, d.Duplicate
		if d.Code != commandpb.Code_CODE_OK {
			r.Err = codeError(&commandpb.Result{Code: d.Code, Message: "message refused"})
		}
	}
	return out, nil
}

// importBlob parses and compresses one message, or uploads it in chunks.
func (s *Service) importBlob(ctx context.Context, it ImportItem) (*commandpb.Blob, error) {
	data, unmap, err := s.messageBytes(it.Data, it.Spool)
	if err != nil {
		return nil, err
	}
	defer unmap()
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty message", ErrInvalid)
	}
	if len(data) > ChunkBytes {
		return s.blobFor(ctx, data, nil)
	}
	parsed, err := mimeparse.Parse(data, mimeparse.DefaultLimits())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if it.Sum == ([sha256.Size]byte{}) {
		return newBlob(data, parsed), nil
	}
	return newBlobSum(data, it.Sum, parsed), nil
}

// Inventory counts the copies of each message (by SHA-256 of its bytes)
// in a mailbox of the local replica; call Sync first to include every
// committed write. Only message rows are read, never the bytes.
func (s *Service) Inventory(userID, mailboxID uint64) (map[[sha256.Size]byte]int, error) {
	out := map[[sha256.Size]byte]int{}
	err := s.read(func(r storage.Reader) error {
		if _, err := r.Mailbox(userID, mailboxID); err != nil {
			return err
		}
		return r.Messages(mailboxID, 1, 0, func(m *storagepb.Message) error {
			var k [sha256.Size]byte
			copy(k[:], m.Blob)
			out[k]++
			return nil
		})
	})
	return out, err
}

// UserByEmail returns the account of a canonical or not yet canonical
// address from the local replica.
func (s *Service) UserByEmail(email string) (*storagepb.User, error) {
	e, err := CanonicalEmail(email)
	if err != nil {
		return nil, err
	}
	var out *storagepb.User
	err = s.read(func(r storage.Reader) (err error) {
		out, err = r.UserByEmail(e)
		return err
	})
	return out, err
}
