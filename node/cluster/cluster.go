package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// Raft is what the policy needs of this node's consensus member
// (*consensus.Node): the configuration, its changes, and the hold of a
// fresh node's transport.
type Raft interface {
	ID() string
	IsLeader() bool
	Leader() (id, addr string)
	CommitIndex() uint64
	Servers() ([]raft.Server, error)
	AddServer(id, addr string, voter bool) error
	RemoveServer(id string) error
	TransferLeadership(id, addr string) error
	// Fresh reports a node with no Raft state not yet admitted; Admit
	// opens its transport; BootstrapWith forms a first configuration.
	Fresh() bool
	Admit()
	BootstrapWith(peers []consensus.Peer) error
}

// Gossip is this node's view of the gossip pool (*membership.Pool).
type Gossip interface {
	Join(addrs []string) (int, error)
	Members() []membership.Member
	Lookup(id string) (membership.Member, bool)
}

// Peers reaches the other nodes' Peer service (*peer.Router). Join must
// return an error wrapping ErrConflict when the callee refused the join
// because the ID or address is taken (the refusal an operator must act on).
type Peers interface {
	Join(ctx context.Context, grpcAddr string, req *peerpb.JoinRequest) error
	Info(ctx context.Context, id string) (*peerpb.InfoResponse, error)
	InfoAt(ctx context.Context, grpcAddr string) (*peerpb.InfoResponse, error)
}

// Config is one node's membership policy: who it is, how it joins, and the
// parts it acts through.
type Config struct {
	ID       string
	RaftAddr string
	// Voter: the node's role is "voter" (it asks to be promoted once caught
	// up); otherwise it stays a non-voter.
	Voter bool
	// Join lists gossip addresses of existing members (--join).
	Join []string
	// BootstrapExpect is --bootstrap-expect (0: none).
	BootstrapExpect int
	// AutopilotDeadAfter is how long a voter must be dead before the
	// leader removes it (0: never).
	AutopilotDeadAfter time.Duration

	Raft   Raft
	Gossip Gossip
	Peers  Peers
	Logger *slog.Logger
}

// Errors of the operator's and the joining node's requests. node/admin
// reports them as its own (admin.ErrNotLeader is ErrNotLeader, …), node/peer
// maps them to gRPC codes.
var (
	// ErrNotLeader: the request needs the leader and this node is not it.
	ErrNotLeader = errors.New("cluster: this node is not the leader")
	// ErrUnknownNode: no such node in the Raft configuration.
	ErrUnknownNode = errors.New("cluster: no such node in the raft configuration")
	// ErrRefused: the request is understood and refused (removing the
	// leader itself, transferring to a non-voter, …).
	ErrRefused = errors.New("cluster: refused")
	// ErrConflict: a join names an ID or a Raft address that another
	// member holds; the operator must remove the old member first.
	ErrConflict = errors.New("cluster: already a member")
)

// MinAutopilotVoters is the smallest configuration autopilot shrinks to:
// below three voters, one more loss stops writes.
const MinAutopilotVoters = 3

// Manager runs one node's membership policy. The join loop runs on every
// node until it is in the configuration; the reconcile loop (promotion and
// autopilot) runs on every node and acts only while it leads. Admit,
// TransferLeader, Remove and HandOver are called by the RPC and admin
// handlers and by shutdown.
type Manager struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns the policy for cfg; Start begins its loops.
func New(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{cfg: cfg, log: log, ctx: ctx, cancel: cancel}
}

// Start runs the join loop and the leader's reconcile loop until Stop.
func (m *Manager) Start() {
	m.wg.Add(2)
	go func() { defer m.wg.Done(); m.joinLoop() }()
	go func() { defer m.wg.Done(); m.reconcileLoop() }()
}

// Stop tells the loops to end; Wait waits for them. A loop may be inside a
// configuration change that only ends when Raft shuts down, so a node
// calls Wait after closing Raft. Calls in flight (Admit, …) are not waited
// for: their callers own them.
func (m *Manager) Stop() { m.cancel() }

// Wait returns once the loops started by Start have ended (after Stop).
func (m *Manager) Wait() { m.wg.Wait() }

// inConfiguration reports whether this node is in the latest configuration.
func (m *Manager) inConfiguration() bool {
	servers, err := m.cfg.Raft.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if string(s.ID) == m.cfg.ID {
			return true
		}
	}
	return false
}

// sleep waits d or until Stop; it reports whether to go on.
func (m *Manager) sleep(d time.Duration) bool {
	select {
	case <-m.ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
