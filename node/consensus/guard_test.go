package consensus

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// encodeRPC writes one request as raft.NetworkTransport does: a type byte,
// then the msgpack body.
func encodeRPC(t testing.TB, typ uint8, req any) []byte {
	var buf bytes.Buffer
	buf.WriteByte(typ)
	if err := codec.NewEncoder(&buf, &codec.MsgpackHandle{}).Encode(req); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func hdr(id string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte("127.0.0.1:1")}
}

// TestGuardPassesOwnRPCsUnchanged: requests naming the certificate's node
// pass byte for byte, a snapshot's data with them; the first one naming
// another node stops the stream before its last byte.
func TestGuardPassesOwnRPCsUnchanged(t *testing.T) {
	var in bytes.Buffer
	in.Write(encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Term: 3,
		Entries: []*raft.Log{{Index: 7, Term: 3, Type: raft.LogCommand, Data: bytes.Repeat([]byte("x"), 100_000)}}}))
	in.Write(encodeRPC(t, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("n1"), Term: 4}))
	in.Write(encodeRPC(t, rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: hdr("n1"), Term: 4, Size: 5}))
	in.WriteString("SNAPS")
	in.Write(encodeRPC(t, rpcTimeoutNow, &raft.TimeoutNowRequest{RPCHeader: hdr("n1")}))
	in.Write(encodeRPC(t, rpcRequestPreVote, &raft.RequestPreVoteRequest{RPCHeader: hdr("n1"), Term: 5}))
	want := append([]byte(nil), in.Bytes()...)
	var out bytes.Buffer
	if err := check(bytes.NewReader(want), &out, "n1"); err != io.EOF {
		t.Fatalf("check: %v, want EOF at the end", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("passed on %d bytes, want the %d received unchanged", out.Len(), len(want))
	}

	first := encodeRPC(t, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("n1"), Term: 4})
	forged := encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("n2"), Term: 9})
	out.Reset()
	err := check(bytes.NewReader(append(append([]byte(nil), first...), forged...)), &out, "n1")
	if !errors.Is(err, errClaim) {
		t.Fatalf("check: %v, want errClaim", err)
	}
	// The first request passed whole; of the forged one at most a part (its
	// entries stream before its ID), never all of it.
	if !bytes.HasPrefix(out.Bytes(), first) || out.Len() >= len(first)+len(forged) {
		t.Fatalf("passed on %d bytes: want the first request (%d) and less than the forged one (%d)", out.Len(), len(first), len(forged))
	}
	legacy := encodeRPC(t, rpcAppendEntries, &raft.AppendEntriesRequest{RPCHeader: hdr("n1"), Leader: []byte("10.0.0.9:1"), Term: 9})
	if err := check(bytes.NewReader(legacy), io.Discard, "n1"); !errors.Is(err, errClaim) {
		t.Fatalf("legacy leader field naming another address: %v, want errClaim", err)
	}
}

// FuzzGuard: whatever arrives, check never panics, and what it passes on is
// a prefix of what arrived.
func FuzzGuard(f *testing.F) {
	f.Add(encodeRPC(f, rpcRequestVote, &raft.RequestVoteRequest{RPCHeader: hdr("n1"), Term: 4}))
	f.Add(encodeRPC(f, rpcInstallSnapshot, &raft.InstallSnapshotRequest{RPCHeader: hdr("n1"), Size: 3}))
	f.Add([]byte{0x00, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		check(bytes.NewReader(in), &out, "n1")
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("passed on bytes that did not arrive")
		}
	})
}
