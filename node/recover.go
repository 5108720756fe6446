package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

// Recovery from a lost majority (`continuum recover`), offline, on a
// stopped surviving voter or archive replica. See disaster.go and
// docs/notes/disaster.md.

// ProgressFile records, every few seconds while a node runs, the highest
// commit index it has seen the leader report: after a disaster it tells
// how far the lost majority may have been ahead of this node.
const ProgressFile = "progress.json"

// Progress is the content of ProgressFile.
type Progress struct {
	At           time.Time `json:"at"`
	Leader       string    `json:"leader"`
	LeaderCommit uint64    `json:"leader_commit"`
	Applied      uint64    `json:"applied"`
}

// RecoverPlan is what a stopped node's data directory holds, and what
// recovering it would do.
type RecoverPlan struct {
	DataDir  string
	ID       string
	RaftAddr string
	Identity Identity
	Raft     consensus.OfflineState
	// Applied is what the node's state machine had applied: kept.
	AppliedIndex, AppliedTerm uint64
	AppliedTime               time.Time
	// Voters are the other voters of its configuration; Reachable those
	// whose Raft address accepted a connection (CheckPeers).
	Voters    []string
	Reachable []string
	// Progress is the node's last record of the leader's commit index,
	// nil when it has none.
	Progress *Progress
}

// PlanRecover reads a stopped node's data directory. id may be empty when
// the directory records its node (IdentityFile).
func PlanRecover(dataDir, id string, log *slog.Logger) (*RecoverPlan, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !hasRaftState(dataDir) {
		return nil, fmt.Errorf("node: recover: %s holds no raft state", dataDir)
	}
	if err := readQuarantine(dataDir); err != nil {
		return nil, fmt.Errorf("node: recover: %w", err)
	}
	ident, err := ReadIdentity(dataDir)
	if err != nil {
		return nil, err
	}
	switch {
	case id == "" && ident.NodeID == "":
		return nil, errors.New("node: recover: the data directory does not record its node ID: give --id")
	case id == "":
		id = ident.NodeID
	case ident.NodeID != "" && id != ident.NodeID:
		return nil, fmt.Errorf("node: recover: the data directory belongs to node %s, not %s", ident.NodeID, id)
	}
	p := &RecoverPlan{DataDir: dataDir, ID: id, Identity: ident}
	if p.Raft, err = consensus.ReadOffline(dataDir, id, log); err != nil {
		return nil, err
	}
	for _, s := range p.Raft.Servers {
		if string(s.ID) == id {
			p.RaftAddr = string(s.Address)
		} else if s.Suffrage == raft.Voter {
			p.Voters = append(p.Voters, string(s.ID))
		}
	}
	if p.RaftAddr == "" {
		return nil, fmt.Errorf("node: recover: node %s is not in its own raft configuration %v", id, p.Raft.Servers)
	}
	db, err := storage.Open(filepath.Join(dataDir, "state"), storage.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("node: recover: state database (is the node stopped?): %w", err)
	}
	defer db.Close()
	if p.AppliedIndex, p.AppliedTerm, err = db.Applied(); err != nil {
		return nil, fmt.Errorf("node: recover: %w", err)
	}
	snap := db.Snapshot()
	if t, err := snap.LogTime(); err == nil && t > 0 {
		p.AppliedTime = time.Unix(0, t)
	}
	snap.Close()
	if b, err := os.ReadFile(filepath.Join(dataDir, ProgressFile)); err == nil {
		var pr Progress
		if json.Unmarshal(b, &pr) == nil {
			p.Progress = &pr
		}
	}
	return p, nil
}

// ErrQuorumReachable refuses a recovery while the cluster may still have
// a quorum.
var ErrQuorumReachable = errors.New("node: recover: the cluster may still have a quorum")

