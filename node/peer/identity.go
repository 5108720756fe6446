package peer

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/proto/peerpb"
)

// checkClusterIdentity refuses the join of a node whose Raft state belongs
// to another cluster identity than this node's (node/disaster.go): after a
// recovery from a lost majority, a lost node that comes back with its old
// data must be wiped, never admitted with a stale log. A fresh node (no
// Raft state) has nothing stale and adopts the identity once admitted.
func (s *Server) checkClusterIdentity(req *peerpb.JoinRequest) error {
	if req.Fresh {
		return nil
	}
	mine := s.info().GetClusterId()
	if req.GetClusterId() == mine {
		return nil
	}
	s.log.Warn("refused a join from another cluster identity", "id", req.Id, "its_cluster", req.GetClusterId(), "cluster", mine)
	return status.Errorf(codes.PermissionDenied,
		"peer: node %s has data of cluster %q, this cluster is %q (recovered without it): wipe its data directory and start it again to join as a new node",
		req.Id, req.GetClusterId(), mine)
}
