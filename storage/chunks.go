package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// Large messages arrive in chunks (raftfsm, BlobChunk) so that no Raft log
// entry is large. The rows:
//
//	chunk/<upload><seq>        the chunk's bytes: a piece of the zstd frame
//	upload/<upload>            storagepb.Upload while the upload is open
//	upload-exp/<expires><id>   empty: the expiry index of open uploads
//	blob-chunks/<sha256>       storagepb.ChunkedBlob: a blob made of an
//	                           adopted upload's chunks
//	meta/open-uploads          u64: how many uploads are open
//
// Adopting an upload writes a few small rows and deletes none of the
// chunks: the blob points at them, so the command that makes a 45 MB
// message visible does not copy 45 MB inside one apply batch.

// MetaOpenUploads counts the open uploads, so that the per-command expiry
// of abandoned uploads costs one cached read when there is none.
const MetaOpenUploads = "open-uploads"

func uploadKey(id []byte) []byte { return bytesKey(FamilyUpload, id) }

// Upload returns the open upload id.
func (x reader) Upload(id []byte) (*storagepb.Upload, error) {
	if len(id) != UploadIDSize {
		return nil, ErrNotFound
	}
	u := new(storagepb.Upload)
	if err := x.get(uploadKey(id), u); err != nil {
		return nil, err
	}
	return u, nil
}

// HasChunk reports whether chunk seq of upload id is stored.
func (x reader) HasChunk(id []byte, seq uint32) (bool, error) {
	_, closer, err := getValue(x.r, chunkKey(id, seq))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: get chunk: %w", err)
	}
	return true, closer.Close()
}

// ChunkedBlob returns the record of a blob stored as chunks.
func (x reader) ChunkedBlob(sha []byte) (*storagepb.ChunkedBlob, error) {
	if len(sha) != SHA256Size {
		return nil, ErrNotFound
	}
	c := new(storagepb.ChunkedBlob)
	if err := x.get(bytesKey(FamilyBlobChunks, sha), c); err != nil {
		return nil, err
	}
	return c, nil
}

// chunk returns the bytes of one stored chunk.
func (x reader) chunk(id []byte, seq uint32) ([]byte, error) {
	v, err := x.getRaw(chunkKey(id, seq))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: chunk %x/%d missing", ErrCorrupt, id, seq)
	}
	return v, err
}

// PutChunk stores one chunk of upload id, opening the upload (expiring at
// expires, log time) on its first chunk. u is the upload as the caller read
// it (nil: not open yet); the caller has checked seq is new.
func (b *Batch) PutChunk(id []byte, seq uint32, data, sha []byte, u *storagepb.Upload, expires int64) error {
	if len(id) != UploadIDSize {
		return fmt.Errorf("storage: upload id of %d bytes", len(id))
	}
	if u == nil {
		u = &storagepb.Upload{ExpiresUnixNano: expires}
		if err := b.set(uploadExpKey(expires, id), nil); err != nil {
			return err
		}
		if err := b.addOpenUploads(1); err != nil {
			return err
		}
	}
	for uint32(len(u.ChunkSha256)) <= seq {
		u.ChunkSha256 = append(u.ChunkSha256, nil)
	}
	u.ChunkSha256[seq] = sha
	u.Bytes += uint64(len(data))
	if err := b.set(chunkKey(id, seq), data); err != nil {
		return err
	}
	return b.put(uploadKey(id), u)
}

func (b *Batch) addOpenUploads(delta int64) error {
	n, err := b.Counter(MetaOpenUploads)
	if err != nil {
		return err
	}
	n = uint64(int64(n) + delta)
	if n == 0 {
		return b.del(metaKey(MetaOpenUploads))
	}
	return b.putUint64(metaKey(MetaOpenUploads), n)
}

// closeUpload deletes the open upload's rows, and its chunks unless keep.
func (b *Batch) closeUpload(id []byte, u *storagepb.Upload, keep bool) error {
	if err := b.del(uploadKey(id)); err != nil {
		return err
	}
	if err := b.del(uploadExpKey(u.GetExpiresUnixNano(), id)); err != nil {
		return err
	}
	if !keep {
		for seq, sum := range u.GetChunkSha256() {
			if len(sum) > 0 {
				if err := b.del(chunkKey(id, uint32(seq))); err != nil {
					return err
				}
			}
		}
	}
	return b.addOpenUploads(-1)
}

// DropUpload deletes an open upload and its chunks (the blob it was for
// exists already, or nothing took it).
func (b *Batch) DropUpload(id []byte, u *storagepb.Upload) error { return b.closeUpload(id, u, false) }

