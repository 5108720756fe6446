package peer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// MaxMessageBytes bounds one gRPC message between nodes: a command carries a
// whole message, so it must exceed the largest message accepted.
const MaxMessageBytes = 1<<30 + 16<<20

// Router sends writes and read-index requests to the leader.
type Router struct {
	raft *consensus.Node
	// Resolve maps a node ID to its gRPC address (from gossip).
	resolve func(id string) (string, bool)
	creds   credentials.TransportCredentials
	// LeaderWait bounds how long a request waits for a leader to appear.
	leaderWait time.Duration

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewRouter returns a Router. creds nil means plaintext (tests, dev).
func NewRouter(r *consensus.Node, resolve func(id string) (string, bool), creds credentials.TransportCredentials, leaderWait time.Duration) *Router {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	return &Router{raft: r, resolve: resolve, creds: creds, leaderWait: leaderWait, conns: map[string]*grpc.ClientConn{}}
}

// Propose commits cmd through the leader and returns the state machine's
// result and the log index. It retries only while the answer proves that
// nothing was proposed.
func (r *Router) Propose(ctx context.Context, cmd *commandpb.Command) (*commandpb.Result, uint64, error) {
	for attempt := 0; ; attempt++ {
		res, idx, err := r.proposeOnce(ctx, cmd)
		if err == nil || !errors.Is(err, consensus.ErrNotLeader) || attempt >= 5 {
			if errors.Is(err, consensus.ErrNotLeader) {
				err = fmt.Errorf("%w: %v", consensus.ErrNoLeader, err)
			}
			return res, idx, err
		}
		// The node we asked was not the leader: nothing was proposed, so
		// wait for the next leader and try again.
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("%w: %v", consensus.ErrNoLeader, ctx.Err())
		case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
		}
	}
}

func (r *Router) proposeOnce(ctx context.Context, cmd *commandpb.Command) (*commandpb.Result, uint64, error) {
	leader, err := r.waitLeader(ctx)
	if err != nil {
		return nil, 0, err
	}
	if leader == r.raft.ID() {
		return applyLocal(ctx, r.raft, cmd)
	}
	client, err := r.client(leader)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", consensus.ErrNotLeader, err)
	}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, 0, err
	}
	resp, err := client.Forward(ctx, &peerpb.ForwardRequest{Command: data, NoLocalWait: !consensus.WaitsLocally(ctx)})
	if err != nil {
		return nil, 0, fromStatus(err)
	}
	res := &commandpb.Result{}
	if err := proto.Unmarshal(resp.Result, res); err != nil {
		return nil, 0, fmt.Errorf("%w: bad result from leader: %v", consensus.ErrUnknownOutcome, err)
	}
	return res, resp.Index, nil
}

// ReadIndex returns an index that a linearizable read must wait for: the
// leader's commit index, confirmed by a quorum.
func (r *Router) ReadIndex(ctx context.Context) (uint64, error) {
	leader, err := r.waitLeader(ctx)
	if err != nil {
		return 0, err
	}
	if leader == r.raft.ID() {
		return r.raft.VerifyLeader(ctx)
	}
	client, err := r.client(leader)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", consensus.ErrNoLeader, err)
	}
	resp, err := client.ReadIndex(ctx, &peerpb.ReadIndexRequest{KnownCommitIndex: r.raft.CommitIndex()})
	if err != nil {
		return 0, fmt.Errorf("%w: %v", consensus.ErrNoLeader, err)
	}
	return resp.CommitIndex, nil
}

// Join asks the cluster, through the node at grpcAddr, to add this node.
func (r *Router) Join(ctx context.Context, grpcAddr string, req *peerpb.JoinRequest) error {
	c, err := r.dial(grpcAddr)
	if err != nil {
		return err
	}
	_, err = peerpb.NewPeerClient(c).Join(ctx, req)
	return err
}

// Info asks the node with the given ID for its view.
func (r *Router) Info(ctx context.Context, id string) (*peerpb.InfoResponse, error) {
	c, err := r.client(id)
	if err != nil {
		return nil, err
	}
	return c.Info(ctx, &peerpb.InfoRequest{})
}

// InfoAt asks the node at a gRPC address for its view.
func (r *Router) InfoAt(ctx context.Context, addr string) (*peerpb.InfoResponse, error) {
	c, err := r.dial(addr)
	if err != nil {
		return nil, err
	}
	return peerpb.NewPeerClient(c).Info(ctx, &peerpb.InfoRequest{})
}

// LeaderConn returns a connection to the leader's gRPC server (for admin
// forwarding), or nil when this node is the leader.
func (r *Router) LeaderConn(ctx context.Context) (*grpc.ClientConn, error) {
	leader, err := r.waitLeader(ctx)
	if err != nil {
		return nil, err
	}
	if leader == r.raft.ID() {
		return nil, nil
	}
	addr, ok := r.resolve(leader)
	if !ok {
		return nil, fmt.Errorf("%w: leader %s has no known gRPC address yet", consensus.ErrNoLeader, leader)
	}
	return r.dial(addr)
}

// waitLeader returns the leader's ID, waiting up to leaderWait for one.
func (r *Router) waitLeader(ctx context.Context) (string, error) {
	deadline := time.Now().Add(r.leaderWait)
	for {
		if id, _ := r.raft.Leader(); id != "" {
			return id, nil
		}
		if time.Now().After(deadline) {
			return "", consensus.ErrNoLeader
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w: %v", consensus.ErrNoLeader, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *Router) client(id string) (peerpb.PeerClient, error) {
	addr, ok := r.resolve(id)
	if !ok {
		return nil, fmt.Errorf("peer: no gRPC address known for node %s", id)
	}
	c, err := r.dial(addr)
	if err != nil {
		return nil, err
	}
	return peerpb.NewPeerClient(c), nil
}

func (r *Router) dial(addr string) (*grpc.ClientConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(r.creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes), grpc.MaxCallSendMsgSize(MaxMessageBytes)))
	if err != nil {
		return nil, fmt.Errorf("peer: dial %s: %w", addr, err)
	}
	r.conns[addr] = c
	return c, nil
}

// Close closes every cached connection.
func (r *Router) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for a, c := range r.conns {
		c.Close()
		delete(r.conns, a)
	}
}
