package peer

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/node/cluster"
	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// MaxMessageBytes bounds one gRPC message between nodes: a command carries a
// whole message, so it must exceed the largest message accepted.
const MaxMessageBytes = 1<<30 + 16<<20

// Router is the client side of the Peer service: one connection per node,
// the Forward and ReadIndex calls node/propose makes to the leader, Join
// and Info for node/cluster, and the leader's connection for admin
// forwarding. It decides nothing: which node is the leader, and whether to
// retry, are the caller's.
type Router struct {
	// Resolve maps a node ID to its gRPC address (from gossip).
	resolve func(id string) (string, bool)
	creds   credentials.TransportCredentials

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewRouter returns a Router. creds nil means plaintext (tests, dev).
func NewRouter(resolve func(id string) (string, bool), creds credentials.TransportCredentials) *Router {
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	return &Router{resolve: resolve, creds: creds, conns: map[string]*grpc.ClientConn{}}
}

// Forward sends an encoded command to the leader's Forward RPC and returns
// the state machine's result and the entry's index. A leader that cannot be
// reached is ErrNotLeader (nothing was proposed); the callee's refusals map
// back through fromStatus.
func (r *Router) Forward(ctx context.Context, leader string, data []byte, waitLocal bool) (*commandpb.Result, uint64, error) {
	client, err := r.client(leader)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", consensus.ErrNotLeader, err)
	}
	// waitLocal: the proposer will wait for its own apply, so the leader
	// publishes its commit index at once (consensus.PublishCommit).
	resp, err := client.Forward(ctx, &peerpb.ForwardRequest{Command: data, NoLocalWait: !waitLocal})
	if err != nil {
		return nil, 0, fromStatus(err)
	}
	res := &commandpb.Result{}
	if err := proto.Unmarshal(resp.Result, res); err != nil {
		return nil, 0, fmt.Errorf("%w: bad result from leader: %v", consensus.ErrUnknownOutcome, err)
	}
	return res, resp.Index, nil
}

// ReadIndex asks the leader for its commit index, confirmed by a quorum.
// known is this node's commit index: a leader ahead of it publishes its
// own at once, since the caller will wait for it.
func (r *Router) ReadIndex(ctx context.Context, leader string, known uint64) (uint64, error) {
	client, err := r.client(leader)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", consensus.ErrNoLeader, err)
	}
	resp, err := client.ReadIndex(ctx, &peerpb.ReadIndexRequest{KnownCommitIndex: known})
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
	if status.Code(err) == codes.AlreadyExists {
		return fmt.Errorf("%w: %s", cluster.ErrConflict, status.Convert(err).Message())
	}
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

// GossipKeys runs a gossip keyring operation on the node with the given ID.
func (r *Router) GossipKeys(ctx context.Context, id string, req *peerpb.GossipKeysRequest) (*peerpb.GossipKeysResponse, error) {
	c, err := r.client(id)
	if err != nil {
		return nil, err
	}
	return c.GossipKeys(ctx, req)
}

// TransferLeader asks the leader to hand leadership over (see
// peer.Server.TransferLeader). The caller found the leader.
func (r *Router) TransferLeader(ctx context.Context, leader string, req *peerpb.TransferLeaderRequest) (*peerpb.TransferLeaderResponse, error) {
	c, err := r.client(leader)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", consensus.ErrNoLeader, err)
	}
	return c.TransferLeader(ctx, req)
}

// RemoveServer asks the leader to remove a server, as TransferLeader.
func (r *Router) RemoveServer(ctx context.Context, leader string, req *peerpb.RemoveServerRequest) error {
	c, err := r.client(leader)
	if err != nil {
		return fmt.Errorf("%w: %v", consensus.ErrNoLeader, err)
	}
	_, err = c.RemoveServer(ctx, req)
	return err
}

// InfoAt asks the node at a gRPC address for its view.
func (r *Router) InfoAt(ctx context.Context, addr string) (*peerpb.InfoResponse, error) {
	c, err := r.dial(addr)
	if err != nil {
		return nil, err
	}
	return peerpb.NewPeerClient(c).Info(ctx, &peerpb.InfoRequest{})
}

// Conn returns a connection to the leader's gRPC server (for admin
// forwarding; the caller found the leader).
func (r *Router) Conn(leader string) (*grpc.ClientConn, error) {
	addr, ok := r.resolve(leader)
	if !ok {
		return nil, fmt.Errorf("%w: leader %s has no known gRPC address yet", consensus.ErrNoLeader, leader)
	}
	return r.dial(addr)
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
