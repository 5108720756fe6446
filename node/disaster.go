package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"log/slog"

	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/node/propose"
	"github.com/continuum-mail/continuum/proto/commandpb"
)

// Disaster recovery (issue 20, docs/notes/disaster.md): archive replicas
// and recovery from a lost majority.
//
// The node's durable identity is a small file in its data directory,
// IdentityFile: the node's ID and role, and the cluster identity its data
// belongs to. An archive replica records its role there at first start,
// so a restart keeps it: the node refuses to start as anything else until
// an operator promotes it (`continuum node promote`). The leader learns
// the role from gossip (membership.Meta.Role), which the node sets from
// the same durable role, and promotes only members whose role is "voter"
// (promoteLoop); autopilot removes only voters. Recording the role in the
// replicated state was the alternative; the gossip role is what the
// promotion policy reads already, and the file makes it durable on the
// one node that can change it.
//
// The cluster identity is empty for a cluster that was never recovered.
// `continuum recover` gives the recovered node a new random identity that
// supersedes the old one; nodes that join it adopt it from the leader's
// gossip. A node whose data belongs to a superseded identity refuses to
// run once it sees a live member that superseded it (disasterLoop), and
// the leader refuses its join (peer.Server.Join): it must be wiped.

// IdentityFile is the node's durable identity in its data directory.
const IdentityFile = "identity.json"

// Identity is the content of IdentityFile.
type Identity struct {
	NodeID string `json:"node_id"`
	Role   string `json:"role"`
	// Cluster is the cluster identity; "" for the original cluster.
	Cluster string `json:"cluster"`
	// Supersedes lists the identities recoveries replaced, newest first.
	Supersedes []string `json:"supersedes,omitempty"`
	// Recovery describes the recovery that made Cluster, on the node that
	// was recovered; Recorded turns true once it is in the replicated
	// audit log and journal.
	Recovery *RecoveryRecord `json:"recovery,omitempty"`
	Recorded bool            `json:"recorded,omitempty"`
}

// RecoveryRecord is what `continuum recover` did.
type RecoveryRecord struct {
	NodeID       string    `json:"node_id"`
	At           time.Time `json:"at"`
	AppliedIndex uint64    `json:"applied_index"`
	AppliedTerm  uint64    `json:"applied_term"`
	LogIndex     uint64    `json:"log_index"`
	Previous     string    `json:"previous"`
}

// maxSupersedes bounds the lineage kept (gossip metadata is 512 bytes).
const maxSupersedes = 3

// ReadIdentity reads dir's identity file; a directory without one has
// the zero Identity.
func ReadIdentity(dir string) (Identity, error) {
	var id Identity
	b, err := os.ReadFile(filepath.Join(dir, IdentityFile))
	if errors.Is(err, os.ErrNotExist) {
		return id, nil
	}
	if err != nil {
		return id, fmt.Errorf("node: identity: %w", err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("node: identity %s: %w", filepath.Join(dir, IdentityFile), err)
	}
	return id, nil
}

// WriteIdentity replaces dir's identity file atomically and durably.
func WriteIdentity(dir string, id Identity) error {
	b, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, IdentityFile)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("node: identity: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		if d, derr := os.Open(dir); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("node: identity: %w", err)
	}
	return nil
}

// hasRaftState reports whether dir holds a Raft log (the node ran before).
func hasRaftState(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "raft-log"))
	return err == nil
}

