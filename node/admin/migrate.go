package admin

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// importWindow is how many import steps (batches, mailbox openings) may be
// queued behind the one being answered: enough to keep the leader's log
// busy while the next batch is parsed and compressed, few enough that the
// bytes an import has in flight stay a few MiB ((window+1) × 1 MiB, plus
// one spooled large message per step) and that a live cluster's heartbeats
// are not starved. Measured on a loaded 2-core machine
// (docs/notes/migrate.md, rounds 1 and 4): 2 imports as fast as 4 or 8;
// with 4, at load 24–38, 107 batch retries through elections and one batch
// out of retries.
const importWindow = 2

// importLinger is how long a partial batch waits for more messages before
// it is proposed anyway (a slow source, such as a remote IMAP server).
const importLinger = 200 * time.Millisecond

// importRetries bounds the retries of a batch that failed temporarily
// (leader change, timeout): its dedupe keys make a retry store nothing
// twice.
const importRetries = 6

// exportPieceBytes is the most message data one ExportMessage carries.
const exportPieceBytes = 1 << 20

// Import implements continuum import: see adminpb.Import and
// node/admin/doc.go.
func (s *Service) Import(stream grpc.BidiStreamingServer[adminpb.ImportRequest, adminpb.ImportReply]) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "admin: import: the first message must be start")
	}
	if !s.cluster.IsLeader() && !start.Forwarded {
		// Batches proposed on the leader skip a forwarding round trip
		// each (1.4-1.5× faster measured): pass the whole stream on.
		// Without a reachable leader, go on here; every batch is then
		// forwarded on its own, or retried until there is one.
		if conn, err := s.forwardConn(ctx, false); err == nil {
			s.log().Info("import passed on to the leader", "user", start.User, "source", start.Source)
			return proxyImport(ctx, stream, adminpb.NewAdminClient(conn), start)
		}
	}
	if err := retryTemporary(ctx, func() error { return s.mail.Sync(ctx) }); err != nil {
		return toStatus(err)
	}
	u, err := s.mail.UserByEmail(start.User)
	if err != nil {
		return toStatus(fmt.Errorf("import into %s: %w", start.User, err))
	}
	im := &importer{
		mail: s.mail, ctx: ctx, user: u.Id, keepOrder: start.KeepOrder, isLeader: s.cluster.IsLeader,
		steps: make(chan *importStep, importWindow),
		log:   s.log().With("user", u.Email, "source", start.Source),
	}
	im.log.Info("import started")
	reqs := make(chan *adminpb.ImportRequest, 16)
	recvErr := make(chan error, 1)
	go func() {
		defer close(reqs)
		for {
			req, err := stream.Recv()
			if err != nil {
				if err != io.EOF {
					recvErr <- err
				}
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	sendDone := make(chan error, 1)
	go func() { sendDone <- im.sendLoop(stream) }()
	err = im.run(reqs)
	close(im.steps)
	if err != nil {
		cancel()
	}
	if serr := <-sendDone; err == nil {
		err = serr
	}
	select {
	case rerr := <-recvErr:
		if err == nil {
			err = rerr
		}
	default:
	}
	im.closeSpool()
	im.log.Info("import ended", "copied", im.copied, "skipped", im.skipped, "failed", im.failed, "err", err)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return toStatus(err)
	}
	return nil
}

// proxyImport passes an Import stream on to the leader and its replies
// back, unchanged.
func proxyImport(ctx context.Context, down grpc.BidiStreamingServer[adminpb.ImportRequest, adminpb.ImportReply], leader adminpb.AdminClient, start *adminpb.ImportStart) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	up, err := leader.Import(ctx)
	if err != nil {
		return err
	}
	fwd := proto.Clone(start).(*adminpb.ImportStart)
	fwd.Forwarded = true
	if err := up.Send(&adminpb.ImportRequest{Item: &adminpb.ImportRequest_Start{Start: fwd}}); err != nil {
		return err
	}
	upErr := make(chan error, 1)
	go func() {
		for {
			req, err := down.Recv()
			if err == io.EOF {
				upErr <- up.CloseSend()
				return
			}
			if err != nil {
				upErr <- err
				cancel()
				return
			}
			if err := up.Send(req); err != nil {
				upErr <- nil // the leader ended the stream: its Recv says why
				return
			}
		}
	}()
	for {
		rep, err := up.Recv()
		if err == io.EOF {
			return <-upErr
		}
		if err != nil {
			return err
		}
		if err := down.Send(rep); err != nil {
			return err
		}
	}
}

