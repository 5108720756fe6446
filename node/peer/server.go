package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/node/cluster"
	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/propose"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// Server answers the Peer service.
type Server struct {
	peerpb.UnimplementedPeerServer
	raft *consensus.Node
	// members decides joins (node/cluster); proposer proposes forwarded
	// commands (node/propose).
	members  Admitter
	proposer Proposer
	info     func() *peerpb.InfoResponse
	log      *slog.Logger
	// authenticated: gs serves mutual TLS with node certificates, and every
	// call is checked against the caller's certificate (authorize).
	authenticated bool
	// Ops, when set, carries out leadership transfer and removal for a
	// member that took the admin request (TransferLeader, RemoveServer).
	Ops Operator
	// Keys, when set, runs a gossip keyring operation on this node
	// (GossipKeys).
	Keys func(req *peerpb.GossipKeysRequest) (*peerpb.GossipKeysResponse, error)
}

// Admitter decides whether a node may join (*cluster.Manager).
type Admitter interface {
	Admit(id, raftAddr string, fresh bool) error
	// CheckIdentity refuses a node whose Raft state belongs to another
	// cluster identity (a lost node of a cluster recovered without it).
	CheckIdentity(id, clusterID string, fresh bool) error
}

// Operator is what the leader does for TransferLeader and RemoveServer
// (node/cluster's Manager).
type Operator interface {
	TransferLeader(ctx context.Context, to string) (string, error)
	Remove(ctx context.Context, id string) error
}

// Proposer proposes an encoded command on the leader (*propose.Proposer).
type Proposer interface {
	Local(ctx context.Context, data []byte) (*commandpb.Result, uint64, error)
}

// NewServer registers the Peer service on gs. members decides joins;
// proposer proposes forwarded commands; info reports this node's view.
// authenticated says gs requires node certificates from the cluster CA;
// the calls then check who the caller is.
func NewServer(gs *grpc.Server, r *consensus.Node, members Admitter, proposer Proposer, info func() *peerpb.InfoResponse, log *slog.Logger, authenticated bool) *Server {
	s := &Server{raft: r, members: members, proposer: proposer, info: info, log: log.With("component", "peer"), authenticated: authenticated}
	peerpb.RegisterPeerServer(gs, s)
	return s
}

// ErrNotMember means the caller's certificate names no member of the Raft
// configuration, or names another node than the one it speaks for.
var ErrNotMember = errors.New("peer: caller is not a member of the cluster")

// caller returns the verified node ID of the call's certificate. The TLS
// layer has already refused anything but a node certificate from the
// cluster CA.
func (s *Server) caller(ctx context.Context) (string, error) {
	if !s.authenticated {
		return "", nil
	}
	id, ok := identity.FromContext(ctx)
	if !ok || id.Role != identity.RoleNode {
		return "", status.Error(codes.Unauthenticated, "peer: a node certificate from the cluster CA is required")
	}
	return id.Name, nil
}

// requireMember refuses a caller that is not in the latest configuration:
// only members may propose (Forward) or learn the commit index.
func (s *Server) requireMember(ctx context.Context) error {
	id, err := s.caller(ctx)
	if err != nil || !s.authenticated {
		return err
	}
	if !s.raft.IsMember(id) {
		s.log.Warn("refused a call from a node outside the configuration", "caller", id)
		return status.Errorf(codes.PermissionDenied, "%v: %s", ErrNotMember, id)
	}
	return nil
}

// Forward proposes, on this node (the leader), the encoded command a
// follower sent (node/propose does the rest).
func (s *Server) Forward(ctx context.Context, req *peerpb.ForwardRequest) (*peerpb.ForwardResponse, error) {
	if err := s.requireMember(ctx); err != nil {
		return nil, err
	}
	res, idx, err := s.proposer.Local(ctx, req.Command)
	if err != nil {
		return nil, toStatus(err)
	}
	if !req.GetNoLocalWait() {
		// The caller waits for its own apply of idx: have the commit
		// index sent to it now (node/consensus/publish.go).
		s.raft.PublishCommit()
	}
	b, err := proto.Marshal(res)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "peer: %v", err)
	}
	return &peerpb.ForwardResponse{Result: b, Index: idx}, nil
}

