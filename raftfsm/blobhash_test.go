package raftfsm

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// TestCompressedBlobHashIsChecked: a forged command that names the hash of
// a message already stored (another user's) with other compressed bytes is
// refused, whatever it claims; so is a frame that decompresses to another
// size. Nothing changes in the state.
func TestCompressedBlobHashIsChecked(t *testing.T) {
	h := newHarness(t)
	h.setup("alice@example.test", "mallory@example.test")
	secret := []byte("Subject: alice's secret\r\n\r\nthe launch codes\r\n")
	sum := sha256.Sum256(secret)
	h.must(commandpb.Code_CODE_OK, deliver(&commandpb.Blob{Sha256: sum[:], Zstd: storage.Compress(secret), Size: uint64(len(secret)), Parsed: &storagepb.ParsedMessage{}}, rcpt("alice@example.test")))
	before := h.digest()

	mine := []byte("Subject: hello\r\n\r\nhi\r\n")
	for name, b := range map[string]*commandpb.Blob{
		"another message's hash":    {Sha256: sum[:], Zstd: storage.Compress(mine), Size: uint64(len(mine))},
		"size the frame lies about": {Sha256: sum[:], Zstd: storage.Compress(secret), Size: uint64(len(secret)) + 1},
		"not a frame":               {Sha256: sum[:], Zstd: []byte("garbage"), Size: uint64(len(secret))},
	} {
		b.Parsed = &storagepb.ParsedMessage{}
		if res := h.apply(deliver(b, rcpt("mallory@example.test"))); res.GetCode() != commandpb.Code_CODE_INVALID {
			t.Errorf("%s: code %v (%q), want INVALID", name, res.GetCode(), res.GetMessage())
		}
	}
	if !bytes.Equal(before, h.digest()) {
		t.Fatal("a refused blob changed the state")
	}
}
