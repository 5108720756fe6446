package storage

import (
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

func compress(data []byte) []byte {
	return zenc.EncodeAll(data, make([]byte, 0, len(data)/2+64))
}

func decompress(v []byte) ([]byte, error) {
	return zdec.DecodeAll(v, nil)
}
