package storage

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/klauspost/compress/zstd"
)

// A message's header block (its header fields and the blank line that ends
// them, bytes [root.header_start, root.header_end) of parsed/<sha>) is kept
// apart from the compressed message, uncompressed, in header/<sha>, so that
// FETCH of header fields (HEADER, HEADER.FIELDS[.NOT]) reads a few hundred
// bytes instead of decompressing every message. raftfsm writes the row when
// it stores a new blob, from the bytes it has already decompressed to check
// the blob's SHA-256: a function of the command alone, the same on every
// node. A blob without the row (stored before the row existed, or whose
// header block is over MaxHeaderBlock) is read by cutting the header block
// out of the message, so HeaderBlock answers the same either way.

// MaxHeaderBlock bounds a header/ row. Real header blocks are 0.5–8 KiB;
// a longer one is left inside the message only.
const MaxHeaderBlock = 64 << 10

// PutHeaderBlock stores the header block of blob sha (created in this
// batch). An empty block, or one over MaxHeaderBlock, stores nothing.
func (b *Batch) PutHeaderBlock(sha, block []byte) error {
	if len(sha) != SHA256Size {
		return fmt.Errorf("storage: blob id of %d bytes", len(sha))
	}
	if len(block) == 0 || len(block) > MaxHeaderBlock {
		return nil
	}
	return b.set(bytesKey(FamilyHeader, sha), block)
}

// HasHeaderBlock reports whether blob sha has its header/ row.
func (x reader) HasHeaderBlock(sha []byte) (bool, error) {
	if len(sha) != SHA256Size {
		return false, nil
	}
	_, closer, err := getValue(x.r, bytesKey(FamilyHeader, sha))
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: get header: %w", err)
	}
	return true, closer.Close()
}

// HeaderBlock returns the header block of blob sha (the caller's copy):
// the header/ row when there is one, else the bytes the parsed record's
// root part names, cut out of the message (a chunked blob is decoded only
// as far as the header's end). ErrNotFound: no such blob.
func (x reader) HeaderBlock(sha []byte) ([]byte, error) {
	if len(sha) != SHA256Size {
		return nil, ErrNotFound
	}
	v, err := x.getRaw(bytesKey(FamilyHeader, sha))
	if err == nil || !errors.Is(err, ErrNotFound) {
		return v, err
	}
	p, err := x.Parsed(sha)
	if err != nil {
		return nil, err
	}
	root := p.GetRoot()
	start, end := root.GetHeaderStart(), root.GetHeaderEnd()
	if start > end || end > maxBlobSize {
		return nil, fmt.Errorf("%w: parsed %x: header [%d,%d)", ErrCorrupt, sha, start, end)
	}
	if end == 0 {
		return []byte{}, nil
	}
	data, err := x.blobPrefix(sha, end)
	if err != nil {
		return nil, err
	}
	if uint64(len(data)) < end {
		return nil, fmt.Errorf("%w: parsed %x: header ends at %d in a %d-byte message", ErrCorrupt, sha, end, len(data))
	}
	return data[start:end], nil
}

// blobPrefix returns at least the first n bytes of blob sha's message (all
// of it when shorter): an inline blob is decompressed whole (≤ 1 MiB), a
// chunked one streamed until n bytes are out.
func (x reader) blobPrefix(sha []byte, n uint64) ([]byte, error) {
	cb, err := x.ChunkedBlob(sha)
	if errors.Is(err, ErrNotFound) {
		return x.Blob(sha)
	}
	if err != nil {
		return nil, err
	}
	src := &readerChunks{x: x, id: cb.GetUploadId(), n: cb.GetChunks()}
	defer src.close()
	dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(maxBlobSize))
	if err != nil {
		return nil, fmt.Errorf("storage: blob decoder: %w", err)
	}
	defer dec.Close()
	out := make([]byte, n)
	k, err := io.ReadFull(dec, out)
	switch {
	case err == nil:
		return out, nil
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return out[:k], nil
	default:
		return nil, fmt.Errorf("%w: blob %x: %v", ErrCorrupt, sha, err)
	}
}

// readerChunks reads a chunked blob's frame one chunk at a time through one
// view (unlike chunkSource, which takes a snapshot per chunk), reading each
// chunk in place: the caller calls close when done.
type readerChunks struct {
	x      reader
	id     []byte
	n      uint32
	next   uint32
	buf    []byte
	closer io.Closer // of the chunk in buf
}

func (c *readerChunks) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		c.close()
		if c.next == c.n {
			return 0, io.EOF
		}
		v, closer, err := getValue(c.x.r, chunkKey(c.id, c.next))
		if errors.Is(err, pebble.ErrNotFound) {
			return 0, fmt.Errorf("%w: chunk %x/%d missing", ErrCorrupt, c.id, c.next)
		}
		if err != nil {
			return 0, fmt.Errorf("storage: get chunk: %w", err)
		}
		c.buf, c.closer = v, closer
		c.next++
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *readerChunks) close() {
	if c.closer != nil {
		_ = c.closer.Close()
		c.closer, c.buf = nil, nil
	}
}

// HeaderBlocks calls fn(i, block) with the header block of each blob in
// shas (HeaderBlock), in ascending SHA-256 order rather than list order,
// reading the header/ rows of the whole list with one iterator: the rows'
// keys are the hashes, so sorted lookups walk the family forwards instead
// of starting one point lookup per message. block is only valid during fn.
// A blob without a row goes through HeaderBlock's fallback; a missing blob
// is ErrNotFound.
func (x reader) HeaderBlocks(shas [][]byte, fn func(i int, block []byte) error) error {
	order := make([]int, len(shas))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return bytes.Compare(shas[a], shas[b]) })
	it, err := x.r.NewIter(&pebble.IterOptions{LowerBound: []byte{byte(FamilyHeader)}, UpperBound: []byte{byte(FamilyHeader) + 1}})
	if err != nil {
		return fmt.Errorf("storage: iterate: %w", err)
	}
	defer it.Close()
	key := make([]byte, 1+SHA256Size)
	key[0] = byte(FamilyHeader)
	for _, i := range order {
		sha := shas[i]
		if len(sha) == SHA256Size {
			copy(key[1:], sha)
			if it.SeekGE(key) && bytes.Equal(it.Key(), key) {
				v, err := it.ValueAndErr()
				if err != nil {
					return fmt.Errorf("storage: get header: %w", err)
				}
				if err := fn(i, v); err != nil {
					return err
				}
				continue
			}
			if err := it.Error(); err != nil {
				return fmt.Errorf("storage: get header: %w", err)
			}
		}
		h, err := x.HeaderBlock(sha)
		if err != nil {
			return err
		}
		if err := fn(i, h); err != nil {
			return err
		}
	}
	return nil
}