// prepareIdentity enforces the durable role and records this start's ID
// and role. It runs before the stores open. A recovered archive replica
// is the one voter of its cluster: started again with its usual command
// line (--role archive), it runs as a voter.
func prepareIdentity(cfg *config.Config, log *slog.Logger) (Identity, error) {
	id, err := ReadIdentity(cfg.DataDir)
	if err != nil {
		return id, err
	}
	if r := id.Recovery; r != nil && r.NodeID == cfg.ID && id.Role == "voter" && cfg.Role == "archive" {
		log.Warn("this archive replica was recovered from a lost majority and is now a voter; start it with --role voter from now on")
		cfg.Role = "voter"
	}
	state := hasRaftState(cfg.DataDir)
	switch {
	case id.NodeID != "" && id.NodeID != cfg.ID:
		return id, fmt.Errorf("node: the data directory %s belongs to node %s, not %s", cfg.DataDir, id.NodeID, cfg.ID)
	case id.Role == "archive" && cfg.Role != "archive":
		return id, fmt.Errorf("node: the data directory %s belongs to an archive replica: start it with --role archive; "+
			"an archive replica becomes a %s only when an operator promotes it (`continuum node promote --data %s`, then start it with --role %s)",
			cfg.DataDir, cfg.Role, cfg.DataDir, cfg.Role)
	case cfg.Role == "archive" && id.Role != "archive" && state:
		return id, fmt.Errorf("node: the data directory %s holds the Raft state of a %s; an archive replica starts from an empty data directory (a voter must not leave the quorum this way: remove it, wipe it, and join it as an archive)",
			cfg.DataDir, cmpOr(id.Role, "voter or nonvoter"))
	}
	if id.NodeID != cfg.ID || id.Role != cfg.Role {
		id.NodeID, id.Role = cfg.ID, cfg.Role
		if err := WriteIdentity(cfg.DataDir, id); err != nil {
			return id, err
		}
	}
	return id, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// disasterState is the node's live view of its identity.
type disasterState struct {
	mu sync.Mutex
	id Identity
	// stateAtStart: the node had Raft state when it started, so its data
	// can be stale; a fresh node adopts the identity of the cluster it
	// joins instead.
	stateAtStart bool
}

func (d *disasterState) get() Identity {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.id
}

// ClusterID returns the cluster identity this node's data belongs to.
func (n *Node) ClusterID() string { return n.dis.get().Cluster }

// gossipMeta adds the identity to the node's gossip metadata.
func (n *Node) gossipMeta(m membership.Meta) membership.Meta {
	id := n.dis.get()
	m.Cluster, m.Supersedes = id.Cluster, id.Supersedes
	return m
}

// adoptIdentity is called once a fresh node has been admitted through the
// member via: it takes the cluster identity the leader gossips.
func (n *Node) adoptIdentity(via membership.Member) {
	if n.dis.stateAtStart {
		return
	}
	n.dis.mu.Lock()
	id := n.dis.id
	changed := id.Cluster != via.Cluster || !slices.Equal(id.Supersedes, via.Supersedes)
	id.Cluster, id.Supersedes = via.Cluster, slices.Clone(via.Supersedes)
	n.dis.id = id
	n.dis.mu.Unlock()
	if !changed {
		return
	}
	if err := WriteIdentity(n.cfg.DataDir, id); err != nil {
		n.log.Error("could not record the cluster identity", "err", err)
	}
	if err := n.pool.SetMeta(n.memberMeta()); err != nil {
		n.log.Warn("gossip metadata update failed", "err", err)
	}
	n.log.Info("adopted the cluster identity", "cluster", id.Cluster, "via", via.ID)
}

// memberMeta is what the node gossips about itself.
func (n *Node) memberMeta() membership.Meta {
	cfg := n.cfg
	return n.gossipMeta(membership.Meta{
		ID: cfg.ID, Site: cfg.Site, Role: cfg.Role, Raft: cfg.RaftAddr, GRPC: cfg.GRPCAddr,
		SMTP: cfg.SMTPAddr, LMTP: cfg.LMTPAddr, IMAP: cfg.IMAPAddr, HTTP: cfg.HTTPAddr,
		Expect: cfg.BootstrapExpect,
	})
}

// ErrStaleCluster means this node's data belongs to a cluster identity
// that a recovery has superseded.
var ErrStaleCluster = errors.New("node: this node's data belongs to a cluster that was recovered without it")

// disasterLoop runs for the node's life: it refuses to go on when a live
// member shows that this node's cluster was recovered without it, and,
// on a recovered node that leads, records the recovery in the audit log
// and journal.
func (n *Node) disasterLoop() {
	defer n.wg.Done()
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	var lastProgress time.Time
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		id := n.dis.get()
		if n.dis.stateAtStart {
			for _, m := range n.pool.Members() {
				if m.ID == n.cfg.ID || !m.Alive || !slices.Contains(m.Supersedes, id.Cluster) {
					continue
				}
				err := fmt.Errorf("%w: %s gossips cluster %q, which superseded this node's cluster %q; this node must not serve its stale data: "+
					"wipe its data directory (`continuum node rebuild --data %s --discard`, or remove it) and start it again to join as a new node",
					ErrStaleCluster, m.ID, m.Cluster, id.Cluster, n.cfg.DataDir)
				n.log.Error("refusing to run", "err", err)
				select {
				case n.fatal <- err:
				default:
				}
				return
			}
		}
		if time.Since(lastProgress) >= progressEvery {
			lastProgress = time.Now()
			n.writeProgress()
		}
		if r := id.Recovery; r != nil && !id.Recorded && r.NodeID == n.cfg.ID && n.raft.IsLeader() {
			if err := n.recordRecovery(id); err != nil {
				n.log.Warn("recording the recovery in the audit log failed; retrying", "err", err)
			}
		}
	}
}

