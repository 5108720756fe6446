package migrate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/continuum-mail/continuum/proto/adminpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pieceBytes is the most message data one stream message carries.
const pieceBytes = 1 << 20

// Failure is one message that was not copied, and why.
type Failure struct {
	Mailbox  string
	SourceID string
	Reason   string
}

// Summary is what an import or export did.
type Summary struct {
	Mailboxes int
	Copied    int
	Skipped   int // already in the destination
	Failed    int
	Bytes     int64
	Failures  []Failure // the first maxFailures of them
	Took      time.Duration
}

const maxFailures = 1000

func (s *Summary) fail(f Failure) {
	s.Failed++
	if len(s.Failures) < maxFailures {
		s.Failures = append(s.Failures, f)
	}
}

// Rate is messages per second.
func (s *Summary) Rate() float64 {
	if s.Took <= 0 {
		return 0
	}
	return float64(s.Copied) / s.Took.Seconds()
}

// Progress is told what happens as it happens (progress.go has the bar
// and the log-line versions).
type Progress interface {
	Total(messages int, bytes int64)
	Add(messages int, bytes int64)
	Note(format string, args ...any)
	Done()
}

type nopProgress struct{}

func (nopProgress) Total(int, int64)    {}
func (nopProgress) Add(int, int64)      {}
func (nopProgress) Note(string, ...any) {}
func (nopProgress) Done()               {}

// ImportOptions tune an import.
type ImportOptions struct {
	// SourceName names the source in the node's log.
	SourceName string
	// KeepOrder commits one batch at a time, so UIDs follow the source's
	// order exactly (slower). Without it they do too unless a batch had
	// to be retried (an election) or the node took the stream without a
	// leader: that batch may land after later ones.
	KeepOrder bool
	Progress  Progress
}

// Import copies every mailbox and message of src into user's account
// through the Admin Import stream. Messages the account holds already are
// skipped (the node compares digests), so running it again after an
// interruption copies only what is missing.
func Import(ctx context.Context, c adminpb.AdminClient, user string, src Source, opts ImportOptions) (*Summary, error) {
	p := opts.Progress
	if p == nil {
		p = nopProgress{}
	}
	start := time.Now()
	boxes, err := src.Mailboxes(ctx)
	if err != nil {
		return nil, err
	}
	total, totalBytes := 0, int64(0)
	for _, b := range boxes {
		total += max(b.Messages, 0)
		totalBytes += max(b.Bytes, 0)
	}
	p.Total(total, totalBytes)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Import(ctx)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Mailboxes: len(boxes)}
	var mu sync.Mutex // guards sum and starts between the two goroutines
	// starts[i] is the first seq of boxes[i] (for the failure report).
	var starts []uint64
	boxOf := func(seq uint64) string {
		i, _ := slices.BinarySearch(starts, seq+1)
		if i == 0 {
			return ""
		}
		return boxes[i-1].Name
	}
	if err := stream.Send(&adminpb.ImportRequest{Item: &adminpb.ImportRequest_Start{Start: &adminpb.ImportStart{User: user, Source: opts.SourceName, KeepOrder: opts.KeepOrder}}}); err != nil {
		return nil, streamErr(stream, err)
	}
	recvDone := make(chan error, 1)
	go func() {
		for {
			r, err := stream.Recv()
			if err == io.EOF {
				recvDone <- nil
				return
			}
			if err != nil {
				recvDone <- err
				cancel()
				return
			}
			if mb := r.Mailbox; mb != nil {
				if mb.Existing > 0 {
					p.Note("%s: %d messages there already", mb.Name, mb.Existing)
				}
				continue
			}
			mu.Lock()
			sum.Copied += int(r.Copied)
			sum.Skipped += int(r.Skipped)
			sum.Bytes += int64(r.Bytes)
			for _, f := range r.Failures {
				sum.fail(Failure{Mailbox: boxOf(f.Seq), SourceID: f.SourceId, Reason: f.Reason})
			}
			mu.Unlock()
			p.Add(int(r.Copied+r.Skipped)+len(r.Failures), int64(r.Bytes))
		}
	}()

	var seq uint64
	sendErr := func() error {
		for _, mb := range boxes {
			if err := stream.Send(&adminpb.ImportRequest{Item: &adminpb.ImportRequest_Mailbox{Mailbox: &adminpb.ImportMailbox{
				Name: mb.Name, SpecialUse: mb.SpecialUse, Subscribed: mb.Subscribed}}}); err != nil {
				return err
			}
			mu.Lock()
			starts = append(starts, seq+1)
			mu.Unlock()
			err := src.Messages(ctx, mb, func(m *Message) error {
				seq++
				return sendMessage(stream, seq, m)
			}, func(id, reason string) {
				mu.Lock()
				sum.fail(Failure{Mailbox: mb.Name, SourceID: id, Reason: reason})
				mu.Unlock()
				p.Add(1, 0)
			})
			if err != nil {
				return fmt.Errorf("%s: %w", mb.Name, err)
			}
		}
		return stream.CloseSend()
	}()
	if sendErr != nil {
		if errors.Is(sendErr, io.EOF) {
			sendErr = nil // the node ended the stream: Recv says why
		}
	}
	var recvErr error
	if sendErr == nil {
		recvErr = <-recvDone
	} else {
		cancel()
		// The node may have ended the stream with its reason (an unknown
		// user, say) while we were still sending: its Recv side then
		// cancelled ctx, and the send side failed with only "context
		// canceled". The node's reason is the cause; a Canceled status is
		// the echo of our own cancel, and then the send side's error is.
		if rerr := <-recvDone; rerr != nil && status.Code(rerr) != codes.Canceled {
			sendErr = rerr
		}
	}
	p.Done()
	sum.Took = time.Since(start)
	if sendErr != nil {
		return sum, sendErr
	}
	return sum, recvErr
}

