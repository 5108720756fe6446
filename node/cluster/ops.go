package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/consensus"
)

// The operator's actions (node/admin) and the shutdown handover.

// TransferLeader asks raft to hand leadership to the voter to (raft picks
// the most up-to-date voter when to is empty) and waits until this node
// knows of another leader, which it returns. Leader only.
func (m *Manager) TransferLeader(ctx context.Context, to string) (string, error) {
	r := m.cfg.Raft
	if !r.IsLeader() {
		return "", ErrNotLeader
	}
	if to == m.cfg.ID {
		return to, nil
	}
	var addr string
	if to != "" {
		servers, err := r.Servers()
		if err != nil {
			return "", err
		}
		for _, s := range servers {
			if string(s.ID) == to {
				if s.Suffrage != raft.Voter {
					return "", fmt.Errorf("%w: %s is not a voter", ErrRefused, to)
				}
				addr = string(s.Address)
			}
		}
		if addr == "" {
			return "", fmt.Errorf("%w: %s", ErrUnknownNode, to)
		}
	}
	if err := r.TransferLeadership(to, addr); err != nil {
		return "", fmt.Errorf("%w: leadership transfer: %v", ErrRefused, err)
	}
	for {
		if id, _ := r.Leader(); id != "" && id != m.cfg.ID {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Remove removes another server from the configuration. Leader only; the
// leader cannot remove itself (transfer leadership first).
func (m *Manager) Remove(ctx context.Context, id string) error {
	r := m.cfg.Raft
	if !r.IsLeader() {
		return ErrNotLeader
	}
	if id == m.cfg.ID {
		return fmt.Errorf("%w: the leader cannot remove itself; transfer leadership first", ErrRefused)
	}
	servers, err := r.Servers()
	if err != nil {
		return err
	}
	found := false
	for _, s := range servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrUnknownNode, id)
	}
	if err := r.RemoveServer(id); err != nil {
		if errors.Is(err, consensus.ErrNotLeader) {
			return ErrNotLeader
		}
		return fmt.Errorf("%w: remove %s: %v", ErrRefused, id, err)
	}
	m.log.Info("removed from the raft configuration", "id", id)
	return nil
}

// HandOver, on the leader, hands leadership to the most up-to-date voter
// before this node stops, so the cluster does not wait an election timeout
// (raft refuses new proposals during the transfer: they are retried at the
// new leader). Elsewhere it does nothing.
func (m *Manager) HandOver() {
	if !m.cfg.Raft.IsLeader() {
		return
	}
	if err := m.cfg.Raft.TransferLeadership("", ""); err != nil {
		m.log.Warn("leadership transfer on shutdown failed", "err", err)
		return
	}
	m.log.Info("leadership handed over on shutdown")
}