// ReadIndex confirms leadership and returns the commit index.
func (s *Server) ReadIndex(ctx context.Context, req *peerpb.ReadIndexRequest) (*peerpb.ReadIndexResponse, error) {
	if err := s.requireMember(ctx); err != nil {
		return nil, err
	}
	idx, err := s.raft.VerifyLeader(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	if k := req.GetKnownCommitIndex(); k != 0 && k < idx {
		// The caller will wait for idx, which it has not heard of yet.
		s.raft.PublishCommit()
	}
	return &peerpb.ReadIndexResponse{CommitIndex: idx}, nil
}

// Join asks the membership policy to admit a node (cluster.Manager.Admit:
// as a non-voter, promoted once caught up; a wiped voter is removed and
// re-added as a non-voter).
//
// With authentication, a node may join only as itself: the ID it asks for
// must be its certificate's, so no certificate holder can take another
// node's place (and Fresh, which replaces a voter, needs that voter's
// certificate).
func (s *Server) Join(ctx context.Context, req *peerpb.JoinRequest) (*peerpb.JoinResponse, error) {
	if req.Id == "" || req.RaftAddr == "" {
		return nil, status.Error(codes.InvalidArgument, "peer: join needs id and raft_addr")
	}
	if who, err := s.caller(ctx); err != nil {
		return nil, err
	} else if s.authenticated && who != req.Id {
		s.log.Warn("refused a join for another node's ID", "caller", who, "claimed", req.Id)
		return nil, status.Errorf(codes.PermissionDenied, "%v: certificate of %s cannot join as %s", ErrNotMember, who, req.Id)
	}
	if err := s.members.CheckIdentity(req.Id, req.ClusterId, req.Fresh); err != nil {
		return nil, status.Error(codes.PermissionDenied, err.Error())
	}
	if err := s.members.Admit(req.Id, req.RaftAddr, req.Fresh); err != nil {
		return nil, toStatus(err)
	}
	return &peerpb.JoinResponse{}, nil
}

// Info reports this node's Raft view.
func (s *Server) Info(context.Context, *peerpb.InfoRequest) (*peerpb.InfoResponse, error) {
	return s.info(), nil
}

// TransferLeader hands leadership over for a member whose authenticated
// admin listener took the request (the member checked the admin
// certificate; this checks the member's node certificate).
func (s *Server) TransferLeader(ctx context.Context, req *peerpb.TransferLeaderRequest) (*peerpb.TransferLeaderResponse, error) {
	if err := s.requireMember(ctx); err != nil {
		return nil, err
	}
	if s.Ops == nil {
		return nil, status.Error(codes.Unimplemented, "peer: no cluster operations here")
	}
	who, _ := s.caller(ctx)
	s.log.Info("leadership transfer passed on by a member", "from", who, "admin", req.Admin, "to", req.To)
	leader, err := s.Ops.TransferLeader(ctx, req.To)
	if err != nil {
		return nil, opStatus(err)
	}
	return &peerpb.TransferLeaderResponse{Leader: leader}, nil
}

// RemoveServer removes a server for a member whose authenticated admin
// listener took the request, as TransferLeader.
func (s *Server) RemoveServer(ctx context.Context, req *peerpb.RemoveServerRequest) (*peerpb.RemoveServerResponse, error) {
	if err := s.requireMember(ctx); err != nil {
		return nil, err
	}
	if s.Ops == nil {
		return nil, status.Error(codes.Unimplemented, "peer: no cluster operations here")
	}
	if req.Id == "" {
		return nil, status.Error(codes.InvalidArgument, "peer: remove needs a node ID")
	}
	who, _ := s.caller(ctx)
	s.log.Info("node removal passed on by a member", "from", who, "admin", req.Admin, "id", req.Id)
	if err := s.Ops.Remove(ctx, req.Id); err != nil {
		return nil, opStatus(err)
	}
	return &peerpb.RemoveServerResponse{}, nil
}

// opStatus maps node/cluster's errors to the codes node/admin answers the
// operator with.
func opStatus(err error) error {
	switch {
	case errors.Is(err, cluster.ErrUnknownNode):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, cluster.ErrNotLeader), errors.Is(err, consensus.ErrNotLeader), errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, cluster.ErrRefused):
		return status.Error(codes.FailedPrecondition, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// GossipKeys runs a keyring operation on this node for a member (the admin
// API on another node fans an operator's request out to every node).
func (s *Server) GossipKeys(ctx context.Context, req *peerpb.GossipKeysRequest) (*peerpb.GossipKeysResponse, error) {
	if err := s.requireMember(ctx); err != nil {
		return nil, err
	}
	if s.Keys == nil {
		return nil, status.Error(codes.Unimplemented, "peer: no gossip keyring")
	}
	who, _ := s.caller(ctx)
	if req.Op != "list" {
		s.log.Info("gossip keyring change", "op", req.Op, "caller", who)
	}
	resp, err := s.Keys(req)
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "peer: %v", err)
	}
	return resp, nil
}

// toStatus maps errors to gRPC codes, one table for the peer service.
// FailedPrecondition alone means "nothing was proposed".
func toStatus(err error) error {
	switch {
	case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrNoLeader), errors.Is(err, cluster.ErrRefused):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, cluster.ErrConflict):
		return status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, propose.ErrRejected):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, consensus.ErrStorageFull):
		return status.Error(codes.ResourceExhausted, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return status.Error(codes.DeadlineExceeded, err.Error())
	default:
		return status.Error(codes.Aborted, err.Error())
	}
}

// fromStatus is the inverse of toStatus on the calling side.
func fromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("%w: %v", consensus.ErrUnknownOutcome, err)
	}
	switch st.Code() {
	case codes.FailedPrecondition:
		return fmt.Errorf("%w: %s", consensus.ErrNotLeader, st.Message())
	case codes.InvalidArgument:
		return fmt.Errorf("%w: %s", propose.ErrRejected, st.Message())
	case codes.ResourceExhausted:
		return fmt.Errorf("%w: %s", consensus.ErrStorageFull, st.Message())
	case codes.PermissionDenied, codes.Unauthenticated:
		// Refused before anything was proposed: to this node, as good as
		// no leader.
		return fmt.Errorf("%w: %w: %s", consensus.ErrNoLeader, ErrNotMember, st.Message())
	default:
		// Unavailable, DeadlineExceeded, Aborted, …: the leader may have
		// proposed it.
		return fmt.Errorf("%w: %s", consensus.ErrUnknownOutcome, st.Message())
	}
}
