package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
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

// Incompressible data is stored in a zstd frame of raw blocks: the same
// format (every reader, old and new, decodes it, the checksum included),
// but decoding is a copy and the proposer spends no more time on it.
const (
	// rawAbove: a frame over this share of the data (in 1/64ths) saves
	// too little to be worth decompressing on every replica and read.
	rawAbove = 56 // 87.5%
	// A message this large is first tried on a sample from its middle.
	sampleFrom, sampleSize = 64 << 10, 16 << 10
	maxRawBlock            = 128 << 10 // zstd's largest block
)

func compress(data []byte) []byte {
	if len(data) >= sampleFrom {
		mid := len(data)/2 - sampleSize/2
		if s := zenc.EncodeAll(data[mid:mid+sampleSize], nil); len(s)*64 > sampleSize*rawAbove {
			return rawFrame(data)
		}
	}
	frame := zenc.EncodeAll(data, make([]byte, 0, len(data)/2+64))
	if len(data) > 0 && len(frame)*64 > len(data)*rawAbove {
		return rawFrame(data)
	}
	return frame
}

// rawFrame is data in a zstd frame (RFC 8878 §3.1.1) of raw blocks: a
// single-segment frame with the content size, and the content checksum
// the encoder also writes (WithEncoderCRC).
func rawFrame(data []byte) []byte {
	out := make([]byte, 0, len(data)+18+3*(len(data)/maxRawBlock+1))
	out = append(out, 0x28, 0xb5, 0x2f, 0xfd)
	// Frame header descriptor: FCS field of 8 bytes (11), single segment
	// (no window descriptor), content checksum, no dictionary.
	out = append(out, 0b1110_0100)
	out = binary.LittleEndian.AppendUint64(out, uint64(len(data)))
	rest := data
	for {
		n := min(len(rest), maxRawBlock)
		h := uint32(n) << 3 // block type 0: raw
		if n == len(rest) {
			h |= 1 // last block
		}
		out = append(out, byte(h), byte(h>>8), byte(h>>16))
		out = append(out, rest[:n]...)
		rest = rest[n:]
		if len(rest) == 0 {
			break
		}
	}
	return binary.LittleEndian.AppendUint32(out, uint32(xxhash.Sum64(data)))
}

func decompress(v []byte) ([]byte, error) {
	return zdec.DecodeAll(v, nil)
}