// progressEvery is how often a node records the leader's commit index.
const progressEvery = 2 * time.Second

// writeProgress records the leader's commit index as this node last saw
// it (ProgressFile), for `continuum recover` to tell how far the lost
// majority may have been ahead.
func (n *Node) writeProgress() {
	leader, _ := n.raft.Leader()
	if leader == "" || n.raft.Fresh() {
		return
	}
	// The time is taken before the leader is asked: the commit index it
	// reports covers at least everything committed by then.
	at := time.Now().UTC()
	commit := n.raft.CommitIndex()
	if leader != n.cfg.ID {
		ctx, cancel := context.WithTimeout(n.ctx, time.Second)
		in, err := n.router.Info(ctx, leader)
		cancel()
		if err != nil {
			return
		}
		commit = in.CommitIndex
	}
	b, err := json.Marshal(Progress{At: at, Leader: leader, LeaderCommit: commit, Applied: n.fsm.AppliedIndex()})
	if err != nil {
		return
	}
	path := filepath.Join(n.cfg.DataDir, ProgressFile)
	if err := os.WriteFile(path+".tmp", b, 0o640); err == nil {
		_ = os.Rename(path+".tmp", path)
	}
}

// RecoverAction is the audit log's action for a recovery.
const RecoverAction = "cluster recover"

// recordRecovery proposes the audit entry and journal link of the
// recovery, unless the audit log has it already (a crash after the commit
// and before the file was updated).
func (n *Node) recordRecovery(id Identity) error {
	r := id.Recovery
	entries, err := n.mail.AuditEntries(0)
	if err != nil {
		return err
	}
	tag := "cluster=" + id.Cluster + " "
	done := false
	for _, e := range entries {
		if e.GetAction() == RecoverAction && strings.Contains(e.GetDetail()+" ", tag) {
			done = true
		}
	}
	if !done {
		detail := fmt.Sprintf("node=%s cluster=%s previous=%q applied=%d term=%d log=%d at=%s",
			r.NodeID, id.Cluster, r.Previous, r.AppliedIndex, r.AppliedTerm, r.LogIndex, r.At.UTC().Format(time.RFC3339))
		cmd := &commandpb.Command{Op: &commandpb.Command_AdminCommand{AdminCommand: &commandpb.AdminCommand{
			Actor: "continuum recover", Action: RecoverAction, Detail: detail,
			Command: &commandpb.Command{Op: &commandpb.Command_ClusterRecovered{ClusterRecovered: &commandpb.ClusterRecovered{
				NodeId: r.NodeID, ClusterId: id.Cluster, PreviousClusterId: r.Previous,
				AppliedIndex: r.AppliedIndex, AppliedTerm: r.AppliedTerm, LogIndex: r.LogIndex, RecoveredUnixNano: r.At.UnixNano(),
			}}},
		}}}
		ctx, cancel := context.WithTimeout(n.ctx, 10*time.Second)
		res, idx, err := n.propose.Propose(ctx, cmd, propose.Committed)
		cancel()
		if err != nil {
			return err
		}
		if res.GetCode() != commandpb.Code_CODE_OK {
			return fmt.Errorf("node: recovery record refused: %s", res.GetMessage())
		}
		n.log.Warn("recorded the recovery in the audit log and journal", "index", idx, "cluster", id.Cluster, "previous", r.Previous)
	}
	n.dis.mu.Lock()
	n.dis.id.Recorded = true
	id = n.dis.id
	n.dis.mu.Unlock()
	return WriteIdentity(n.cfg.DataDir, id)
}
