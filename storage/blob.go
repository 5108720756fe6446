package storage

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"

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
	return decodeSized(frame, size, make([]byte, 0, size))
}

// decodeSized is DecompressSized into dst (of capacity size or more).
func decodeSized(frame []byte, size uint64, dst []byte) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(frame); err != nil {
		return nil, fmt.Errorf("storage: zstd frame: %w", err)
	}
	if h.HasFCS && h.FrameContentSize != size {
		return nil, fmt.Errorf("storage: zstd frame holds %d bytes, want %d", h.FrameContentSize, size)
	}
	out, err := zdec.DecodeAll(frame, dst)
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

// framePool holds decompression buffers for SumFrame (up to 1 MiB each).
var framePool = sync.Pool{New: func() any { return new([]byte) }}

// SumFrame returns the SHA-256 of the bytes a frame holds, which must be
// exactly size bytes (as DecompressSized checks). A frame of raw blocks is
// hashed in place, its checksum verified; another is decompressed into a
// pooled buffer. Apply checks every blob's id with it, on every replica.
func SumFrame(frame []byte, size uint64) (sum [sha256.Size]byte, err error) {
	sum, _, err = SumFrameHead(frame, size, 0)
	return sum, err
}

// SumFrameHead is SumFrame that also returns a copy of the first head
// bytes of the content (fewer when the content is shorter): what apply
// keeps of a message to store its header block apart.
func SumFrameHead(frame []byte, size uint64, head int) (sum [sha256.Size]byte, prefix []byte, err error) {
	if blocks, ok := rawBlocks(frame, size); ok {
		h := sha256.New()
		x := xxhash.New()
		for _, b := range blocks {
			h.Write(b)
			x.Write(b)
			if n := head - len(prefix); n > 0 {
				prefix = append(prefix, b[:min(n, len(b))]...)
			}
		}
		if binary.LittleEndian.Uint32(frame[len(frame)-4:]) != uint32(x.Sum64()) {
			return sum, nil, fmt.Errorf("storage: zstd frame checksum mismatch")
		}
		h.Sum(sum[:0])
		return sum, prefix, nil
	}
	if size > maxBlobSize {
		return sum, nil, fmt.Errorf("storage: blob of %d bytes is over the limit", size)
	}
	bp := framePool.Get().(*[]byte)
	if uint64(cap(*bp)) < size {
		*bp = make([]byte, 0, size)
	}
	out, err := decodeSized(frame, size, (*bp)[:0])
	if err == nil {
		sum = sha256.Sum256(out)
		if head > 0 {
			prefix = append([]byte(nil), out[:min(head, len(out))]...)
		}
	}
	if cap(*bp) <= 1<<20 {
		framePool.Put(bp)
	}
	return sum, prefix, err
}

// rawBlocks returns the blocks of a frame exactly as rawFrame writes them
// (single segment, 8-byte content size, raw blocks, checksum) holding
// size bytes; ok is false for any other frame.
func rawBlocks(frame []byte, size uint64) (blocks [][]byte, ok bool) {
	if len(frame) < 4+1+8+4 || frame[0] != 0x28 || frame[1] != 0xb5 || frame[2] != 0x2f || frame[3] != 0xfd ||
		frame[4] != 0b1110_0100 || binary.LittleEndian.Uint64(frame[5:13]) != size {
		return nil, false
	}
	rest, total := frame[13:len(frame)-4], uint64(0)
	for {
		if len(rest) < 3 {
			return nil, false
		}
		h := uint32(rest[0]) | uint32(rest[1])<<8 | uint32(rest[2])<<16
		n := int(h >> 3)
		if (h>>1)&3 != 0 || n > maxRawBlock || len(rest) < 3+n {
			return nil, false
		}
		blocks = append(blocks, rest[3:3+n])
		total += uint64(n)
		rest = rest[3+n:]
		if h&1 == 1 {
			break
		}
	}
	return blocks, len(rest) == 0 && total == size
}
