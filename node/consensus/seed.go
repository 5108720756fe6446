package consensus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/logbridge"
	"github.com/continuum-mail/continuum/storage/raftlog"
)

// ErrHasState is returned by Seed for a directory that already holds Raft
// state.
var ErrHasState = errors.New("consensus: the data directory already holds raft state")

// Seed prepares dir so that Open starts a one-voter cluster {id at raftAddr}
// whose log continues after index, term: the state a restored backup was
// taken at (DESIGN.md, "Restore"). It writes a Raft snapshot at that index
// and term holding the state stream (write writes it) and that
// configuration, and sets the current term, so the first entry the new
// cluster commits is index+1 in a term above term. The state machine, whose
// database already holds the same state with meta/applied = index, neither
// skips nor replays anything; nodes that join get the snapshot by
// InstallSnapshot.
func Seed(dir, id, raftAddr string, index, term uint64, write func(io.Writer) error, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	if index == 0 {
		return errors.New("consensus: seed: the state has never applied an entry")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("consensus: seed: %w", err)
	}
	logs, err := raftlog.Open(filepath.Join(dir, "raft-log"), raftlog.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("consensus: seed: %w", err)
	}
	defer logs.Close()
	hl := logbridge.HCLog(log, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snapshots"), 2, hl)
	if err != nil {
		return fmt.Errorf("consensus: seed: %w", err)
	}
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return fmt.Errorf("consensus: seed: %w", err)
	}
	if has {
		return ErrHasState
	}
	conf := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(id), Address: raft.ServerAddress(raftAddr), Suffrage: raft.Voter}}}
	// The transport only encodes peers for version-0 snapshots.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(raftAddr))
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, conf, index, trans)
	if err != nil {
		return fmt.Errorf("consensus: seed: %w", err)
	}
	if err := write(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("consensus: seed: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("consensus: seed: %w", err)
	}
	// raft's stable-store key for the current term: terms only go up, so
	// the new cluster's first election is term+1.
	if err := logs.SetUint64([]byte("CurrentTerm"), term); err != nil {
		return fmt.Errorf("consensus: seed: %w", err)
	}
	return nil
}
