package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// joinLoop joins the gossip pool, then asks the cluster to add this node
// to the Raft configuration (or, with --bootstrap-expect, forms the new
// cluster), until both have happened or the manager stops.
func (m *Manager) joinLoop() {
	expect := m.cfg.BootstrapExpect > 0 && m.cfg.Raft.Fresh()
	if len(m.cfg.Join) == 0 && !expect {
		return
	}
	backoff := 200 * time.Millisecond
	wait := func() bool {
		ok := m.sleep(backoff)
		backoff = min(2*backoff, 5*time.Second)
		return ok
	}
	var warned time.Time
	for len(m.cfg.Join) > 0 && !m.othersAlive() {
		if _, err := m.cfg.Gossip.Join(m.cfg.Join); err == nil {
			break
		} else if time.Since(warned) > time.Minute {
			// Retried every 5 s at most, reported once a minute: a
			// restarted node whose remembered peers are all down waits
			// for them (or for one of them to join it).
			m.log.Warn("gossip join failed; retrying", "component", "membership", "addrs", m.cfg.Join, "err", err)
			warned = time.Now()
		}
		if !wait() {
			return
		}
	}
	backoff = 200 * time.Millisecond
	lastWhy := ""
	for {
		if !m.cfg.Raft.Fresh() && m.inConfiguration() {
			return
		}
		if expect {
			switch done, why := m.bootstrapExpect(); {
			case done:
				return
			case why != "":
				// Waiting for the other first nodes: poll fast, a new
				// cluster should form as soon as they see each other.
				if why != lastWhy {
					m.log.Info("bootstrap-expect: waiting", "expect", m.cfg.BootstrapExpect, "why", why)
					lastWhy = why
				}
				backoff = 200 * time.Millisecond
				if !wait() {
					return
				}
				continue
			}
			// The cluster exists already: join it as any later node does.
		}
		if m.askToJoin() {
			return
		}
		if !wait() {
			return
		}
	}
}

// othersAlive reports whether gossip shows another member alive: this
// node is in the pool already (another member joined it).
func (m *Manager) othersAlive() bool {
	for _, mb := range m.cfg.Gossip.Members() {
		if mb.Alive && mb.ID != m.cfg.ID {
			return true
		}
	}
	return false
}

// askToJoin asks each live member in turn to add this node; the first
// that accepts admits it (a fresh node's transport opens). A member that
// is not the leader forwards nothing: a fresh node's join is answered by
// the leader only, so it keeps asking until it reaches the leader.
func (m *Manager) askToJoin() bool {
	for _, mb := range m.cfg.Gossip.Members() {
		if mb.ID == m.cfg.ID || !mb.Alive || mb.GRPC == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(m.ctx, 5*time.Second)
		fresh := m.cfg.Raft.Fresh()
		err := m.cfg.Peers.Join(ctx, mb.GRPC, &peerpb.JoinRequest{Id: m.cfg.ID, RaftAddr: m.cfg.RaftAddr, Voter: m.cfg.Voter, Fresh: fresh, ClusterId: m.clusterID()})
		cancel()
		if err == nil {
			m.log.Info("joined the cluster", "via", mb.ID, "fresh", fresh)
			m.cfg.Raft.Admit()
			if m.cfg.OnAdmitted != nil {
				m.cfg.OnAdmitted(mb)
			}
			return true
		}
		if errors.Is(err, ErrConflict) {
			m.log.Error("join refused", "via", mb.ID, "err", err)
		} else {
			m.log.Debug("join refused", "via", mb.ID, "err", err)
		}
	}
	return false
}

// bootstrapExpect decides, for a node with an empty data directory and
// --bootstrap-expect N, whether to form the new cluster now. It does when
// gossip shows exactly N live nodes with the same N (itself included), every
// one of them answers, and none has Raft state beyond its own bootstrap
// entry (index 1): then all N bootstrap the identical configuration, N
// voters sorted by ID, and the cluster never passes through a two-voter
// window. It reports done once it has bootstrapped.
//
// It returns done false and a reason to wait while the N have not found
// each other yet, and done false with no reason when a cluster exists
// already (some member is past index 1: it has elected a leader and
// written). The node then joins as a fresh node: the leader adds it as a
// non-voter and promotes it once it has caught up. That is also the safe
// path for a wiped voter restarted with the same flags: it must not vote
// again with an empty log (DESIGN.md, "A wiped voter").
func (m *Manager) bootstrapExpect() (done bool, why string) {
	want := m.cfg.BootstrapExpect
	var candidates []consensus.Peer
	var others []membership.Member
	for _, mb := range m.cfg.Gossip.Members() {
		if !mb.Alive {
			continue
		}
		if mb.ID != m.cfg.ID {
			others = append(others, mb)
		}
		if mb.Expect == want && mb.Role == "voter" && mb.Raft != "" {
			candidates = append(candidates, consensus.Peer{ID: mb.ID, Addr: mb.Raft})
		}
	}
	if !slices.ContainsFunc(candidates, func(p consensus.Peer) bool { return p.ID == m.cfg.ID }) {
		candidates = append(candidates, consensus.Peer{ID: m.cfg.ID, Addr: m.cfg.RaftAddr})
	}
	// Ask every other live member for its Raft progress, in parallel.
	infos := make([]*peerpb.InfoResponse, len(others))
	var wg sync.WaitGroup
	for i, mb := range others {
		if mb.GRPC == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(m.ctx, time.Second)
			defer cancel()
			if in, err := m.cfg.Peers.InfoAt(ctx, mb.GRPC); err == nil {
				infos[i] = in
			}
		}()
	}
	wg.Wait()
	for _, in := range infos {
		if in != nil && in.LastIndex > 1 {
			return false, ""
		}
	}
	if len(candidates) < want {
		return false, fmt.Sprintf("%d of %d nodes with bootstrap-expect %d seen", len(candidates), want, want)
	}
	if len(candidates) > want {
		return false, fmt.Sprintf("%d nodes with bootstrap-expect %d seen, more than %d: start exactly %d that way, the others without it", len(candidates), want, want, want)
	}
	for i, mb := range others {
		if infos[i] == nil && slices.ContainsFunc(candidates, func(p consensus.Peer) bool { return p.ID == mb.ID }) {
			return false, mb.ID + " does not answer yet"
		}
	}
	if err := m.cfg.Raft.BootstrapWith(candidates); err != nil {
		return false, err.Error()
	}
	return true, ""
}
