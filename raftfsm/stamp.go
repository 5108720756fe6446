package raftfsm

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The leader stamps a command's log time (Command.time_unix_nano, field 1)
// just before it proposes. A proposer encodes its command once, unstamped
// (Encode of a Command with time 0 leaves field 1 out); the leader, local
// or at the end of a forward, checks the bytes (CheckUnstamped) and stamps
// them (Stamp) without decoding them. Encode is deterministic and writes
// fields in number order, so Stamp(Encode(c), t) is byte for byte
// Encode(c with time t): the log holds what it held when the leader
// decoded, stamped and re-encoded (TestStampIsEncode pins it).

const fieldTime = 1

// CheckUnstamped checks, without decoding, that data is an encoded Command
// as a proposer sends it: well-formed protobuf at the top level, with an
// operation (a field this or a newer version may know) and no log time. A
// malformation inside the operation is found by the state machine's Decode
// at apply, which answers it as ErrMalformed.
func CheckUnstamped(data []byte) error {
	op := false
	for b := data; len(b) > 0; {
		num, typ, n := protowire.ConsumeField(b)
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrMalformed, protowire.ParseError(n))
		}
		if num == fieldTime {
			return fmt.Errorf("%w: the proposer set the log time; the leader stamps it", ErrMalformed)
		}
		if num >= firstOpField && typ == protowire.BytesType {
			op = true
		}
		b = b[n:]
	}
	if !op {
		return fmt.Errorf("%w: no operation", ErrMalformed)
	}
	return nil
}

// Stamp returns the unstamped encoded command data with log time t, in a
// new slice.
func Stamp(data []byte, t int64) []byte {
	out := make([]byte, 0, len(data)+1+protowire.SizeVarint(uint64(t)))
	if t != 0 {
		out = protowire.AppendTag(out, fieldTime, protowire.VarintType)
		out = protowire.AppendVarint(out, uint64(t))
	}
	return append(out, data...)
}
