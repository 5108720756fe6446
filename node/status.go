package node

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/loginguard"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/node/search"
	"github.com/continuum-mail/continuum/proto/peerpb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

// The node's views: accessors for tests and wiring, readiness, the Info
// every status surface reports, and the adapter node/admin sees it through.

// Mail returns the node's mail service.
func (n *Node) Mail() *mail.Service { return n.mail }

// Raft returns the node's consensus member.
func (n *Node) Raft() *consensus.Node { return n.raft }

// FSM returns the node's state machine.
func (n *Node) FSM() *raftfsm.FSM { return n.fsm }

// DB returns the node's state database.
func (n *Node) DB() *storage.DB { return n.db }

// Config returns the node's configuration.
func (n *Node) Config() config.Config { return n.cfg }

// Members returns the gossip view.
func (n *Node) Members() []membership.Member { return n.pool.Members() }

// Logins is the node's login guard (throttle and check bound).
func (n *Node) Logins() *loginguard.Guard { return n.logins }

// Ready reports whether the node has a leader and has applied what it knows
// to be committed: what a load balancer should route to.
func (n *Node) Ready() (bool, string) {
	if q := n.Quarantined(); q != "" {
		return false, "quarantined: " + q
	}
	if n.draining.Load() {
		return false, "shutting down"
	}
	if n.raft.Fresh() {
		return false, "not admitted to the cluster yet"
	}
	if id, _ := n.raft.Leader(); id == "" {
		return false, "no leader"
	}
	// A follower that has not heard from its leader for an election timeout
	// is cut off even though raft has not given up on the leader yet (its
	// randomized timer may run up to twice the timeout).
	if !n.raft.IsLeader() {
		if since := time.Since(n.raft.LastContact()); since > n.raft.Profile().Election {
			return false, fmt.Sprintf("no contact with the leader for %v", since.Round(time.Millisecond))
		}
	}
	if n.mail.CutOff() && n.cfg.Role != "archive" { // an archive is always read-only
		return false, "cut off"
	}
	if lag := n.raft.CommitIndex() - min(n.raft.CommitIndex(), n.fsm.AppliedIndex()); lag > 1000 {
		return false, fmt.Sprintf("applying: %d entries behind", lag)
	}
	return true, "ready"
}

// Info is this node's view, served by the Peer.Info RPC and /status.
func (n *Node) Info() *peerpb.InfoResponse {
	leader, _ := n.raft.Leader()
	lc := int64(-1)
	if n.raft.IsLeader() {
		lc = 0
	} else if t := n.raft.LastContact(); !t.IsZero() {
		lc = time.Since(t).Milliseconds()
	}
	in := &peerpb.InfoResponse{
		Id: n.cfg.ID, Site: n.cfg.Site, Role: n.cfg.Role, State: n.raft.State(), Term: n.raft.Term(),
		AppliedIndex: n.fsm.AppliedIndex(), CommitIndex: n.raft.CommitIndex(), LastIndex: n.raft.LastIndex(),
		LeaderId: leader, LastContactMs: lc,
		GrpcAddr: n.cfg.GRPCAddr, SmtpAddr: n.cfg.SMTPAddr, LmtpAddr: n.cfg.LMTPAddr, ImapAddr: n.cfg.IMAPAddr,
		HttpAddr: n.cfg.HTTPAddr, RaftAddr: n.cfg.RaftAddr, ClusterId: n.ClusterID(),
	}
	n.integrityInfo(in)
	return in
}

// Index returns the node's full-text index.
func (n *Node) Index() *search.Index { return n.index }

func (n *Node) resolveGRPC(id string) (string, bool) {
	if id == n.cfg.ID {
		return n.cfg.GRPCAddr, true
	}
	m, ok := n.pool.Lookup(id)
	if !ok || m.GRPC == "" {
		// Raft knows this node but gossip has not told us its address
		// yet: ask the others now (the caller retries or reports).
		n.pool.Refresh()
		return "", false
	}
	return m.GRPC, true
}

// clusterView adapts Node to admin.Cluster.
type clusterView Node

func (c *clusterView) Servers() ([]admin.Server, error) {
	servers, err := c.raft.Servers()
	if err != nil {
		return nil, err
	}
	out := make([]admin.Server, len(servers))
	for i, s := range servers {
		out[i] = admin.Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter}
	}
	return out, nil
}

func (c *clusterView) Info(ctx context.Context, id string) (*peerpb.InfoResponse, error) {
	if id == c.cfg.ID {
		return (*Node)(c).Info(), nil
	}
	return c.router.Info(ctx, id)
}

func (c *clusterView) Local() *peerpb.InfoResponse { return (*Node)(c).Info() }

func (c *clusterView) GossipKeys(ctx context.Context, id string, req *peerpb.GossipKeysRequest) (*peerpb.GossipKeysResponse, error) {
	if id == c.cfg.ID {
		return (*Node)(c).gossipKeys(req)
	}
	return c.router.GossipKeys(ctx, id, req)
}

// gossipKeys runs one keyring operation on this node's gossip pool.
func (n *Node) gossipKeys(req *peerpb.GossipKeysRequest) (*peerpb.GossipKeysResponse, error) {
	var err error
	switch req.Op {
	case "list":
	case "install":
		err = n.pool.InstallKey(req.Key)
	case "use":
		err = n.pool.UseKey(req.Key)
	case "remove":
		err = n.pool.RemoveKey(req.Key)
	default:
		return nil, fmt.Errorf("gossip keys: unknown operation %q (want list, install, use or remove)", req.Op)
	}
	if err != nil {
		return nil, err
	}
	primary, all, err := n.pool.Keys()
	if err != nil {
		return nil, err
	}
	return &peerpb.GossipKeysResponse{Primary: primary, Keys: all}, nil
}

func (c *clusterView) ProposeCheck(ctx context.Context, by string) (uint64, uint64, error) {
	return (*Node)(c).ProposeCheck(ctx, by)
}
