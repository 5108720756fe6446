package node_test

import (
	"bytes"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

type storagepbMessage = storagepb.Message

// testID returns the X-Test-Id header value of a stored message.
func testID(b []byte) string {
	i := bytes.Index(b, []byte("X-Test-Id: "))
	if i < 0 {
		return ""
	}
	rest := b[i+len("X-Test-Id: "):]
	if j := bytes.Index(rest, []byte("\r\n")); j >= 0 {
		rest = rest[:j]
	}
	return string(rest)
}

var osRemoveAll = os.RemoveAll

type commandpbUIDRange = commandpb.UIDRange

func protoMarshal(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}