func (s *Service) log() *slog.Logger { return slog.Default().With("component", "admin") }

// importer is one Import stream: run reads the requests and builds steps,
// each proposed on its own goroutine; sendLoop answers them in order.
type importer struct {
	mail  *mail.Service
	ctx   context.Context
	user  uint64
	log   *slog.Logger
	steps chan *importStep

	// The open mailbox: its ID, what it held when opened (digest → copies),
	// and how many copies of each digest this stream has sent so far.
	box       uint64
	inventory map[[sha256.Size]byte]int
	seen      map[[sha256.Size]byte]int

	// The message being received in pieces.
	cur      *adminpb.ImportMessage
	curData  []byte
	curSpool *mail.Spool
	curHash  hash.Hash

	batch      *importStep
	batchStart time.Time
	// The batch proposed last: lastQueued is closed once it has its place
	// in the log (or is done), lastDone once it committed or failed.
	// keepOrder: each batch waits until the one before is done.
	keepOrder            bool
	isLeader             func() bool
	lastQueued, lastDone chan struct{}

	// Totals, written by sendLoop, read after it returned.
	copied, skipped, failed int
}

// importStep is one reply to come: a batch to commit, or a mailbox opened.
type importStep struct {
	done  chan struct{}
	reply *adminpb.ImportReply
	err   error  // fatal: ends the stream
	box   uint64 // the mailbox it was built for (set by enqueue)

	items   []mail.ImportItem
	seqs    []uint64
	sources []string
	bytes   int
}

func (im *importer) run(reqs <-chan *adminpb.ImportRequest) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var req *adminpb.ImportRequest
		var ok bool
		select {
		case req, ok = <-reqs:
		case <-timer.C:
			im.flush()
			continue
		case <-im.ctx.Done():
			return im.ctx.Err()
		}
		if !ok {
			if im.cur != nil {
				return status.Error(codes.InvalidArgument, "admin: import: stream ended inside a message")
			}
			im.flush()
			return nil
		}
		switch x := req.Item.(type) {
		case *adminpb.ImportRequest_Mailbox:
			if im.cur != nil {
				return status.Error(codes.InvalidArgument, "admin: import: mailbox inside a message")
			}
			im.flush()
			if err := im.open(x.Mailbox); err != nil {
				return err
			}
		case *adminpb.ImportRequest_Message:
			if im.box == 0 {
				return status.Error(codes.InvalidArgument, "admin: import: message before any mailbox")
			}
			if err := im.piece(x.Message); err != nil {
				return err
			}
			if im.batch != nil && im.batchStart.IsZero() {
				im.batchStart = time.Now()
				timer.Reset(importLinger)
			}
		default:
			return status.Error(codes.InvalidArgument, "admin: import: unexpected request")
		}
	}
}

// canonicalMailbox spells INBOX as the state machine does.
func canonicalMailbox(name string) string {
	first, rest, found := strings.Cut(name, "/")
	if strings.EqualFold(first, "INBOX") {
		first = "INBOX"
	}
	if found {
		return first + "/" + rest
	}
	return first
}

// open creates the mailbox when missing and takes its inventory.
func (im *importer) open(m *adminpb.ImportMailbox) error {
	name := canonicalMailbox(m.Name)
	created := false
	err := retryTemporary(im.ctx, func() error { return im.mail.CreateMailbox(im.ctx, im.user, name, m.SpecialUse) })
	switch {
	case err == nil:
		created = true
	case errors.Is(err, mail.ErrExists):
	case errors.Is(err, mail.ErrInvalid) && m.SpecialUse != "":
		// An unknown special use must not cost the mail: create it plain.
		if err := retryTemporary(im.ctx, func() error { return im.mail.CreateMailbox(im.ctx, im.user, name, "") }); err != nil && !errors.Is(err, mail.ErrExists) {
			return fmt.Errorf("create mailbox %q: %w", name, err)
		}
		created = true
	default:
		return fmt.Errorf("create mailbox %q: %w", name, err)
	}
	if m.Subscribed {
		if err := retryTemporary(im.ctx, func() error { return im.mail.SetSubscribed(im.ctx, im.user, name, true) }); err != nil {
			return fmt.Errorf("subscribe %q: %w", name, err)
		}
	}
	if err := retryTemporary(im.ctx, func() error { return im.mail.Sync(im.ctx) }); err != nil {
		return err
	}
	box, err := im.mail.Mailbox(im.user, name)
	if err != nil {
		return fmt.Errorf("mailbox %q: %w", name, err)
	}
	inv, err := im.mail.Inventory(im.user, box.Id)
	if err != nil {
		return fmt.Errorf("mailbox %q: %w", name, err)
	}
	im.box, im.inventory, im.seen = box.Id, inv, map[[sha256.Size]byte]int{}
	st := &importStep{done: make(chan struct{}), reply: &adminpb.ImportReply{
		Mailbox: &adminpb.ImportMailboxReady{Name: name, Created: created, Existing: box.Messages}}}
	close(st.done)
	return im.enqueue(st)
}

