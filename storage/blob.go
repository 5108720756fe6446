package storage

import (
	"fmt"

	"github.com/klauspost/compress/zstd"
)

// maxBlobSize bounds the decompressed size of one blob, so that a corrupt or
// hostile frame cannot make the decoder allocate without limit.
const maxBlobSize = 1 << 30

// One encoder and one decoder for the process: EncodeAll and DecodeAll are
// safe for concurrent use and reuse their internal state.
//
// The encoder runs with concurrency 1 at a fixed level, so the same input
// always gives the same frame with a given library version; Digest hashes
// blobs as stored, so nodes compare equal only while they run the same
// klauspost/compress version (see DESIGN.md).
var (
	zenc, _ = zstd.NewWriter(nil,
		zstd.WithEncoderConcurrency(1),
		zstd.WithEncoderLevel(zstd.SpeedFastest),
		zstd.WithEncoderCRC(true),
		zstd.WithZeroFrames(true))
	zdec, _ = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecoderMaxMemory(maxBlobSize))
)

// Compress returns the zstd frame the store keeps for data. Proposers call
// it once per message (commandpb.Blob.zstd) so that no replica compresses.
func Compress(data []byte) []byte { return compress(data) }

// Decompress reverses Compress, bounded to 1 GiB.
func Decompress(frame []byte) ([]byte, error) { return decompress(frame) }

// DecompressSized decompresses a frame that must hold exactly size bytes,
// refusing it as soon as it would hold more (the allocation is bounded by
// size, not by what the frame claims).
func DecompressSized(frame []byte, size uint64) ([]byte, error) {
	if size > maxBlobSize {
		return nil, fmt.Errorf("storage: blob of %d bytes is over the limit", size)
	}
	var h zstd.Header
	if err := h.Decode(frame); err != nil {
		return nil, fmt.Errorf("storage: zstd frame: %w", err)
	}
	if h.HasFCS && h.FrameContentSize != size {
		return nil, fmt.Errorf("storage: zstd frame holds %d bytes, want %d", h.FrameContentSize, size)
	}
	out, err := zdec.DecodeAll(frame, make([]byte, 0, size))
	if err != nil {
		return nil, err
	}
	if uint64(len(out)) != size {
		return nil, fmt.Errorf("storage: zstd frame holds %d bytes, want %d", len(out), size)
	}
	return out, nil
}

func compress(data []byte) []byte {
	return zenc.EncodeAll(data, make([]byte, 0, len(data)/2+64))
}

func decompress(v []byte) ([]byte, error) {
	return zdec.DecodeAll(v, nil)
}
