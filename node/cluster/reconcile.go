package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// reconcileLoop runs on every node but acts only on the leader, once a
// second: it promotes caught-up non-voters whose role is "voter", then
// lets autopilot remove one dead voter if that is safe.
func (m *Manager) reconcileLoop() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		if !m.cfg.Raft.IsLeader() {
			continue
		}
		servers, err := m.cfg.Raft.Servers()
		if err != nil {
			continue
		}
		m.promote(servers)
		m.autopilot(servers)
	}
}

// promoteLag is how many entries behind the leader's commit index a
// non-voter may be and still be promoted: it catches the rest up as a voter
// within a heartbeat or two, and never votes with an empty log.
const promoteLag = 64

// promote makes a voter of every non-voter whose gossip role is "voter"
// and that has applied to within promoteLag of the leader's commit index.
func (m *Manager) promote(servers []raft.Server) {
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			continue
		}
		mb, ok := m.cfg.Gossip.Lookup(string(s.ID))
		if !ok || !mb.Alive || mb.Role != "voter" {
			continue
		}
		ctx, cancel := context.WithTimeout(m.ctx, 2*time.Second)
		info, err := m.cfg.Peers.Info(ctx, string(s.ID))
		cancel()
		if err != nil || info.AppliedIndex+promoteLag < m.cfg.Raft.CommitIndex() {
			continue
		}
		if err := m.cfg.Raft.AddServer(string(s.ID), string(s.Address), true); err != nil {
			m.log.Warn("promotion failed", "id", s.ID, "err", err)
			continue
		}
		m.log.Info("promoted to voter", "id", s.ID)
	}
}

// autopilot removes one voter that gossip has seen dead for longer than
// AutopilotDeadAfter (0: never), and only when that is safe: at least
// MinAutopilotVoters voters remain, and the healthy voters still form a
// quorum of the smaller configuration. A gossip "dead" alone is never
// enough: the voter must also be unreachable over gRPC, so a forged or
// mistaken gossip message cannot shrink the cluster.
func (m *Manager) autopilot(servers []raft.Server) {
	after := m.cfg.AutopilotDeadAfter
	if after <= 0 {
		return
	}
	var voters, healthy int
	var victim *raft.Server
	for i, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) == m.cfg.ID {
			healthy++
			continue
		}
		mb, ok := m.cfg.Gossip.Lookup(string(s.ID))
		if ok && !mb.Alive && time.Since(mb.Since) > after {
			ctx, cancel := context.WithTimeout(m.ctx, time.Second)
			_, err := m.cfg.Peers.Info(ctx, string(s.ID))
			cancel()
			if err != nil {
				if victim == nil {
					victim = &servers[i]
				}
				continue
			}
		}
		if ok && mb.Alive {
			healthy++
		}
	}
	if victim == nil || voters-1 < MinAutopilotVoters || healthy < (voters-1)/2+1 {
		return
	}
	if err := m.cfg.Raft.RemoveServer(string(victim.ID)); err != nil {
		m.log.Warn("autopilot: removing dead voter failed", "id", victim.ID, "err", err)
		return
	}
	m.log.Warn("autopilot: removed dead voter", "id", victim.ID, "dead_after", after, "voters_left", voters-1)
}
