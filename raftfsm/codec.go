package raftfsm

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/commandpb"
)

var (
	// ErrMalformed is wrapped by every error of Decode: the entry is not a
	// command this or any version could apply.
	ErrMalformed = errors.New("raftfsm: malformed command")

	// ErrUnknownOp is the fatal condition of a command whose operation this
	// binary does not know (a newer node proposed it) and that is not
	// skippable.
	ErrUnknownOp = errors.New("raftfsm: unknown operation")

	// ErrStopped is the response to every entry after the FSM stopped on a
	// fatal error (OnFatal was called).
	ErrStopped = errors.New("raftfsm: stopped after a fatal error")

	// ErrAlreadyApplied is the response to an entry at or below the applied
	// index (a replay after restart); the entry changed nothing.
	ErrAlreadyApplied = errors.New("raftfsm: entry already applied")
)

// decodeOpts bounds nesting; unknown fields are kept, which is how an
// operation from a newer version is recognised.
var decodeOpts = proto.UnmarshalOptions{RecursionLimit: 64}

// Decode is the one decoder of log entries. It never panics. An entry that is
// not a protobuf Command, or a Command with no operation and nothing unknown
// in it, is malformed. A Command whose only operation is a field this binary
// does not know decodes without error and with Op == nil: the FSM treats it
// as an unknown operation (skipped if skippable, fatal otherwise).
func Decode(data []byte) (*commandpb.Command, error) {
	c := new(commandpb.Command)
	if err := decodeOpts.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if c.Op == nil && !hasUnknownOp(c.ProtoReflect().GetUnknown()) {
		return nil, fmt.Errorf("%w: no operation", ErrMalformed)
	}
	return c, nil
}

// firstOpField is the lowest field number of Command's op oneof; every
// operation added later takes a higher one, and every operation is a message
// (wire type bytes).
const firstOpField = 10

// hasUnknownOp reports whether the unknown fields of a Command include one
// that can be an operation from a newer version.
func hasUnknownOp(unknown []byte) bool {
	for len(unknown) > 0 {
		num, typ, n := protowire.ConsumeField(unknown)
		if n < 0 {
			return false
		}
		if num >= firstOpField && typ == protowire.BytesType {
			return true
		}
		unknown = unknown[n:]
	}
	return false
}

// Encode is the inverse of Decode, for proposers and tests.
func Encode(c *commandpb.Command) ([]byte, error) {
	if c.GetOp() == nil {
		return nil, fmt.Errorf("%w: no operation", ErrMalformed)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("raftfsm: encode: %w", err)
	}
	return b, nil
}