// CheckPeers dials the Raft address of every other member and refuses
// when the voters that answer, with this node if it is a voter, form a
// majority of the configuration's voters: that cluster can still elect a
// leader (or this node should simply be restarted). A member that answers
// is a running process; one that does not may be down or cut off by the
// network, which the operator must judge (the recovery asks).
func (p *RecoverPlan) CheckPeers(ctx context.Context, timeout time.Duration) error {
	p.Reachable = consensus.Reachable(ctx, p.Raft.Servers, p.ID, timeout)
	voters, up := len(p.Voters), 0
	for _, id := range p.Reachable {
		if slices.Contains(p.Voters, id) {
			up++
		}
	}
	if p.SelfVoter() {
		voters++
		up++
	}
	if voters == 1 && up == 1 {
		return fmt.Errorf("%w: this node is the only voter of its configuration: it needs no recovery, start it normally", ErrQuorumReachable)
	}
	if voters > 0 && up >= voters/2+1 {
		return fmt.Errorf("%w: %d of %d voters answer (%v with this node): start the node normally instead", ErrQuorumReachable, up, voters, p.Reachable)
	}
	return nil
}

// SelfVoter reports whether the node is a voter of its configuration.
func (p *RecoverPlan) SelfVoter() bool {
	for _, s := range p.Raft.Servers {
		if string(s.ID) == p.ID {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}

// Ahead is how many committed entries the lost majority had, as far as
// this node can tell, beyond what the recovery keeps (what it applied and
// the entries its log holds beyond, which the recovery commits): from its
// last progress record of the leader's commit index, so a lower bound.
// ok is false when it cannot tell.
func (p *RecoverPlan) Ahead() (n uint64, ok bool) {
	if p.Progress == nil || p.Progress.LeaderCommit == 0 {
		return 0, false
	}
	kept := max(p.AppliedIndex, p.Raft.LastIndex)
	if p.Progress.LeaderCommit <= kept {
		return 0, true
	}
	return p.Progress.LeaderCommit - kept, true
}

// Recover rewrites the node's Raft configuration to itself alone, a
// voter, keeping everything it applied (and committing the entries its log
// holds beyond), and gives the cluster a new identity. An archive replica
// becomes a voter. It returns the new identity.
//
// Unless keepUIDValidity is set, every mailbox first gets a new
// UIDVALIDITY, as a restore does (Restore): the lost majority may have
// handed out UIDs beyond this node's state that the recovered cluster will
// hand out again for other messages, and a mail client that cached them
// must resynchronise (RFC 9051 §2.3.1.1). It is applied offline before the
// recovery's snapshot is taken, so every node that joins receives it.
func (p *RecoverPlan) Recover(log *slog.Logger, keepUIDValidity bool) (Identity, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	db, err := storage.Open(filepath.Join(p.DataDir, "state"), storage.Options{Logger: log})
	if err != nil {
		return Identity{}, fmt.Errorf("node: recover: %w", err)
	}
	defer db.Close()
	if !keepUIDValidity {
		renew := &commandpb.Command{Op: &commandpb.Command_UidValidityRenew{UidValidityRenew: &commandpb.UidValidityRenew{}}}
		if err := raftfsm.ApplyOffline(db, renew); err != nil {
			return Identity{}, fmt.Errorf("node: recover: renewing UIDVALIDITY: %w", err)
		}
	}
	var fatal error
	fsm, err := raftfsm.New(db, raftfsm.Options{Logger: log, OnFatal: func(err error) { fatal = err }})
	if err != nil {
		return Identity{}, fmt.Errorf("node: recover: %w", err)
	}
	applied := fsm.AppliedIndex()
	if err := consensus.Recover(p.DataDir, p.ID, p.RaftAddr, fsm, applied, log); err != nil {
		return Identity{}, err
	}
	if fatal != nil {
		return Identity{}, fmt.Errorf("node: recover: applying the log: %w", fatal)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return Identity{}, err
	}
	id := p.Identity
	prev := id.Cluster
	id.NodeID = p.ID
	id.Role = "voter"
	id.Cluster = hex.EncodeToString(b[:])
	id.Supersedes = append([]string{prev}, id.Supersedes...)
	if len(id.Supersedes) > maxSupersedes {
		id.Supersedes = id.Supersedes[:maxSupersedes]
	}
	id.Recovery = &RecoveryRecord{NodeID: p.ID, At: time.Now().UTC(), AppliedIndex: p.AppliedIndex, AppliedTerm: p.AppliedTerm,
		LogIndex: p.Raft.LastIndex, Previous: prev}
	id.Recorded = false
	if err := WriteIdentity(p.DataDir, id); err != nil {
		return Identity{}, err
	}
	return id, nil
}
