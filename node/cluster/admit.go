package cluster

import (
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/consensus"
)

// Admit is the leader's answer to a node that asks to join (the Peer.Join
// RPC; node/peer has already checked that the caller speaks for id). The
// node is added as a non-voter; the reconcile loop promotes it once it has
// caught up.
//
// A fresh node (no Raft state; its transport held closed until this
// returns) is answered by the leader only, from the latest configuration.
// If its ID is a voter there, that voter's log is gone: counting it in a
// quorum again could lose acknowledged writes, so the voter is removed and
// the node re-added as a non-voter (DESIGN.md, "A wiped voter").
//
// A node that is not fresh and whose ID or address another member holds
// is refused with ErrConflict: the operator removes the old member first.
func (m *Manager) Admit(id, raftAddr string, fresh bool) error {
	r := m.cfg.Raft
	if fresh && !r.IsLeader() {
		return consensus.ErrNotLeader
	}
	servers, err := r.Servers()
	if err != nil {
		return err
	}
	for _, sv := range servers {
		if string(sv.ID) == id && fresh && sv.Suffrage == raft.Voter {
			if id == r.ID() {
				return fmt.Errorf("%w: node %s is the leader", ErrRefused, id)
			}
			m.log.Warn("a voter came back with no raft state: removing it and re-adding it as a non-voter",
				"component", "peer", "id", id, "raft", raftAddr, "was", sv.Address)
			if err := r.RemoveServer(id); err != nil {
				return err
			}
			break
		}
		if string(sv.ID) == id && string(sv.Address) == raftAddr {
			return nil // already a member (a non-voter, or it knows)
		}
		if string(sv.ID) == id {
			if fresh {
				// A fresh non-voter at a new address: nothing to lose.
				if err := r.RemoveServer(id); err != nil {
					return err
				}
				break
			}
			return fmt.Errorf("%w: node %s is already a member at %s; remove it first", ErrConflict, id, sv.Address)
		}
		if string(sv.Address) == raftAddr {
			return fmt.Errorf("%w: address %s belongs to node %s", ErrConflict, raftAddr, sv.ID)
		}
	}
	if err := r.AddServer(id, raftAddr, false); err != nil {
		return err
	}
	m.log.Info("added node as non-voter", "component", "peer", "id", id, "raft", raftAddr)
	return nil
}
