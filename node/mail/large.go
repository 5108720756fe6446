package mail

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// ChunkBytes is the most message data one log entry carries: a message
// larger than this travels as BlobChunk entries of ChunkBytes of its zstd
// frame each, then a small Deliver or Append naming them (raftfsm's
// MaxChunkBytes; the two must agree). A message up to ChunkBytes keeps the
// one-entry path.
const ChunkBytes = 1 << 20

// chunkWindow is how many chunks of one message are proposed at once: the
// log is never idle waiting for the next chunk (a round trip per chunk in
// the wan profile), and a big message holds at most this many chunks in
// memory on its way to the leader.
const chunkWindow = 4

// Spool holds a message being received in an unlinked temporary file, so
// that a big message costs disk and page cache, not heap. Write it fully,
// then hand it to DeliverSpool or AppendSpool; Close it in every case.
type Spool struct {
	f *os.File
	n int64
}

// NewSpool creates a spool file in dir ("" means os.TempDir()). The file is
// unlinked at once: it disappears with the process.
func NewSpool(dir string) (*Spool, error) {
	f, err := os.CreateTemp(dir, "continuum-spool-*")
	if err != nil {
		return nil, fmt.Errorf("mail: spool: %w", err)
	}
	os.Remove(f.Name())
	return &Spool{f: f}, nil
}

// Write appends to the message.
func (sp *Spool) Write(p []byte) (int, error) {
	n, err := sp.f.Write(p)
	sp.n += int64(n)
	return n, err
}

// Size is the number of bytes written.
func (sp *Spool) Size() int64 { return sp.n }

// Reader reads the spooled message from its start.
func (sp *Spool) Reader() io.Reader { return io.NewSectionReader(sp.f, 0, sp.n) }

// Close deletes the spool.
func (sp *Spool) Close() error { return sp.f.Close() }

// mapped returns the spooled bytes, memory-mapped read-only: pages come
// from the page cache as they are read and can be dropped by the kernel
// under pressure; unmap releases them.
func (sp *Spool) mapped() (data []byte, unmap func(), err error) {
	if sp.n == 0 {
		return nil, func() {}, nil
	}
	data, err = syscall.Mmap(int(sp.f.Fd()), 0, int(sp.n), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mail: map spool: %w", err)
	}
	return data, func() { syscall.Munmap(data) }, nil
}

// dropMapped takes a read part of a spool's mapping out of the process's
// resident set (madvise MADV_DONTNEED): the file's pages stay in the page
// cache, and a later read of them faults them back in. Without it the
// whole mapped message counted in the node's RSS until unmap (+47 MB on
// the entry node per 45 MB message in flight). Only for mapped(): on
// anonymous memory MADV_DONTNEED would zero the pages.
func dropMapped(b []byte) {
	if len(b) > 0 {
		_ = syscall.Madvise(b, syscall.MADV_DONTNEED) // advice: failure only costs RSS
	}
}

// DedupeKeySum is DedupeKey from the SHA-256 of the body as received.
func DedupeKeySum(rcpt, from string, received [sha256.Size]byte) []byte {
	h := sha256.New()
	h.Write([]byte(rcpt))
	h.Write([]byte{0})
	h.Write([]byte(from))
	h.Write([]byte{0})
	h.Write(received[:])
	return h.Sum(nil)
}

// messageBytes returns a message's bytes: data, or the spool's contents
// mapped into memory when sp is not nil. release unmaps them; call it once
// they are no longer used. A message over MaxMessageBytes is ErrTooBig.
func (s *Service) messageBytes(data []byte, sp *Spool) (_ []byte, release func(), err error) {
	if sp != nil {
		if sp.Size() > s.opts.MaxMessageBytes {
			return nil, nil, ErrTooBig
		}
		return sp.mapped()
	}
	if int64(len(data)) > s.opts.MaxMessageBytes {
		return nil, nil, ErrTooBig
	}
	return data, func() {}, nil
}

// DeliverSpool is Deliver for a message in a spool: stored is the spool
// (trace headers included) and received the SHA-256 of the body as the
// client sent it. A message over ChunkBytes is proposed in chunks.
func (s *Service) DeliverSpool(ctx context.Context, env Envelope, sp *Spool, received [sha256.Size]byte) ([]Delivery, error) {
	data, unmap, err := s.messageBytes(nil, sp)
	if err != nil {
		return nil, err
	}
	defer unmap()
	blob, err := s.blobFor(ctx, data, dropMapped)
	if err != nil {
		return nil, err
	}
	return s.deliverBlob(ctx, env, blob, func(rcpt string) []byte { return DedupeKeySum(rcpt, env.From, received) })
}

// AppendSpool is Append for a message in a spool.
func (s *Service) AppendSpool(ctx context.Context, userID, mailboxID uint64, flags []string, date time.Time, sp *Spool) (*commandpb.Result, error) {
	data, unmap, err := s.messageBytes(nil, sp)
	if err != nil {
		return nil, err
	}
	defer unmap()
	blob, err := s.blobFor(ctx, data, dropMapped)
	if err != nil {
		return nil, err
	}
	return s.appendBlob(ctx, userID, mailboxID, flags, date, blob)
}

