package raftfsm

import (
	"bytes"
	"errors"
	"testing"
)

// TestStampIsEncode: stamping the unstamped encoding gives exactly the
// encoding of the stamped command, for every command the determinism
// generator makes (every operation), so a follower's bytes stamped by the
// leader are what the leader would have encoded itself.
func TestStampIsEncode(t *testing.T) {
	logs := entries(11, 1500)
	checked := 0
	for _, l := range logs {
		c, err := Decode(l.Data)
		if err != nil || c.Op == nil {
			continue
		}
		stamp := c.TimeUnixNano
		c.TimeUnixNano = 0
		unstamped, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckUnstamped(unstamped); err != nil {
			t.Fatalf("index %d: %v", l.Index, err)
		}
		c.TimeUnixNano = stamp
		want, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := Stamp(unstamped, stamp); !bytes.Equal(got, want) {
			t.Fatalf("index %d (%T): Stamp(Encode(unstamped)) differs from Encode(stamped)", l.Index, c.Op)
		}
		checked++
	}
	if checked < 1000 {
		t.Fatalf("only %d commands checked", checked)
	}
}

func TestCheckUnstamped(t *testing.T) {
	ok, _ := Encode(domainAdd("x.test"))
	stamped := Stamp(ok, 42)
	noOp := []byte{0x10, 0x01} // skippable = true, nothing else
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"unstamped command", ok, true},
		{"stamped by the proposer", stamped, false},
		{"no operation", noOp, false},
		{"empty", nil, false},
		{"not protobuf", []byte{0xff, 0xee}, false},
		{"truncated", ok[:len(ok)-1], false},
		{"an operation from a newer version", []byte{0xfa, 0x7f, 0x00}, true}, // field 2047, bytes, empty
	} {
		err := CheckUnstamped(tc.data)
		if (err == nil) != tc.ok {
			t.Errorf("%s: CheckUnstamped = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v is not ErrMalformed", tc.name, err)
		}
	}
}