// sendMessage sends m in pieces of at most pieceBytes.
func sendMessage(stream adminpb.Admin_ImportClient, seq uint64, m *Message) error {
	data := m.Data
	first := true
	for first || len(data) > 0 {
		n := min(len(data), pieceBytes)
		im := &adminpb.ImportMessage{Seq: seq, Data: data[:n], More: n < len(data)}
		if first {
			im.Flags, im.SourceId = m.Flags, m.SourceID
			if !m.Date.IsZero() {
				im.InternalDateUnix = m.Date.Unix()
			}
			first = false
		}
		if err := stream.Send(&adminpb.ImportRequest{Item: &adminpb.ImportRequest_Message{Message: im}}); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func streamErr(stream adminpb.Admin_ImportClient, err error) error {
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.Recv(); rerr != nil && rerr != io.EOF {
			return rerr
		}
	}
	return err
}

// ExportOptions selects what to export.
type ExportOptions struct {
	Mailboxes []string
	Since     time.Time
}

// Export writes user's mailboxes (all, or opts.Mailboxes) into sink from
// the Admin Export stream.
func Export(ctx context.Context, c adminpb.AdminClient, user string, opts ExportOptions, sink Sink, p Progress) (*Summary, error) {
	if p == nil {
		p = nopProgress{}
	}
	start := time.Now()
	req := &adminpb.ExportRequest{User: user, Mailboxes: opts.Mailboxes}
	if !opts.Since.IsZero() {
		req.SinceUnix = opts.Since.Unix()
	}
	stream, err := c.Export(ctx, req)
	if err != nil {
		return nil, err
	}
	sum := &Summary{}
	var cur *Message
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			sum.Took = time.Since(start)
			return sum, err
		}
		switch x := r.Item.(type) {
		case *adminpb.ExportReply_Mailbox:
			mb := x.Mailbox
			sum.Mailboxes++
			if err := sink.Mailbox(Mailbox{Name: mb.Name, SpecialUse: mb.SpecialUse, Subscribed: mb.Subscribed, Messages: int(mb.Messages), Bytes: int64(mb.Bytes), UIDValidity: mb.UidValidity}); err != nil {
				return sum, err
			}
		case *adminpb.ExportReply_Message:
			em := x.Message
			if cur == nil {
				cur = &Message{Flags: em.Flags, Date: time.Unix(em.InternalDateUnix, 0), SourceID: fmt.Sprintf("uid %d", em.Uid),
					Data: make([]byte, 0, em.Size)}
			}
			cur.Data = append(cur.Data, em.Data...)
			if em.More {
				continue
			}
			if err := sink.Message(cur); err != nil {
				return sum, err
			}
			sum.Copied++
			sum.Bytes += int64(len(cur.Data))
			p.Add(1, int64(len(cur.Data)))
			cur = nil
		}
	}
	if err := sink.Close(); err != nil {
		return sum, err
	}
	p.Done()
	sum.Took = time.Since(start)
	return sum, nil
}
