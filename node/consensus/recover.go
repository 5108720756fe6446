package consensus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/logbridge"
	"github.com/continuum-mail/continuum/storage/raftlog"
)

// OfflineState is what a stopped node's Raft directory holds: its latest
// configuration and how far its log reaches.
type OfflineState struct {
	Servers       []raft.Server
	FirstIndex    uint64
	LastIndex     uint64
	LastTerm      uint64
	SnapshotIndex uint64
	SnapshotTerm  uint64
	CurrentTerm   uint64
}

// ReadOffline reads the Raft state in dir without starting Raft. The node
// must be stopped (the log database is opened exclusively).
func ReadOffline(dir, id string, log *slog.Logger) (OfflineState, error) {
	var st OfflineState
	if log == nil {
		log = slog.Default()
	}
	logs, snaps, err := openOffline(dir, log)
	if err != nil {
		return st, err
	}
	defer logs.Close()
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return st, fmt.Errorf("consensus: %w", err)
	}
	if !has {
		return st, fmt.Errorf("consensus: %s holds no raft state", dir)
	}
	if st.FirstIndex, err = logs.FirstIndex(); err != nil {
		return st, fmt.Errorf("consensus: %w", err)
	}
	if st.LastIndex, err = logs.LastIndex(); err != nil {
		return st, fmt.Errorf("consensus: %w", err)
	}
	if st.LastIndex > 0 {
		var l raft.Log
		if err := logs.GetLog(st.LastIndex, &l); err != nil {
			return st, fmt.Errorf("consensus: last log entry: %w", err)
		}
		st.LastTerm = l.Term
	}
	if list, err := snaps.List(); err == nil && len(list) > 0 {
		st.SnapshotIndex, st.SnapshotTerm = list[0].Index, list[0].Term
		if st.SnapshotIndex > st.LastIndex {
			st.LastIndex, st.LastTerm = st.SnapshotIndex, st.SnapshotTerm
		}
	}
	st.CurrentTerm, _ = logs.GetUint64([]byte("CurrentTerm"))
	rc := offlineConfig(id, log)
	_, trans := raft.NewInmemTransport("")
	conf, err := raft.GetConfiguration(rc, nopFSM{}, logs, logs, snaps, trans)
	if err != nil {
		return st, fmt.Errorf("consensus: read configuration: %w", err)
	}
	st.Servers = conf.Servers
	return st, nil
}

// Reachable dials every other server's Raft address once and returns the
// IDs that accepted a connection: on a stopped node, the members that are
// still running.
func Reachable(ctx context.Context, servers []raft.Server, self string, timeout time.Duration) []string {
	var up []string
	for _, s := range servers {
		if string(s.ID) == self {
			continue
		}
		d := net.Dialer{Timeout: timeout}
		c, err := d.DialContext(ctx, "tcp", string(s.Address))
		if err == nil {
			c.Close()
			up = append(up, string(s.ID))
		}
	}
	return up
}

// Recover rewrites a stopped node's Raft configuration to itself alone, a
// voter at addr (hashicorp/raft RecoverCluster: Consul's peers.json, etcd's
// --force-new-cluster). fsm is the node's persistent state machine, which
// has applied up to applied: it already holds the latest snapshot's state,
// so the snapshot is not restored into it again; the log entries after
// applied are applied (they are committed by the recovery), and a snapshot
// of the result carries the new configuration. DESIGN.md, "Recovery".
func Recover(dir, id, addr string, fsm raft.FSM, applied uint64, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	logs, snaps, err := openOffline(dir, log)
	if err != nil {
		return err
	}
	defer logs.Close()
	var newest uint64
	if list, err := snaps.List(); err == nil && len(list) > 0 {
		newest = list[0].Index
	}
	if applied < newest {
		return fmt.Errorf("consensus: recover: the state has applied %d, behind its own snapshot at %d; rebuild is not possible offline", applied, newest)
	}
	rc := offlineConfig(id, log)
	_, trans := raft.NewInmemTransport(raft.ServerAddress(addr))
	conf := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Voter}}}
	if err := raft.RecoverCluster(rc, keepFSM{fsm}, logs, logs, snaps, trans, conf); err != nil {
		return fmt.Errorf("consensus: recover: %w", err)
	}
	return nil
}

func openOffline(dir string, log *slog.Logger) (*raftlog.Store, raft.SnapshotStore, error) {
	logs, err := raftlog.Open(filepath.Join(dir, "raft-log"), raftlog.Options{Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("consensus: open log (is the node stopped?): %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, "snapshots"), 2, logbridge.HCLog(log, "raft"))
	if err != nil {
		logs.Close()
		return nil, nil, fmt.Errorf("consensus: snapshot store: %w", err)
	}
	return logs, snaps, nil
}

func offlineConfig(id string, log *slog.Logger) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.NoSnapshotRestoreOnStart = true
	rc.Logger = logbridge.HCLog(log, "raft")
	return rc
}

// keepFSM is the node's state machine for RecoverCluster: its Restore
// keeps the state (which is at or past the snapshot, Recover checked) and
// its Apply skips what was applied already (raftfsm does).
type keepFSM struct{ raft.FSM }

func (keepFSM) Restore(rc io.ReadCloser) error { return rc.Close() }

// Snapshot releases the snapshot once persisted: RecoverCluster never
// calls Release, and an open view of the state would keep its database
// from closing.
func (k keepFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := k.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	return releasing{s}, nil
}

type releasing struct{ raft.FSMSnapshot }

func (r releasing) Persist(sink raft.SnapshotSink) error {
	defer r.Release()
	return r.FSMSnapshot.Persist(sink)
}

// nopFSM serves ReadOffline, which restores nothing.
type nopFSM struct{}

func (nopFSM) Apply(*raft.Log) interface{}         { return nil }
func (nopFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errors.New("consensus: offline") }
func (nopFSM) Restore(rc io.ReadCloser) error      { return rc.Close() }
