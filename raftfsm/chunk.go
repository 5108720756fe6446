package raftfsm

import (
	"bytes"
	"crypto/sha256"
	"errors"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/storage"
)

// Large messages (DESIGN.md, "Large messages"): the proposer sends the zstd
// frame as BlobChunk entries of at most MaxChunkBytes, then the Deliver or
// Append that names the upload. These limits are part of the determinism
// contract, like those in validate.go.
const (
	// MaxChunkBytes bounds a BlobChunk's data, and so every log entry that
	// carries message bytes: a Raft entry stays near 1 MiB, which a
	// follower writes and acknowledges well within a heartbeat interval.
	MaxChunkBytes = 1 << 20
	// maxChunks bounds an upload: a 1 GiB message (maxMessageSize) that
	// does not compress, plus the frame's overhead.
	maxChunks = maxMessageSize/MaxChunkBytes + 64
	// uploadTTL is how long, in log time from its first chunk, an upload
	// may stay open before apply collects it as abandoned.
	uploadTTL = 15 * 60 * 1e9
	// expireUploadsPerCommand bounds the collection work of one command.
	expireUploadsPerCommand = 4
)

// applyBlobChunk stores one chunk under its upload. A chunk that is
// already there (a retried proposal) changes nothing.
func applyBlobChunk(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetBlobChunk()
	id, seq, data := op.GetUploadId(), op.GetSeq(), op.GetData()
	switch {
	case len(id) != storage.UploadIDSize:
		return invalid("upload id of %d bytes", len(id)), nil
	case seq >= maxChunks:
		return invalid("chunk %d beyond the limit", seq), nil
	case len(data) == 0 || len(data) > MaxChunkBytes:
		return invalid("chunk of %d bytes", len(data)), nil
	}
	u, err := t.b.Upload(id)
	if ok, err := found(err); err != nil {
		return nil, err
	} else if !ok {
		u = nil
	} else if seq < uint32(len(u.ChunkSha256)) && len(u.ChunkSha256[seq]) > 0 {
		return okResult(), nil
	}
	if u == nil {
		// An upload that was adopted, dropped or expired is not open:
		// a late retry of one of its chunks opens a new one, which
		// expires like any abandoned upload.
		if has, err := t.b.HasChunk(id, seq); err != nil {
			return nil, err
		} else if has {
			return okResult(), nil // adopted: its chunks are a blob's now
		}
	}
	sum := sha256.Sum256(data)
	if err := t.b.PutChunk(id, seq, data, sum[:], u, t.now+uploadTTL); err != nil {
		return nil, err
	}
	return okResult(), nil
}

// checkChunkedBlob validates the shape of a blob that names an upload.
func checkChunkedBlob(b *commandpb.Blob) *commandpb.Result {
	switch {
	case len(b.GetData()) > 0 || len(b.GetZstd()) > 0:
		return invalid("chunked blob with inline bytes")
	case len(b.GetUploadId()) != storage.UploadIDSize:
		return invalid("upload id of %d bytes", len(b.GetUploadId()))
	case b.GetChunks() == 0 || b.GetChunks() > maxChunks || len(b.GetChunkSha256()) != int(b.GetChunks()):
		return invalid("chunked blob with %d chunks and %d hashes", b.GetChunks(), len(b.GetChunkSha256()))
	case b.GetSize() == 0 || b.GetSize() > maxMessageSize:
		return invalid("chunked blob with a bad size")
	case len(b.GetSha256()) != sha256.Size:
		return invalid("blob id is not a SHA-256")
	}
	return nil
}

// openUpload checks, before anything is written, that the upload a
// chunked blob names holds exactly the chunks the proposer sent. When the
// blob exists already (single instance, or a retry) the upload is not
// needed; it is returned (if open) so that finishUpload drops it.
func (t *tx) openUpload(b *commandpb.Blob) (*commandpb.Result, error) {
	t.upload, t.uploadID = nil, nil
	if len(b.GetUploadId()) == 0 {
		return nil, nil
	}
	if res := checkChunkedBlob(b); res != nil {
		return res, nil
	}
	u, err := t.b.Upload(b.GetUploadId())
	open, err := found(err)
	if err != nil {
		return nil, err
	}
	_, err = t.b.BlobRef(b.GetSha256())
	exists, err := found(err)
	if err != nil {
		return nil, err
	}
	if !exists {
		switch {
		case !open:
			return result(commandpb.Code_CODE_INCOMPLETE, "upload not found (expired?)"), nil
		case len(u.ChunkSha256) != len(b.GetChunkSha256()):
			return result(commandpb.Code_CODE_INCOMPLETE, "upload incomplete"), nil
		}
		for i, want := range b.GetChunkSha256() {
			if len(u.ChunkSha256[i]) == 0 {
				return result(commandpb.Code_CODE_INCOMPLETE, "upload incomplete"), nil
			}
			if !bytes.Equal(u.ChunkSha256[i], want) {
				return invalid("chunk %d does not match its SHA-256", i), nil
			}
		}
		// The blob will be stored under b.sha256 from these chunks: the
		// message they hold must be that hash's, as checkBlob requires of
		// an inline blob (a wrong hash would make every later message
		// with that hash share these bytes). The chunk hashes only say
		// the chunks are those the proposer sent, not what they hold.
		if res, err := t.verifyUpload(b); res != nil || err != nil {
			return res, err
		}
	}
	if open {
		t.upload, t.uploadID = u, b.GetUploadId()
	}
	return nil, nil
}

// verifyUpload decodes the upload's frame (streaming: one chunk and the
// decoder window at a time) and checks that it holds exactly b.size bytes
// whose SHA-256 is b.sha256; it keeps the message's header block for
// putBlob, as checkBlob does for an inline blob. The cost is one
// decompression and one hash of the message per node, inside apply
// (docs/notes/read-path.md has the figures).
func (t *tx) verifyUpload(b *commandpb.Blob) (*commandpb.Result, error) {
	sum, n, head, err := t.b.UploadContent(b.GetUploadId(), b.GetChunks(), b.GetSize(), storage.MaxHeaderBlock)
	switch {
	case errors.Is(err, storage.ErrBadContent):
		return invalid("chunked blob does not decompress to its size"), nil
	case err != nil:
		return nil, err
	case n != b.GetSize():
		return invalid("chunked blob holds %d bytes, not its size %d", n, b.GetSize()), nil
	case !bytes.Equal(sum, b.GetSha256()):
		return invalid("blob SHA-256 does not match its data"), nil
	}
	t.header = headerBlock(b.GetParsed(), head)
	return nil, nil
}

// finishUpload drops the command's upload if no message adopted it.
func (t *tx) finishUpload() error {
	if t.upload == nil {
		return nil
	}
	u, id := t.upload, t.uploadID
	t.upload, t.uploadID = nil, nil
	return t.b.DropUpload(id, u)
}

// putChunkedBlob stores (or references) a blob made of the open upload.
func (t *tx) putChunkedBlob(b *commandpb.Blob) (created bool, err error) {
	if t.upload == nil {
		// openUpload found the blob existing: just a reference.
		return false, t.b.RefBlob(b.GetSha256())
	}
	created, err = t.b.PutBlobChunked(b.GetSha256(), t.uploadID, t.upload, b.GetSize(), b.GetParsed())
	if err != nil {
		return false, err
	}
	if created {
		t.upload, t.uploadID = nil, nil // adopted
	}
	return created, nil
}
