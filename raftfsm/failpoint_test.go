//go:build failpoints

package raftfsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/storage/failpoint"
)

// The storage failpoints, as the state machine meets them (make
// test-failpoints runs these): a commit that fails stops the FSM without
// moving the applied index; a snapshot that cannot be written is cancelled.

func TestFailpointStorageCommitStopsTheFSM(t *testing.T) {
	db := openDB(t, nil)
	var fatal error
	f, err := New(db, Options{Logger: quiet, OnFatal: func(err error) { fatal = err }})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := Encode(domainAdd("x.test"))
	f.ApplyBatch([]*raft.Log{{Index: 1, Term: 1, Type: raft.LogCommand, Data: data}})
	restore, err := failpoint.Set(failpoint.StorageCommit, "every(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	data, _ = Encode(domainAdd("y.test"))
	resp := f.ApplyBatch([]*raft.Log{{Index: 2, Term: 1, Type: raft.LogCommand, Data: data}})
	if fatal == nil || !errors.Is(fatal, failpoint.ErrInjected) {
		t.Fatalf("OnFatal got %v, want the injected commit failure", fatal)
	}
	if r, ok := resp[0].(*Response); !ok || r.Err == nil {
		t.Fatalf("response %+v, want an error", resp[0])
	}
	if got, _, _ := db.Applied(); got != 1 || f.AppliedIndex() != 1 {
		t.Fatalf("applied index %d (FSM %d) after a failed commit, want 1", got, f.AppliedIndex())
	}
}

func TestFailpointStorageSnapshotCancels(t *testing.T) {
	f, err := New(openDB(t, nil), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	restore, err := failpoint.Set(failpoint.StorageSnapshot, "every(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer restore()
	snap, _ := f.Snapshot()
	defer snap.Release()
	sink := &memSink{Buffer: &bytes.Buffer{}}
	if err := snap.Persist(sink); !errors.Is(err, failpoint.ErrInjected) || !sink.cancelled || sink.closed {
		t.Fatalf("Persist = %v (cancelled %v, closed %v), want the injected failure and a cancelled sink", err, sink.cancelled, sink.closed)
	}
}
