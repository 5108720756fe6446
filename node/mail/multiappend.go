package mail

import (
	"context"
	"fmt"
	"time"

	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/proto/commandpb"
)

// AppendMessage is one message of AppendAll.
type AppendMessage struct {
	Data  []byte
	Flags []string
	Date  time.Time // INTERNALDATE; zero: now
}

// ErrAppendAllTooBig refuses a MULTIAPPEND whose messages, compressed, do
// not fit in one log entry (ChunkBytes): all or none needs one entry.
var ErrAppendAllTooBig = fmt.Errorf("%w: the messages of one MULTIAPPEND carry at most %d bytes compressed in all; append large messages one at a time", ErrTooBig, ChunkBytes)

// AppendAll stores messages in one mailbox together or not at all (IMAP
// MULTIAPPEND, RFC 3502), as one AppendAll log entry. The result carries
// the mailbox's UIDVALIDITY and the new UIDs, in order (APPENDUID).
func (s *Service) AppendAll(ctx context.Context, userID, mailboxID uint64, msgs []AppendMessage) (*commandpb.Result, error) {
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: no messages", ErrInvalid)
	}
	op := &commandpb.AppendBatch{UserId: userID, MailboxId: mailboxID}
	total := 0
	for i, m := range msgs {
		if int64(len(m.Data)) > s.opts.MaxMessageBytes {
			return nil, ErrTooBig
		}
		parsed, err := mimeparse.Parse(m.Data, mimeparse.DefaultLimits())
		if err != nil {
			return nil, fmt.Errorf("%w: message %d: %v", ErrInvalid, i+1, err)
		}
		b := newBlob(m.Data, parsed)
		if total += len(b.Zstd); total > ChunkBytes {
			return nil, ErrAppendAllTooBig
		}
		date := m.Date
		if date.IsZero() {
			date = time.Now()
		}
		op.Items = append(op.Items, &commandpb.AppendItem{Blob: b, Flags: m.Flags, InternalDateUnix: date.Unix()})
	}
	return s.result(ctx, &commandpb.Command{Op: &commandpb.Command_AppendAll{AppendAll: op}})
}