// blobFor parses the message and returns its blob: inline (compressed)
// up to ChunkBytes, else uploaded in chunks first. drop, when not nil,
// is called with each part of data once read (dropMapped for a spool).
func (s *Service) blobFor(ctx context.Context, data []byte, drop func([]byte)) (*commandpb.Blob, error) {
	parsed, err := mimeparse.Parse(data, mimeparse.DefaultLimits())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(data) <= ChunkBytes {
		return newBlob(data, parsed), nil
	}
	if drop != nil {
		drop(data) // the parse touched every page; upload reads them again chunk by chunk
	}
	return s.upload(ctx, data, parsed, drop)
}

// upload compresses data as a stream and proposes the frame as BlobChunk
// entries, up to chunkWindow at a time, each committed before the blob
// that names them is returned. The memory it holds is the encoder's (its
// window is 1 MiB) and chunkWindow chunks.
func (s *Service) upload(ctx context.Context, data []byte, parsed *storagepb.ParsedMessage, drop func([]byte)) (*commandpb.Blob, error) {
	start := time.Now()
	id := make([]byte, storage.UploadIDSize)
	rand.Read(id)
	u := &uploader{s: s, ctx: ctx, id: id, sem: make(chan struct{}, chunkWindow), buf: make([]byte, 0, ChunkBytes)}
	enc, err := zstd.NewWriter(u, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithWindowSize(1<<20), zstd.WithEncoderCRC(true))
	if err != nil {
		return nil, fmt.Errorf("mail: encoder: %w", err)
	}
	sum := sha256.New()
	for off := 0; off < len(data) && u.failed() == nil; off += ChunkBytes {
		part := data[off:min(off+ChunkBytes, len(data))]
		sum.Write(part)
		if _, err := enc.Write(part); err != nil {
			break
		}
		if drop != nil {
			drop(part) // the encoder copied it into its window
		}
	}
	if err := enc.Close(); err == nil {
		u.flush()
	}
	u.wg.Wait()
	if err := u.failed(); err != nil {
		s.log.Info("large message upload failed", "bytes", len(data), "chunks", len(u.sums), "took", time.Since(start), "err", err)
		return nil, err
	}
	s.log.Info("large message uploaded", "bytes", len(data), "chunks", len(u.sums), "took", time.Since(start))
	return &commandpb.Blob{Sha256: sum.Sum(nil), Size: uint64(len(data)), Parsed: parsed,
		UploadId: id, Chunks: uint32(len(u.sums)), ChunkSha256: u.sums}, nil
}

// uploader is the io.Writer under the zstd encoder: it cuts the frame into
// chunks and proposes each.
type uploader struct {
	s    *Service
	ctx  context.Context
	id   []byte
	buf  []byte
	sums [][]byte
	sem  chan struct{}
	wg   sync.WaitGroup

	mu  sync.Mutex
	err error
}

func (u *uploader) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *uploader) fail(err error) {
	u.mu.Lock()
	if u.err == nil {
		u.err = err
	}
	u.mu.Unlock()
}

func (u *uploader) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if err := u.failed(); err != nil {
			return 0, err
		}
		k := min(len(p), ChunkBytes-len(u.buf))
		u.buf = append(u.buf, p[:k]...)
		p = p[k:]
		if len(u.buf) == ChunkBytes {
			u.flush()
		}
	}
	if err := u.failed(); err != nil {
		return 0, err
	}
	return n, nil
}

// flush proposes the buffered chunk once a slot in the window is free.
func (u *uploader) flush() {
	data := u.buf
	u.buf = make([]byte, 0, ChunkBytes)
	if len(data) == 0 || u.failed() != nil {
		return
	}
	sum := sha256.Sum256(data)
	seq := uint32(len(u.sums))
	u.sums = append(u.sums, sum[:])
	select {
	case u.sem <- struct{}{}:
	case <-u.ctx.Done():
		u.fail(fmt.Errorf("%w: %v", ErrUnknownOutcome, u.ctx.Err()))
		return
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.sem }()
		cmd := &commandpb.Command{Op: &commandpb.Command_BlobChunk{BlobChunk: &commandpb.BlobChunk{UploadId: u.id, Seq: seq, Data: data}}}
		res, err := u.s.proposeWait(u.ctx, cmd, false)
		if err == nil {
			err = codeError(res)
		}
		if err != nil {
			u.fail(fmt.Errorf("chunk %d: %w", seq, err))
		}
	}()
}

// OpenBlob streams a stored message: at most one stored chunk and the
// decompressor's window in memory, no database view held between reads.
// ErrNotFound: no such message (expunged since it was listed).
func (s *Service) OpenBlob(sha []byte) (io.ReadCloser, error) {
	r, err := s.db.OpenBlob(sha)
	if err != nil {
		return nil, notFound(err) // not a typed nil in the interface
	}
	return r, nil
}

var _ io.Writer = (*uploader)(nil)
