package mimeparse

import (
	"errors"
	"fmt"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// ErrNoSuchPart reports a section number that names no part of the message.
var ErrNoSuchPart = errors.New("mimeparse: no such part")

// ErrMismatch reports a parsed record whose offsets do not fit the message
// bytes it was given with: the record and the blob disagree.
var ErrMismatch = errors.New("mimeparse: parsed record does not match message")

// Section returns the part an IMAP section number names (RFC 9051 §6.4.5):
// path holds its 1-based part numbers, and an empty path names the whole
// message, msg.Root. Part n of a multipart is its n-th child; the parts of a
// message/rfc822 (or message/global) part are those of its encapsulated
// message; a message whose body is not multipart, the top level included,
// has only part 1, its body. So for BODY[3.HEADER] the caller asks for [3]
// and serves the header of its child.
//
// data is the stored message; the offsets of the part found are checked
// against it so that a caller slicing data[part.BodyStart:part.BodyEnd]
// cannot go out of range.
func Section(data []byte, msg *storagepb.ParsedMessage, path []int) (*storagepb.Part, error) {
	return SectionOfSize(uint64(len(data)), msg, path)
}

// SectionOfSize is Section for a message of size bytes that is not in
// memory (a large message, streamed).
func SectionOfSize(size uint64, msg *storagepb.ParsedMessage, path []int) (*storagepb.Part, error) {
	if msg == nil || msg.Root == nil {
		return nil, fmt.Errorf("%w: no root part", ErrMismatch)
	}
	part := msg.Root
	body := msg.Root // the body of the message whose parts are numbered next
	for i, n := range path {
		if i > 0 {
			switch {
			case part.Type == "multipart":
				body = part
			case isMessage(part) && len(part.Children) == 1 && part.Children[0] != nil:
				body = part.Children[0]
			default:
				return nil, fmt.Errorf("%w: %v: part %v has no subparts", ErrNoSuchPart, path, path[:i])
			}
		}
		switch {
		case n < 1:
			return nil, fmt.Errorf("%w: %v: part numbers start at 1", ErrNoSuchPart, path)
		case body.Type == "multipart":
			if n > len(body.Children) {
				return nil, fmt.Errorf("%w: %v", ErrNoSuchPart, path)
			}
			part = body.Children[n-1]
		case n == 1:
			part = body
		default:
			return nil, fmt.Errorf("%w: %v: a non-multipart body has only part 1", ErrNoSuchPart, path)
		}
		if part == nil {
			return nil, fmt.Errorf("%w: part %v is nil", ErrMismatch, path[:i+1])
		}
	}
	if !(part.HeaderStart <= part.HeaderEnd && part.HeaderEnd <= part.BodyStart &&
		part.BodyStart <= part.BodyEnd && part.BodyEnd <= size) {
		return nil, fmt.Errorf("%w: part %v at [%d,%d,%d,%d] in %d bytes", ErrMismatch, path,
			part.HeaderStart, part.HeaderEnd, part.BodyStart, part.BodyEnd, size)
	}
	return part, nil
}