// piece takes one ImportMessage: a whole message or a piece of one.
func (im *importer) piece(m *adminpb.ImportMessage) error {
	if im.cur == nil {
		im.cur, im.curHash = m, sha256.New()
	} else if m.Seq != im.cur.Seq {
		return status.Errorf(codes.InvalidArgument, "admin: import: message %d before %d ended", m.Seq, im.cur.Seq)
	}
	im.curHash.Write(m.Data)
	if im.curSpool == nil && len(im.curData)+len(m.Data) > mail.ChunkBytes {
		sp, err := mail.NewSpool("")
		if err != nil {
			return err
		}
		if _, err := sp.Write(im.curData); err != nil {
			sp.Close()
			return fmt.Errorf("spool: %w", err)
		}
		im.curSpool, im.curData = sp, nil
	}
	if im.curSpool != nil {
		if _, err := im.curSpool.Write(m.Data); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	} else {
		im.curData = append(im.curData, m.Data...)
	}
	if m.More {
		return nil
	}
	cur, data, sp := im.cur, im.curData, im.curSpool
	var sum [sha256.Size]byte
	im.curHash.Sum(sum[:0])
	im.cur, im.curData, im.curSpool, im.curHash = nil, nil, nil, nil
	return im.message(cur, data, sp, sum)
}

// message decides about one complete message: skipped when the mailbox
// holds as many copies of it as the stream has sent, else batched.
func (im *importer) message(m *adminpb.ImportMessage, data []byte, sp *mail.Spool, sum [sha256.Size]byte) error {
	n := im.seen[sum] + 1
	im.seen[sum] = n
	if im.batch == nil {
		im.batch = &importStep{done: make(chan struct{}), reply: &adminpb.ImportReply{}}
	}
	b := im.batch
	b.reply.DoneSeq = m.Seq
	if n <= im.inventory[sum] {
		b.reply.Skipped++
		if sp != nil {
			sp.Close()
		}
		return nil
	}
	it := mail.ImportItem{Data: data, Spool: sp, Flags: m.Flags, DedupeKey: mail.ImportDedupeKey(im.box, sum, n), Sum: sum}
	if m.InternalDateUnix != 0 {
		it.Date = time.Unix(m.InternalDateUnix, 0)
	}
	size := len(data)
	if sp != nil {
		size = int(sp.Size())
		// A large message goes alone: it is uploaded in chunks first.
		im.flush()
		st := &importStep{done: make(chan struct{}), reply: &adminpb.ImportReply{DoneSeq: m.Seq},
			items: []mail.ImportItem{it}, seqs: []uint64{m.Seq}, sources: []string{m.SourceId}, bytes: size}
		return im.propose(st)
	}
	b.items = append(b.items, it)
	b.seqs = append(b.seqs, m.Seq)
	b.sources = append(b.sources, m.SourceId)
	b.bytes += size
	if len(b.items) >= mail.ImportBatchMessages || b.bytes >= mail.ChunkBytes {
		return im.flushErr()
	}
	return nil
}

func (im *importer) flush() { _ = im.flushErr() }

// flushErr proposes the batch being built (or just answers its skips).
func (im *importer) flushErr() error {
	b := im.batch
	im.batch, im.batchStart = nil, time.Time{}
	if b == nil {
		return nil
	}
	if len(b.items) == 0 {
		close(b.done)
		return im.enqueue(b)
	}
	return im.propose(b)
}

