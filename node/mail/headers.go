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

// HeaderBlock returns the header block of the message whose blob is sha,
// read through r, the caller's view of one command (a frontend reads a
// command's messages through one snapshot). The slice is the caller's.
// ErrNotFound: no such message (expunged since the view's messages were
// listed, or a bad id).
func HeaderBlock(r storage.Reader, sha []byte) ([]byte, error) {
	h, err := r.HeaderBlock(sha)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: message %x", ErrNotFound, sha)
	}
	return h, err
}

// HeaderBlock is HeaderBlock (above) through a view of its own.
func (s *Service) HeaderBlock(sha []byte) ([]byte, error) {
	var h []byte
	err := s.read(func(r storage.Reader) (err error) {
		h, err = HeaderBlock(r, sha)
		return err
	})
	return h, err
}

// HeaderBlocks calls fn with the header block of each blob in shas, in
// order, all read through one view; an error from fn stops it and is
// returned. fn must not call back into the Service (the view is held).
func (s *Service) HeaderBlocks(shas [][]byte, fn func(i int, block []byte) error) error {
	return s.read(func(r storage.Reader) error {
		for i, sha := range shas {
			h, err := HeaderBlock(r, sha)
			if err != nil {
				return err
			}
			if err := fn(i, h); err != nil {
				return err
			}
		}
		return nil
	})
}
