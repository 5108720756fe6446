package node

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

// The operator's cluster actions behind node/admin: leadership transfer
// and removal (node/cluster decides), backup. Restore (below) runs
// offline, before a node starts.

func (c *clusterView) Gossip(id string) (site string, alive bool, since time.Time, ok bool) {
	m, ok := c.pool.Lookup(id)
	if !ok {
		return "", false, time.Time{}, false
	}
	return m.Site, m.Alive, m.Since, true
}

func (c *clusterView) IsLeader() bool { return c.raft.IsLeader() }

func (c *clusterView) LeaderConn(ctx context.Context) (*grpc.ClientConn, error) {
	leader, err := c.propose.WaitLeader(ctx)
	if err != nil || leader == c.cfg.ID {
		return nil, err // nil: this node leads
	}
	return c.router.Conn(leader)
}

// TransferLeader and RemoveServer are node/cluster's policy; its errors
// are node/admin's (admin.ErrNotLeader is cluster.ErrNotLeader, …).
func (c *clusterView) TransferLeader(ctx context.Context, to string) (string, error) {
	return c.cluster.TransferLeader(ctx, to)
}

func (c *clusterView) RemoveServer(ctx context.Context, id string) error {
	return c.cluster.Remove(ctx, id)
}

// leader is the current leader's ID, waiting out an election; an error
// when this node became the leader meanwhile (the caller retries here).
func (c *clusterView) leader(ctx context.Context) (string, error) {
	leader, err := c.propose.WaitLeader(ctx)
	if err != nil {
		return "", err
	}
	if leader == c.cfg.ID {
		return "", fmt.Errorf("%w: leadership moved here; retry", consensus.ErrNotLeader)
	}
	return leader, nil
}

func (c *clusterView) LeaderTransferLeader(ctx context.Context, to, by string) (string, error) {
	leader, err := c.leader(ctx)
	if err != nil {
		return "", err
	}
	res, err := c.router.TransferLeader(ctx, leader, &peerpb.TransferLeaderRequest{To: to, Admin: by})
	if err != nil {
		return "", err
	}
	return res.Leader, nil
}

func (c *clusterView) LeaderRemoveServer(ctx context.Context, id, by string) error {
	leader, err := c.leader(ctx)
	if err != nil {
		return err
	}
	return c.router.RemoveServer(ctx, leader, &peerpb.RemoveServerRequest{Id: id, Admin: by})
}

func (c *clusterView) OpenBackup() (admin.Backup, error) {
	return c.db.Snapshot(), nil
}

var _ admin.Backup = (*storage.Snap)(nil)

// Restore seeds dataDir, which must hold no state, from a backup stream
// (storage's snapshot format, as `continuum backup` writes it): the state
// database is restored, and Raft is seeded with a snapshot at the backup's
// applied index and term whose configuration is the one voter {id at
// raftAddr}. A node started on dataDir with that ID and Raft address is the
// leader of a one-node cluster that others join (consensus.Seed). It
// returns the index and term the backup was taken at.
//
// Unless keepUIDValidity is set, every mailbox gets a new UIDVALIDITY: the
// cluster the backup came from may have handed out, after the backup's
// index, UIDs that the restored cluster will hand out again for other
// messages, and a mail client that cached them must be told to resync
// (RFC 9051 §2.3.1.1). keepUIDValidity is for restoring a cluster whose
// clients cannot have seen anything newer (and for comparing digests).
func Restore(r io.Reader, dataDir, id, raftAddr string, keepUIDValidity bool) (index, term uint64, err error) {
	if entries, _ := os.ReadDir(dataDir); len(entries) > 0 {
		return 0, 0, fmt.Errorf("node: restore: %s is not empty", dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return 0, 0, fmt.Errorf("node: restore: %w", err)
	}
	db, err := storage.Open(filepath.Join(dataDir, "state"), storage.Options{})
	if err != nil {
		return 0, 0, fmt.Errorf("node: restore: %w", err)
	}
	defer db.Close()
	if err := db.Restore(r); err != nil {
		return 0, 0, fmt.Errorf("node: restore: %w", err)
	}
	index, term, err = db.Applied()
	if err != nil {
		return 0, 0, fmt.Errorf("node: restore: %w", err)
	}
	if !keepUIDValidity {
		renew := &commandpb.Command{Op: &commandpb.Command_UidValidityRenew{UidValidityRenew: &commandpb.UidValidityRenew{}}}
		if err := raftfsm.ApplyOffline(db, renew); err != nil {
			return 0, 0, fmt.Errorf("node: restore: %w", err)
		}
	}
	if err := consensus.Seed(dataDir, id, raftAddr, index, term, db.WriteSnapshot, nil); err != nil {
		return 0, 0, fmt.Errorf("node: restore: %w", err)
	}
	return index, term, nil
}
