package cluster

import "fmt"

// The cluster identity (node/disaster.go): "" for a cluster that was never
// recovered; `continuum recover` gives the one surviving node a new one.

func (m *Manager) clusterID() string {
	if m.cfg.ClusterID == nil {
		return ""
	}
	return m.cfg.ClusterID()
}

// CheckIdentity is the leader's rule for a joining node's cluster
// identity: a node with Raft state (not fresh) must belong to this
// cluster's identity. After a recovery from a lost majority, a lost node
// that comes back with its old data has the superseded identity: its log
// may hold entries this cluster never committed, so it must be wiped and
// join as a new node. A fresh node has nothing stale and adopts the
// identity once admitted (Config.OnAdmitted).
func (m *Manager) CheckIdentity(id, clusterID string, fresh bool) error {
	if fresh {
		return nil
	}
	mine := m.clusterID()
	if clusterID == mine {
		return nil
	}
	m.log.Warn("refused a join from another cluster identity", "id", id, "its_cluster", clusterID, "cluster", mine)
	return fmt.Errorf("%w: node %s has data of cluster %q, this cluster is %q (recovered without it): wipe its data directory and start it again to join as a new node",
		ErrRefused, id, clusterID, mine)
}