// propose queues st and commits it on its own goroutine.
func (im *importer) propose(st *importStep) error {
	if err := im.enqueue(st); err != nil {
		for _, it := range st.items {
			if it.Spool != nil {
				it.Spool.Close()
			}
		}
		return err
	}
	// The ordered pipeline: on the leader each batch is queued in the log
	// right after the one before it (queued, not committed), so UIDs follow
	// the source's order while importWindow batches are in flight. With
	// keepOrder a batch waits until the one before is done instead.
	prevQueued, prevDone := im.lastQueued, im.lastDone
	queued, done := make(chan struct{}), make(chan struct{})
	im.lastQueued, im.lastDone = queued, done
	var queuedOnce sync.Once
	markQueued := func() { queuedOnce.Do(func() { close(queued) }) }
	go func() {
		defer close(st.done)
		defer close(done)
		defer markQueued()
		defer func() {
			for _, it := range st.items {
				if it.Spool != nil {
					it.Spool.Close()
				}
			}
		}()
		// Up to importWindow batches are prepared (parsed, compressed,
		// large ones uploaded) at once and in flight at once: Raft then
		// carries several entries per round trip and fsync.
		var res []mail.ImportResult
		var prep *mail.PreparedImport
		err := im.retry(st, func() (err error) {
			prep, err = im.mail.PrepareImport(im.ctx, im.user, st.box, st.items)
			return err
		})
		wait := func(c chan struct{}) error {
			if c == nil {
				return nil
			}
			select {
			case <-c:
				return nil
			case <-im.ctx.Done():
				return im.ctx.Err()
			}
		}
		attempts, committed := 0, false
		if err == nil && !im.keepOrder && im.isLeader() {
			// First attempt on the leader: right behind the batch before
			// (queued, not yet committed).
			err = wait(prevQueued)
			if err == nil {
				attempts++
				res, err = im.mail.CommitImport(mail.WithQueued(im.ctx, markQueued), prep)
				committed = err == nil
			}
			if err != nil && mail.IsTemporary(err) && im.ctx.Err() == nil {
				im.log.Info("import batch failed, retrying", "messages", len(st.items), "err", err)
				err = nil
			}
		}
		if err == nil && !committed {
			// --keep-order: once the batch before is done, whatever
			// happened to it (a leader change can lose a queued entry,
			// and the next one must not commit before its retry).
			// Otherwise: a retry, or a proposal forwarded from a follower,
			// goes at once and may land after a later batch.
			if im.keepOrder {
				err = wait(prevDone)
			}
			if err == nil {
				err = im.retry(st, func() (err error) {
					attempts++
					res, err = im.mail.CommitImport(im.ctx, prep)
					return err
				})
			}
		}
		retried := attempts > 1
		if err != nil {
			st.err = fmt.Errorf("batch of %d messages: %w", len(st.items), err)
			return
		}
		for i, r := range res {
			switch {
			case r.Err != nil:
				st.reply.Failures = append(st.reply.Failures, &adminpb.ImportFailure{Seq: st.seqs[i], SourceId: st.sources[i], Reason: failureReason(r.Err)})
			case r.Duplicate && !retried:
				// Stored by an earlier, interrupted run whose batch was
				// still in flight when this one took the inventory.
				st.reply.Skipped++
			default: // stored now, or by this batch's own earlier attempt
				st.reply.Copied++
				if st.items[i].Spool != nil {
					st.reply.Bytes += uint64(st.items[i].Spool.Size())
				} else {
					st.reply.Bytes += uint64(len(st.items[i].Data))
				}
			}
		}
	}()
	return nil
}

func (im *importer) enqueue(st *importStep) error {
	if st.box == 0 {
		st.box = im.box
	}
	select {
	case im.steps <- st:
		return nil
	case <-im.ctx.Done():
		return im.ctx.Err()
	}
}

// retry runs fn until it succeeds, fails for good, or importRetries
// temporary failures (leader change, timeout) have passed.
func (im *importer) retry(st *importStep, fn func() error) error {
	return retryTemporary(im.ctx, func() error {
		err := fn()
		if err != nil && mail.IsTemporary(err) {
			im.log.Info("import batch failed, retrying", "messages", len(st.items), "err", err)
		}
		return err
	})
}

// retryTemporary runs fn again after a temporary failure (no leader, an
// election, a timeout), with a growing pause, up to importRetries times:
// about 6 s in all, longer than an election.
func retryTemporary(ctx context.Context, fn func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || !mail.IsTemporary(err) || attempt == importRetries || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
		}
		backoff *= 2
	}
}

// sendLoop answers the steps in the order they were queued.
func (im *importer) sendLoop(stream grpc.BidiStreamingServer[adminpb.ImportRequest, adminpb.ImportReply]) error {
	var firstErr error
	for st := range im.steps {
		select {
		case <-st.done:
		case <-im.ctx.Done():
			<-st.done
		}
		if firstErr != nil {
			continue
		}
		if st.err != nil {
			firstErr = st.err
			continue
		}
		im.copied += int(st.reply.Copied)
		im.skipped += int(st.reply.Skipped)
		im.failed += len(st.reply.Failures)
		if err := stream.Send(st.reply); err != nil {
			firstErr = err
		}
	}
	return firstErr
}