// PutBlobChunked is PutBlobCompressed for a blob whose frame is the chunks
// of the open upload id (u, complete, checked by the caller): a new blob
// adopts them in place; an existing blob gains a reference and the upload
// is left for the caller to drop.
func (b *Batch) PutBlobChunked(sha, id []byte, u *storagepb.Upload, size uint64, parsed *storagepb.ParsedMessage) (created bool, err error) {
	if len(sha) != SHA256Size {
		return false, fmt.Errorf("storage: blob id of %d bytes", len(sha))
	}
	ref, err := b.blobRef(sha)
	switch {
	case err == nil:
		ref.Refs++
		return false, b.put(bytesKey(FamilyBlobRef, sha), ref)
	case !errors.Is(err, ErrNotFound):
		return false, err
	}
	if err := b.put(bytesKey(FamilyBlobRef, sha), &storagepb.BlobRef{Refs: 1, Size: size}); err != nil {
		return false, err
	}
	cb := &storagepb.ChunkedBlob{UploadId: id, Chunks: uint32(len(u.GetChunkSha256())), StoredBytes: u.GetBytes()}
	if err := b.put(bytesKey(FamilyBlobChunks, sha), cb); err != nil {
		return false, err
	}
	if parsed == nil {
		parsed = &storagepb.ParsedMessage{}
	}
	if err := b.put(bytesKey(FamilyParsed, sha), parsed); err != nil {
		return false, err
	}
	return true, b.closeUpload(id, u, true)
}

// deleteChunkedBlob deletes blob-chunks/<sha> and the chunks it points at,
// if the blob is chunked.
func (b *Batch) deleteChunkedBlob(sha []byte) error {
	cb, err := b.ChunkedBlob(sha)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for seq := uint32(0); seq < cb.GetChunks(); seq++ {
		if err := b.del(chunkKey(cb.GetUploadId(), seq)); err != nil {
			return err
		}
	}
	return b.del(bytesKey(FamilyBlobChunks, sha))
}

// ExpireUploads deletes up to max open uploads whose expiry (log time) is
// before now, with their chunks, and returns how many it deleted: an
// upload whose proposer died mid-stream is collected the same way on every
// node.
func (b *Batch) ExpireUploads(now int64, max int) (int, error) {
	if n, err := b.Counter(MetaOpenUploads); err != nil || n == 0 {
		return 0, err
	}
	var ids [][]byte
	errStop := errors.New("stop")
	err := b.scan([]byte{byte(FamilyUploadExp)}, u64Key(FamilyUploadExp, orderedInt64(now)), func(k, _ []byte) error {
		if len(k) != 1+8+UploadIDSize {
			return fmt.Errorf("%w: upload-exp key of %d bytes", ErrCorrupt, len(k))
		}
		ids = append(ids, append([]byte(nil), k[9:]...))
		if len(ids) == max {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return 0, err
	}
	for _, id := range ids {
		u, err := b.Upload(id)
		if err != nil {
			return 0, fmt.Errorf("storage: expire upload %x: %w", id, err)
		}
		if err := b.closeUpload(id, u, false); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// chunkedFrame returns the whole zstd frame of a chunked blob (for Blob,
// which returns a message in memory; FETCH of a large message streams with
// DB.OpenBlob instead).
func (x reader) chunkedFrame(cb *storagepb.ChunkedBlob) ([]byte, error) {
	frame := make([]byte, 0, cb.GetStoredBytes())
	for seq := uint32(0); seq < cb.GetChunks(); seq++ {
		c, err := x.chunk(cb.GetUploadId(), seq)
		if err != nil {
			return nil, err
		}
		frame = append(frame, c...)
	}
	return frame, nil
}

// BlobReader streams a blob's message bytes.
type BlobReader struct {
	io.Reader
	// Size is the message's length, uncompressed.
	Size int64
	dec  *zstd.Decoder
}

// Close releases the decoder.
func (r *BlobReader) Close() error {
	r.dec.Close()
	return nil
}

// OpenBlob returns a reader of the blob's message bytes that holds at most
// one chunk of the stored frame and the decoder's window in memory. It
// reads each chunk through its own short snapshot and holds no view (so no
// lock) between reads, so it may be read at the pace of a slow client; if
// the blob is deleted meanwhile (its last message expunged), a later read
// fails with ErrNotFound.
func (db *DB) OpenBlob(sha []byte) (*BlobReader, error) {
	s := db.Snapshot()
	ref, err := s.BlobRef(sha)
	if err != nil {
		s.Close()
		return nil, err
	}
	var src io.Reader
	cb, err := s.ChunkedBlob(sha)
	switch {
	case err == nil:
		src = &chunkSource{db: db, id: cb.GetUploadId(), n: cb.GetChunks()}
	case errors.Is(err, ErrNotFound):
		frame, gerr := s.getRaw(bytesKey(FamilyBlob, sha))
		if gerr != nil {
			s.Close()
			return nil, gerr
		}
		src = bytes.NewReader(frame)
	default:
		s.Close()
		return nil, err
	}
	s.Close()
	dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(maxBlobSize))
	if err != nil {
		return nil, fmt.Errorf("storage: blob decoder: %w", err)
	}
	return &BlobReader{Reader: dec, Size: int64(ref.GetSize()), dec: dec}, nil
}

// chunkSource reads a chunked blob's frame one chunk at a time.
type chunkSource struct {
	db   *DB
	id   []byte
	n    uint32
	next uint32
	buf  []byte
}

func (c *chunkSource) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		if c.next == c.n {
			return 0, io.EOF
		}
		s := c.db.Snapshot()
		v, err := s.getRaw(chunkKey(c.id, c.next))
		s.Close()
		if err != nil {
			return 0, fmt.Errorf("storage: blob chunk %d: %w", c.next, err)
		}
		c.buf = v
		c.next++
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}
