package mail

import (
	"errors"
	"fmt"

	"github.com/continuum-mail/continuum/storage"
)

// Header blocks: what IMAP needs for FETCH BODY[HEADER] and
// BODY[HEADER.FIELDS (…)] (RFC 9051 §6.4.5) without decompressing the
// message. Apply keeps each new message's header block (its header fields
// and the blank line after them) apart from the compressed bytes
// (storage/headers.go); a message stored before that, or whose header block
// is over storage.MaxHeaderBlock, is answered from the message itself, so
// the bytes are the same either way: bytes [header_start, header_end) of
// the message, as the parsed record's root part names them.

// headerBlock returns the header block of the message whose blob is sha,
// read through r, the caller's view of one command (View.HeaderBlock). The
// slice is the caller's. ErrNotFound: no such message (expunged since the
// view's messages were listed, or a bad id).
func headerBlock(r storage.Reader, sha []byte) ([]byte, error) {
	h, err := r.HeaderBlock(sha)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: message %x", ErrNotFound, sha)
	}
	return h, err
}

// HeaderBlock is View.HeaderBlock through a view of its own.
func (s *Service) HeaderBlock(sha []byte) ([]byte, error) {
	var h []byte
	err := s.read(func(r storage.Reader) (err error) {
		h, err = headerBlock(r, sha)
		return err
	})
	return h, err
}

// MaxHeaderBlock bounds what HeaderBlock returns from the stored row; a
// longer header block (rare) is cut from the message, up to its size.
const MaxHeaderBlock = storage.MaxHeaderBlock

// headerBlocks calls fn(i, block) with the header block of each blob in
// shas, all read through r, in the order of the hashes (not of the list:
// the rows are keyed by hash, and one forward walk over them is about four
// times cheaper than a point lookup per message; BenchmarkHeaderBlocks).
// block is valid only during fn; an error from fn stops it and is returned.
func headerBlocks(r storage.Reader, shas [][]byte, fn func(i int, block []byte) error) error {
	err := r.HeaderBlocks(shas, fn)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return err
}

// HeaderBlocks is View.HeaderBlocks through a view of its own. fn must
// not call back into the Service (the view is held).
func (s *Service) HeaderBlocks(shas [][]byte, fn func(i int, block []byte) error) error {
	return s.read(func(r storage.Reader) error { return headerBlocks(r, shas, fn) })
}
