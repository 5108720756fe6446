package storage

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// ErrBadContent is wrapped by UploadContent when the chunks are not one
// zstd frame of at most the allowed size: the command that names them is
// invalid (the same verdict on every node, as the bytes are the same).
var ErrBadContent = errors.New("storage: upload is not a valid message frame")

// MaxUploadWindow bounds the zstd window of an upload's frame, and so the
// decoder's memory in apply. Proposers stream-compress large messages with
// a 1 MiB window (node/mail); a frame asking for more than this is refused
// as ErrBadContent.
const MaxUploadWindow = 16 << 20

// UploadContent decodes the message that upload id's chunks 0…chunks-1
// hold (pieces of one zstd frame), one chunk and the decoder's window at a
// time, and returns its SHA-256, its length and its first prefix bytes (or
// all of it when shorter). It stops with ErrBadContent as soon as the
// message would be longer than max bytes or the frame is malformed; a
// missing chunk is ErrCorrupt.
func (x reader) UploadContent(id []byte, chunks uint32, max uint64, prefix int) (sum []byte, n uint64, head []byte, err error) {
	src := &readerChunks{x: x, id: id, n: chunks}
	defer src.close()
	dec, err := zstd.NewReader(src, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(maxBlobSize), zstd.WithDecoderMaxWindow(MaxUploadWindow))
	if err != nil {
		return nil, 0, nil, fmt.Errorf("storage: upload decoder: %w", err)
	}
	defer dec.Close()
	h := sha256.New()
	buf := make([]byte, 256<<10)
	for {
		k, rerr := dec.Read(buf)
		if k > 0 {
			if n+uint64(k) > max {
				return nil, 0, nil, fmt.Errorf("%w: more than %d bytes", ErrBadContent, max)
			}
			if len(head) < prefix {
				head = append(head, buf[:min(k, prefix-len(head))]...)
			}
			h.Write(buf[:k])
			n += uint64(k)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if errors.Is(rerr, ErrCorrupt) {
				return nil, 0, nil, rerr
			}
			return nil, 0, nil, fmt.Errorf("%w: %v", ErrBadContent, rerr)
		}
	}
	return h.Sum(nil), n, head, nil
}
