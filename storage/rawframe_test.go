package storage

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
)

// TestRawFrame: incompressible data is stored as a zstd frame of raw
// blocks that the ordinary decoder reads back, checksum verified; data
// that compresses is still compressed.
func TestRawFrame(t *testing.T) {
	random := make([]byte, 300<<10) // three raw blocks, sampled first
	rand.Read(random)
	small := random[:10<<10]
	text := bytes.Repeat([]byte("Subject: hello\r\n\r\nThe same line again and again.\r\n"), 300)
	// zstd at SpeedFastest leaves base64 of random bytes as it is (no
	// entropy coding of the literals pays): stored raw too.
	b64 := []byte(base64.StdEncoding.EncodeToString(small))
	for _, tc := range []struct {
		name string
		data []byte
		raw  bool
	}{{"random 300k", random, true}, {"random 10k", small, true}, {"text", text, false}, {"base64", b64, true}, {"one byte", []byte("x"), true}} {
		frame := Compress(tc.data)
		isRaw := len(frame) == len(tc.data)+4+1+8+3*((len(tc.data)+maxRawBlock-1)/maxRawBlock)+4
		if isRaw != tc.raw {
			t.Errorf("%s: frame of %d bytes for %d (raw %v, want %v)", tc.name, len(frame), len(tc.data), isRaw, tc.raw)
		}
		got, err := DecompressSized(frame, uint64(len(tc.data)))
		if err != nil || !bytes.Equal(got, tc.data) {
			t.Errorf("%s: round trip: %v", tc.name, err)
		}
		if got, err := Decompress(frame); err != nil || !bytes.Equal(got, tc.data) {
			t.Errorf("%s: Decompress: %v", tc.name, err)
		}
	}
	// The checksum is checked: a flipped byte in a raw block is refused.
	frame := rawFrame(small)
	frame[100] ^= 1
	if _, err := Decompress(frame); err == nil {
		t.Error("corrupt raw frame decoded without error")
	}
	if _, err := DecompressSized(rawFrame(small), uint64(len(small))+1); err == nil {
		t.Error("raw frame accepted for the wrong size")
	}
}

// TestSumFrame: the hash of what a frame holds, raw or compressed, and the
// same refusals as DecompressSized.
func TestSumFrame(t *testing.T) {
	random := make([]byte, 200<<10)
	rand.Read(random)
	text := bytes.Repeat([]byte("a line of text\r\n"), 1000)
	for _, data := range [][]byte{random, random[:5000], text} {
		for _, frame := range [][]byte{Compress(data), rawFrame(data)} {
			sum, err := SumFrame(frame, uint64(len(data)))
			if err != nil || sum != sha256.Sum256(data) {
				t.Errorf("%d bytes, frame %d: %x %v", len(data), len(frame), sum[:4], err)
			}
			if _, err := SumFrame(frame, uint64(len(data))-1); err == nil {
				t.Errorf("%d bytes: accepted for a smaller size", len(data))
			}
		}
	}
	bad := rawFrame(random)
	bad[5000] ^= 1
	if _, err := SumFrame(bad, uint64(len(random))); err == nil {
		t.Error("raw frame with a flipped byte: checksum not verified")
	}
	bad = Compress(random[:5000]) // raw: its block header damaged
	bad[14] ^= 0x10
	if _, err := SumFrame(bad, uint64(len(text))); err == nil {
		t.Error("raw frame with a damaged block header accepted")
	}
}
