package mail

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// AppendMessage is one message of AppendAll: Data, or a Spool holding it.
type AppendMessage struct {
	Data  []byte
	Spool *Spool
	Flags []string
	Date  time.Time // INTERNALDATE; zero: now
}

// AppendAll stores messages in one mailbox together or not at all (IMAP
// MULTIAPPEND, RFC 3502), as one log entry. The result carries the
// mailbox's UIDVALIDITY and the new UIDs, in order (APPENDUID).
//
// The entry carries the messages inline while their compressed sum fits
// one entry (ChunkBytes), as an AppendAll. Otherwise the largest go first
// as chunked uploads (as a single large APPEND does, BlobChunk entries),
// until the rest fits, and the entry is an AppendAllUploaded naming them:
// still one entry, so still all or none. An upload whose entry is refused
// or never proposed stores nothing and expires.
func (s *Service) AppendAll(ctx context.Context, userID, mailboxID uint64, msgs []AppendMessage) (*commandpb.Result, error) {
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: no messages", ErrInvalid)
	}
	op := &commandpb.AppendBatch{UserId: userID, MailboxId: mailboxID}
	datas := make([][]byte, len(msgs))
	for i, m := range msgs {
		data, unmap, err := s.messageBytes(m.Data, m.Spool)
		if err != nil {
			return nil, err
		}
		defer unmap()
		datas[i] = data
		date := m.Date
		if date.IsZero() {
			date = time.Now()
		}
		op.Items = append(op.Items, &commandpb.AppendItem{Flags: m.Flags, InternalDateUnix: date.Unix()})
	}
	// Parse and compress every message before any upload: a message that
	// does not parse refuses the command before anything is proposed.
	inline := 0
	parsed := make([]*storagepb.ParsedMessage, len(datas))
	for i, data := range datas {
		p, err := mimeparse.Parse(data, mimeparse.DefaultLimits())
		if err != nil {
			return nil, fmt.Errorf("%w: message %d: %v", ErrInvalid, i+1, err)
		}
		parsed[i] = p
		if len(data) > ChunkBytes {
			continue // uploaded below in any case
		}
		op.Items[i].Blob = newBlob(data, p)
		inline += len(op.Items[i].Blob.Zstd)
	}
	// Which to upload: those over ChunkBytes, then the largest inline
	// ones until the inline sum fits.
	order := make([]int, len(datas))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(datas[order[a]]) > len(datas[order[b]]) })
	uploaded := false
	for _, i := range order {
		it := op.Items[i]
		if it.Blob != nil && inline <= ChunkBytes {
			continue
		}
		if it.Blob != nil {
			inline -= len(it.Blob.Zstd)
		}
		b, err := s.upload(ctx, datas[i], parsed[i], nil)
		if err != nil {
			return nil, err
		}
		it.Blob, uploaded = b, true
	}
	cmd := &commandpb.Command{Op: &commandpb.Command_AppendAll{AppendAll: op}}
	if uploaded {
		cmd.Op = &commandpb.Command_AppendAllUploaded{AppendAllUploaded: op}
	}
	return s.result(ctx, cmd)
}
