// Package admin serves the operator's gRPC API (proto/adminpb) on every
// node. Writes go through node/mail, which forwards them to the leader;
// cluster status asks every member of the Raft configuration for its view.
// Errors are translated to gRPC codes here, from one table.
package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// Cluster is what status needs from the node layer.
type Cluster interface {
	// Servers lists the Raft configuration: ID, Raft address, voter.
	Servers() ([]Server, error)
	// Info asks a node (by ID) for its view; the local node answers
	// without a network round trip.
	Info(ctx context.Context, id string) (*peerpb.InfoResponse, error)
	// Local is this node's own view.
	Local() *peerpb.InfoResponse
}

// Server is one entry of the Raft configuration.
type Server struct {
	ID, Addr string
	Voter    bool
}

// Service implements adminpb.AdminServer.
type Service struct {
	adminpb.UnimplementedAdminServer
	mail    *mail.Service
	cluster Cluster
}

// Register adds the Admin service to gs.
func Register(gs *grpc.Server, m *mail.Service, c Cluster) *Service {
	s := &Service{mail: m, cluster: c}
	adminpb.RegisterAdminServer(gs, s)
	return s
}

// toStatus is the one table from mail errors to gRPC codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, mail.ErrInvalid), errors.Is(err, mail.ErrNotLocalDomain):
		code = codes.InvalidArgument
	case errors.Is(err, mail.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, mail.ErrNotFound), errors.Is(err, mail.ErrNoSuchUser):
		code = codes.NotFound
	case errors.Is(err, mail.ErrNotEmpty):
		code = codes.FailedPrecondition
	case errors.Is(err, mail.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, mail.ErrUnknownOutcome):
		code = codes.Aborted
	}
	return status.Error(code, err.Error())
}

func (s *Service) DomainAdd(ctx context.Context, req *adminpb.DomainAddRequest) (*adminpb.DomainAddResponse, error) {
	return &adminpb.DomainAddResponse{}, toStatus(s.mail.AddDomain(ctx, req.Name, req.CatchAll))
}

func (s *Service) DomainList(ctx context.Context, _ *adminpb.DomainListRequest) (*adminpb.DomainListResponse, error) {
	if err := s.mail.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	names, err := s.mail.Domains()
	return &adminpb.DomainListResponse{Names: names}, toStatus(err)
}

func (s *Service) UserAdd(ctx context.Context, req *adminpb.UserAddRequest) (*adminpb.UserAddResponse, error) {
	id, err := s.mail.AddUser(ctx, req.Email, req.Password, req.QuotaBytes)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminpb.UserAddResponse{Id: id}, nil
}

func (s *Service) UserList(ctx context.Context, _ *adminpb.UserListRequest) (*adminpb.UserListResponse, error) {
	if err := s.mail.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	users, err := s.mail.Users()
	if err != nil {
		return nil, toStatus(err)
	}
	out := &adminpb.UserListResponse{}
	for _, u := range users {
		out.Users = append(out.Users, &adminpb.User{Id: u.Id, Email: u.Email, QuotaBytes: u.QuotaBytes, UsedBytes: u.UsedBytes})
	}
	return out, nil
}

func (s *Service) UserPasswd(ctx context.Context, req *adminpb.UserPasswdRequest) (*adminpb.UserPasswdResponse, error) {
	return &adminpb.UserPasswdResponse{}, toStatus(s.mail.SetPassword(ctx, req.Email, req.Password))
}

func (s *Service) UserDel(ctx context.Context, req *adminpb.UserDelRequest) (*adminpb.UserDelResponse, error) {
	return &adminpb.UserDelResponse{}, toStatus(s.mail.DeleteUser(ctx, req.Email))
}

func (s *Service) AliasSet(ctx context.Context, req *adminpb.AliasSetRequest) (*adminpb.AliasSetResponse, error) {
	return &adminpb.AliasSetResponse{}, toStatus(s.mail.SetAlias(ctx, req.Email, req.Targets))
}

// ClusterStatus asks every member of the configuration for its view, in
// parallel, with a short deadline: an unreachable node is reported, not
// waited for.
func (s *Service) ClusterStatus(ctx context.Context, _ *adminpb.ClusterStatusRequest) (*adminpb.ClusterStatusResponse, error) {
	servers, err := s.cluster.Servers()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "admin: raft configuration: %v", err)
	}
	local := s.cluster.Local()
	out := &adminpb.ClusterStatusResponse{Leader: local.LeaderId, Term: local.Term}
	nodes := make([]*adminpb.NodeStatus, len(servers))
	infos := make([]*peerpb.InfoResponse, len(servers))
	var wg sync.WaitGroup
	for i, sv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			info, err := s.cluster.Info(ictx, sv.ID)
			if err == nil {
				infos[i] = info
			}
		}()
	}
	wg.Wait()
	// The leader's commit index is the reference for every node's lag.
	var leaderCommit uint64
	for _, in := range infos {
		if in != nil && in.State == "leader" {
			leaderCommit = in.CommitIndex
			if out.Leader == "" {
				out.Leader = in.Id
				out.Term = in.Term
			}
		}
	}
	sites := map[string]int{}
	voters := 0
	for i, sv := range servers {
		ns := &adminpb.NodeStatus{Id: sv.ID, RaftAddr: sv.Addr, Role: "nonvoter", State: "unreachable", LastContactMs: -1}
		if sv.Voter {
			ns.Role = "voter"
			voters++
		}
		if in := infos[i]; in != nil {
			ns.Site, ns.State = in.Site, in.State
			ns.AppliedIndex, ns.CommitIndex = in.AppliedIndex, in.CommitIndex
			ns.LastContactMs, ns.GrpcAddr = in.LastContactMs, in.GrpcAddr
			lagOK := leaderCommit == 0 || in.AppliedIndex+1000 >= leaderCommit
			contactOK := in.State == "leader" || (in.LeaderId != "" && in.LastContactMs >= 0 && in.LastContactMs < 10_000)
			ns.Healthy = lagOK && contactOK && out.Leader != ""
			if sv.Voter {
				sites[in.Site]++
			}
		}
		nodes[i] = ns
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Id < nodes[j].Id })
	out.Nodes = nodes
	out.Warnings = PlacementWarnings(voters, sites)
	if out.Leader == "" {
		out.Warnings = append(out.Warnings, "no leader: the cluster cannot accept writes")
	}
	return out, nil
}

// PlacementWarnings checks that no site holds a quorum of voters
// (ARCHITECTURE.md §1): then losing any one site leaves a quorum.
func PlacementWarnings(voters int, votersBySite map[string]int) []string {
	var w []string
	quorum := voters/2 + 1
	sites := make([]string, 0, len(votersBySite))
	for s := range votersBySite {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	for _, site := range sites {
		if n := votersBySite[site]; voters > 1 && n >= quorum {
			w = append(w, fmt.Sprintf("placement: site %q holds %d of %d voters, a quorum: losing it stops writes", site, n, voters))
		}
	}
	return w
}