func (im *importer) closeSpool() {
	if im.curSpool != nil {
		im.curSpool.Close()
		im.curSpool = nil
	}
}

// failureReason is the operator's words for a message the cluster refused.
func failureReason(err error) string {
	switch {
	case errors.Is(err, mail.ErrTooBig):
		return "too big (over max-message-bytes)"
	case errors.Is(err, mail.ErrOverQuota):
		return "over quota"
	case errors.Is(err, mail.ErrInvalid):
		return "refused: " + strings.TrimPrefix(err.Error(), "mail: ")
	}
	return err.Error()
}

// Export implements continuum export: a consistent view of the user's
// mailboxes, streamed mailbox by mailbox, each message in pieces of at
// most exportPieceBytes (large messages are read a stored chunk at a time).
func (s *Service) Export(req *adminpb.ExportRequest, stream grpc.ServerStreamingServer[adminpb.ExportReply]) error {
	ctx := stream.Context()
	if err := retryTemporary(ctx, func() error { return s.mail.Sync(ctx) }); err != nil {
		return toStatus(err)
	}
	u, err := s.mail.UserByEmail(req.User)
	if err != nil {
		return toStatus(fmt.Errorf("export of %s: %w", req.User, err))
	}
	v := s.mail.View()
	defer v.Close()
	boxes, err := v.Mailboxes(u.Id)
	if err != nil {
		return toStatus(err)
	}
	slices.SortFunc(boxes, func(a, b *storagepb.Mailbox) int { return strings.Compare(a.Name, b.Name) })
	if len(req.Mailboxes) > 0 {
		var keep []*storagepb.Mailbox
		for _, name := range req.Mailboxes {
			name = canonicalMailbox(name)
			i := slices.IndexFunc(boxes, func(b *storagepb.Mailbox) bool { return b.Name == name })
			if i < 0 {
				return status.Errorf(codes.NotFound, "admin: export: no mailbox %q", name)
			}
			keep = append(keep, boxes[i])
		}
		boxes = keep
	}
	buf := make([]byte, exportPieceBytes)
	for _, b := range boxes {
		if err := stream.Send(&adminpb.ExportReply{Item: &adminpb.ExportReply_Mailbox{Mailbox: &adminpb.ExportMailbox{
			Name: b.Name, SpecialUse: b.SpecialUse, Subscribed: b.Subscribed, Messages: b.Messages, Bytes: b.Size, UidValidity: b.UidValidity,
		}}}); err != nil {
			return err
		}
		// Pages of rows, so no iterator stays open while the client reads.
		next := uint32(1)
		for next != 0 {
			var page []*storagepb.Message
			err := v.Messages(b.Id, next, 0, func(m *storagepb.Message) error {
				if len(page) == 256 {
					return errPageFull
				}
				page = append(page, m)
				return nil
			})
			if err != nil && !errors.Is(err, errPageFull) {
				return toStatus(err)
			}
			next = 0
			if errors.Is(err, errPageFull) && page[len(page)-1].Uid != ^uint32(0) {
				next = page[len(page)-1].Uid + 1
			}
			for _, m := range page {
				if req.SinceUnix != 0 && m.InternalDateUnix < req.SinceUnix {
					continue
				}
				if err := sendMessage(s.mail, stream, m, buf); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

var errPageFull = errors.New("page full")

func sendMessage(m *mail.Service, stream grpc.ServerStreamingServer[adminpb.ExportReply], msg *storagepb.Message, buf []byte) error {
	r, err := m.OpenBlob(msg.Blob)
	if errors.Is(err, mail.ErrNotFound) {
		return nil // expunged since the view was taken
	}
	if err != nil {
		return toStatus(err)
	}
	defer r.Close()
	first := true
	for {
		n, err := io.ReadFull(r, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return status.Errorf(codes.Internal, "admin: export: message %d: %v", msg.Uid, err)
		}
		done := err != nil
		em := &adminpb.ExportMessage{Data: buf[:n], More: !done}
		if first {
			em.Uid, em.Flags, em.InternalDateUnix, em.Size = msg.Uid, msg.Flags, msg.InternalDateUnix, msg.Size
			first = false
		}
		if err := stream.Send(&adminpb.ExportReply{Item: &adminpb.ExportReply_Message{Message: em}}); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}
