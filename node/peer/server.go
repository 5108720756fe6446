package peer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
	"github.com/continuum-mail/continuum/raftfsm"
)

// Server answers the Peer service.
type Server struct {
	peerpb.UnimplementedPeerServer
	raft *consensus.Node
	info func() *peerpb.InfoResponse
	log  *slog.Logger
	// authenticated: gs serves mutual TLS with node certificates, and every
	// call is checked against the caller's certificate (authorize).
	authenticated bool
}

// NewServer registers the Peer service on gs. info reports this node's view.
// authenticated says gs requires node certificates from the cluster CA;
// the calls then check who the caller is.
func NewServer(gs *grpc.Server, r *consensus.Node, info func() *peerpb.InfoResponse, log *slog.Logger, authenticated bool) *Server {
	s := &Server{raft: r, info: info, log: log.With("component", "peer"), authenticated: authenticated}
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

// Forward proposes a command that a follower received.
func (s *Server) Forward(ctx context.Context, req *peerpb.ForwardRequest) (*peerpb.ForwardResponse, error) {
	if err := s.requireMember(ctx); err != nil {
		return nil, err
	}
	cmd, err := raftfsm.Decode(req.Command)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "peer: %v", err)
	}
	res, idx, err := applyLocal(ctx, s.raft, cmd)
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

// Join adds a node to the configuration: as a non-voter; the leader's
// reconciler promotes it once it has caught up (node.promoteLoop).
//
// A fresh node (no Raft state; its transport held closed until this
// returns) is answered by the leader only, from the latest configuration.
// If its ID is a voter there, that voter's log is gone: counting it in a
// quorum again could lose acknowledged writes, so the voter is removed and
// the node re-added as a non-voter (node/consensus/DESIGN.md, "A wiped
// voter").
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
	if req.Fresh && !s.raft.IsLeader() {
		return nil, toStatus(consensus.ErrNotLeader)
	}
	servers, err := s.raft.Servers()
	if err != nil {
		return nil, toStatus(err)
	}
	for _, sv := range servers {
		if string(sv.ID) == req.Id && req.Fresh && sv.Suffrage == raft.Voter {
			if req.Id == s.raft.ID() {
				return nil, status.Errorf(codes.FailedPrecondition, "peer: node %s is the leader", req.Id)
			}
			s.log.Warn("a voter came back with no raft state: removing it and re-adding it as a non-voter",
				"id", req.Id, "raft", req.RaftAddr, "was", sv.Address)
			if err := s.raft.RemoveServer(req.Id); err != nil {
				return nil, toStatus(err)
			}
			break
		}
		if string(sv.ID) == req.Id && string(sv.Address) == req.RaftAddr {
			return &peerpb.JoinResponse{}, nil // already a member (a non-voter, or it knows)
		}
		if string(sv.ID) == req.Id {
			if req.Fresh {
				// A fresh non-voter at a new address: nothing to lose.
				if err := s.raft.RemoveServer(req.Id); err != nil {
					return nil, toStatus(err)
				}
				break
			}
			return nil, status.Errorf(codes.AlreadyExists, "peer: node %s is already a member at %s; remove it first", req.Id, sv.Address)
		}
		if string(sv.Address) == req.RaftAddr {
			return nil, status.Errorf(codes.AlreadyExists, "peer: address %s belongs to node %s", req.RaftAddr, sv.ID)
		}
	}
	if err := s.raft.AddServer(req.Id, req.RaftAddr, false); err != nil {
		return nil, toStatus(err)
	}
	s.log.Info("added node as non-voter", "id", req.Id, "raft", req.RaftAddr)
	return &peerpb.JoinResponse{}, nil
}

// Info reports this node's Raft view.
func (s *Server) Info(context.Context, *peerpb.InfoRequest) (*peerpb.InfoResponse, error) {
	return s.info(), nil
}

// applyLocal stamps and proposes cmd on this node, the leader.
func applyLocal(ctx context.Context, r *consensus.Node, cmd *commandpb.Command) (*commandpb.Result, uint64, error) {
	if !r.IsLeader() {
		return nil, 0, consensus.ErrNotLeader
	}
	cmd.TimeUnixNano = r.Stamp()
	data, err := raftfsm.Encode(cmd)
	if err != nil {
		return nil, 0, err
	}
	resp, idx, err := r.Apply(ctx, data)
	if err != nil {
		return nil, 0, err
	}
	fr, ok := resp.(*raftfsm.Response)
	if !ok || fr == nil {
		return nil, idx, fmt.Errorf("%w: no response from the state machine", ErrRejected)
	}
	if fr.Err != nil {
		return nil, idx, fmt.Errorf("%w: %v", ErrRejected, fr.Err)
	}
	return fr.Result, idx, nil
}

// ErrRejected means the state machine refused the command as a whole (it
// could not decode or apply it); retrying the same bytes will not help.
var ErrRejected = errors.New("peer: command rejected by the state machine")

// toStatus maps errors to gRPC codes, one table for the peer service.
// FailedPrecondition alone means "nothing was proposed".
func toStatus(err error) error {
	switch {
	case errors.Is(err, consensus.ErrNotLeader), errors.Is(err, consensus.ErrNoLeader):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrRejected):
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
		return fmt.Errorf("%w: %s", ErrRejected, st.Message())
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
