package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/cluster"
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
	// Gossip is the gossip pool's view of a node, for nodes that do not
	// answer: site, alive, and since when.
	Gossip(id string) (site string, alive bool, since time.Time, ok bool)

	// IsLeader reports whether this node leads; LeaderConn connects to the
	// leader's gRPC server (for forwarding).
	IsLeader() bool
	LeaderConn(ctx context.Context) (*grpc.ClientConn, error)
	// TransferLeader hands leadership to the voter to (any when empty) and
	// returns the new leader. Leader only.
	TransferLeader(ctx context.Context, to string) (string, error)
	// RemoveServer removes a server other than this node. Leader only.
	RemoveServer(ctx context.Context, id string) error
	// LeaderTransferLeader and LeaderRemoveServer ask the leader, over the
	// peer service (node certificates), to do the same for a request this
	// node's admin listener took from the admin by.
	LeaderTransferLeader(ctx context.Context, to, by string) (string, error)
	LeaderRemoveServer(ctx context.Context, id, by string) error
	// OpenBackup takes a consistent view of the state database.
	OpenBackup() (Backup, error)
	// ProposeCheck commits a consistency check entry (forwarded to the
	// leader) and returns its log index and ID.
	ProposeCheck(ctx context.Context, by string) (index, id uint64, err error)
	// GossipKeys runs a gossip keyring operation on the node id (locally
	// when it is this node).
	GossipKeys(ctx context.Context, id string, req *peerpb.GossipKeysRequest) (*peerpb.GossipKeysResponse, error)
}

// Backup is a consistent view of a node's state being backed up.
type Backup interface {
	Applied() (index, term uint64, err error)
	WriteSnapshot(w io.Writer) error
	Digest() ([]byte, error)
	Close() error
}

// Errors the Cluster returns; toStatus maps them. They are node/cluster's,
// which decides transfers and removals.
var (
	ErrUnknownNode = cluster.ErrUnknownNode
	ErrNotLeader   = cluster.ErrNotLeader
	ErrRefused     = cluster.ErrRefused
)

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
	s := New(m, c)
	adminpb.RegisterAdminServer(gs, s)
	return s
}

// New returns the service without serving it: the node's console calls
// ClusterStatus in process.
func New(m *mail.Service, c Cluster) *Service {
	return &Service{mail: m, cluster: c}
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
	case errors.Is(err, mail.ErrNotEmpty), errors.Is(err, mail.ErrHeld):
		code = codes.FailedPrecondition
	case errors.Is(err, mail.ErrUnavailable):
		code = codes.Unavailable
	case errors.Is(err, mail.ErrUnknownOutcome):
		code = codes.Aborted
	case errors.Is(err, ErrUnknownNode):
		code = codes.NotFound
	case errors.Is(err, ErrNotLeader), errors.Is(err, context.DeadlineExceeded):
		code = codes.Unavailable
	case errors.Is(err, ErrRefused):
		code = codes.FailedPrecondition
	}
	if st, ok := status.FromError(err); ok {
		return st.Err() // a forwarded call's answer, as the leader gave it
	}
	return status.Error(code, err.Error())
}

func (s *Service) DomainAdd(ctx context.Context, req *adminpb.DomainAddRequest) (*adminpb.DomainAddResponse, error) {
	return &adminpb.DomainAddResponse{}, toStatus(s.mail.AddDomain(audit(ctx), req.Name, req.CatchAll))
}

func (s *Service) DomainList(ctx context.Context, _ *adminpb.DomainListRequest) (*adminpb.DomainListResponse, error) {
	if err := s.mail.Sync(ctx); err != nil {
		return nil, toStatus(err)
	}
	names, err := s.mail.Domains()
	return &adminpb.DomainListResponse{Names: names}, toStatus(err)
}

func (s *Service) UserAdd(ctx context.Context, req *adminpb.UserAddRequest) (*adminpb.UserAddResponse, error) {
	id, err := s.mail.AddUser(audit(ctx), req.Email, req.Password, req.QuotaBytes)
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
	return &adminpb.UserPasswdResponse{}, toStatus(s.mail.SetPassword(audit(ctx), req.Email, req.Password))
}

func (s *Service) UserDel(ctx context.Context, req *adminpb.UserDelRequest) (*adminpb.UserDelResponse, error) {
	return &adminpb.UserDelResponse{}, toStatus(s.mail.DeleteUser(audit(ctx), req.Email))
}

func (s *Service) AliasSet(ctx context.Context, req *adminpb.AliasSetRequest) (*adminpb.AliasSetResponse, error) {
	return &adminpb.AliasSetResponse{}, toStatus(s.mail.SetAlias(audit(ctx), req.Email, req.Targets))
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
		ns := &adminpb.NodeStatus{Id: sv.ID, RaftAddr: sv.Addr, Role: "nonvoter", State: "unreachable", LastContactMs: -1, Gossip: "unknown"}
		if site, alive, since, ok := s.cluster.Gossip(sv.ID); ok {
			ns.Site, ns.Gossip = site, "dead"
			if alive {
				ns.Gossip = "alive"
			} else if !since.IsZero() {
				// Gossip declared it dead then: the best estimate of its
				// last contact when it does not answer.
				ns.LastContactMs = time.Since(since).Milliseconds()
			}
		}
		if sv.Voter {
			ns.Role = "voter"
			voters++
		}
		if in := infos[i]; in != nil {
			ns.Site, ns.State = in.Site, in.State
			if in.Role == "archive" && !sv.Voter {
				ns.Role = "archive" // a permanent non-voter (node/disaster.go)
			}
			ns.AppliedIndex, ns.CommitIndex = in.AppliedIndex, in.CommitIndex
			ns.LastContactMs, ns.GrpcAddr = in.LastContactMs, in.GrpcAddr
			ns.Quarantine = in.Quarantine
			ns.ScrubDoneUnixMs, ns.ScrubError = in.ScrubDoneUnixMs, in.ScrubError
			if len(in.Checks) > 0 {
				c := in.Checks[0]
				ns.CheckIndex, ns.CheckDigest, ns.CheckVerdict = c.Index, c.Digest, c.Verdict
				if c.Verdict == "disagrees" || c.Verdict == "no majority" {
					out.Warnings = append(out.Warnings, fmt.Sprintf("consistency check at index %d: %s %s", c.Index, in.Id, c.Verdict))
				}
			}
			if in.Quarantine != "" {
				out.Warnings = append(out.Warnings, fmt.Sprintf("%s is quarantined: %s", in.Id, in.Quarantine))
			}
			lagOK := leaderCommit == 0 || in.AppliedIndex+1000 >= leaderCommit
			contactOK := in.State == "leader" || (in.LeaderId != "" && in.LastContactMs >= 0 && in.LastContactMs < 10_000)
			ns.Healthy = lagOK && contactOK && out.Leader != ""
		}
		if sv.Voter {
			sites[ns.Site]++
		}
		nodes[i] = ns
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Id < nodes[j].Id })
	out.Nodes = nodes
	// Placement first, then what the nodes reported above (quarantines,
	// disagreeing checks): appended, not replaced.
	out.Warnings = append(PlacementWarnings(voters, sites), out.Warnings...)
	if out.Leader == "" {
		out.Warnings = append(out.Warnings, "no leader: the cluster cannot accept writes")
	}
	return out, nil
}

// PlacementWarnings checks that no site holds a quorum of voters
// (docs/ARCHITECTURE.md §1): then losing any one site leaves a quorum.
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

// TransferLeader hands leadership over; any node passes it on to the leader
// (the Peer service's TransferLeader, authenticated by the node certificate).
func (s *Service) TransferLeader(ctx context.Context, req *adminpb.TransferLeaderRequest) (*adminpb.TransferLeaderResponse, error) {
	if !s.cluster.IsLeader() {
		// Passed on over the peer service: the admin service answers on
		// the admin listener only (issue 10).
		leader, err := s.cluster.LeaderTransferLeader(ctx, req.To, actor(ctx))
		if err != nil {
			return nil, toStatus(passedOn(err))
		}
		return &adminpb.TransferLeaderResponse{Leader: leader}, nil
	}
	leader, err := s.cluster.TransferLeader(ctx, req.To)
	if err != nil {
		return nil, toStatus(err)
	}
	return &adminpb.TransferLeaderResponse{Leader: leader}, nil
}

// RemoveNode removes a server from the Raft configuration; any node
// passes it on to the leader. Removing the leader hands leadership over
// first, then the new leader removes it.
func (s *Service) RemoveNode(ctx context.Context, req *adminpb.RemoveNodeRequest) (*adminpb.RemoveNodeResponse, error) {
	if req.Id == "" {
		return nil, status.Error(codes.InvalidArgument, "admin: remove needs a node ID")
	}
	if !s.cluster.IsLeader() {
		if err := s.cluster.LeaderRemoveServer(ctx, req.Id, actor(ctx)); err != nil {
			return nil, toStatus(passedOn(err))
		}
		return &adminpb.RemoveNodeResponse{}, nil
	}
	if req.Id == s.cluster.Local().Id {
		servers, err := s.cluster.Servers()
		if err != nil {
			return nil, toStatus(err)
		}
		if !hasOtherVoter(servers, req.Id) {
			return nil, toStatus(fmt.Errorf("%w: %s is the only voter", ErrRefused, req.Id))
		}
		if _, err := s.cluster.TransferLeader(ctx, ""); err != nil {
			return nil, toStatus(fmt.Errorf("removing the leader: transfer leadership first: %w", err))
		}
		if err := s.cluster.LeaderRemoveServer(ctx, req.Id, actor(ctx)); err != nil {
			return nil, toStatus(passedOn(err))
		}
		return &adminpb.RemoveNodeResponse{}, nil
	}
	if err := s.cluster.RemoveServer(ctx, req.Id); err != nil {
		return nil, toStatus(err)
	}
	return &adminpb.RemoveNodeResponse{}, nil
}

// passedOn is the error of a request passed on to the leader: the leader's
// answer as it gave it, else (no leader reachable) ErrNotLeader.
func passedOn(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return fmt.Errorf("%w: %v", ErrNotLeader, err)
}

func hasOtherVoter(servers []Server, id string) bool {
	for _, sv := range servers {
		if sv.Voter && sv.ID != id {
			return true
		}
	}
	return false
}

// forwardConn returns a connection to the leader. A request that was
// already forwarded once is not forwarded again: leadership moved under it,
// and the client retries.
func (s *Service) forwardConn(ctx context.Context, forwarded bool) (*grpc.ClientConn, error) {
	if forwarded {
		return nil, fmt.Errorf("%w: leadership moved while the request was forwarded; retry", ErrNotLeader)
	}
	conn, err := s.cluster.LeaderConn(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotLeader, err)
	}
	if conn == nil { // leadership arrived here meanwhile
		return nil, fmt.Errorf("%w: leadership moved; retry", ErrNotLeader)
	}
	return conn, nil
}

// backupChunkBytes is the data carried by one Backup message.
const backupChunkBytes = 1 << 20

// Backup streams a consistent snapshot of this node's state database. The
// node first catches up with the leader's commit index (unless the request
// allows a stale copy), so the backup holds every write acknowledged before
// the request.
func (s *Service) Backup(req *adminpb.BackupRequest, stream grpc.ServerStreamingServer[adminpb.BackupChunk]) error {
	ctx := stream.Context()
	if err := s.mail.Sync(ctx); err != nil && !req.AllowStale {
		return toStatus(fmt.Errorf("backup: catching up with the leader: %w", err))
	}
	b, err := s.cluster.OpenBackup()
	if err != nil {
		return status.Errorf(codes.Unavailable, "admin: backup: %v", err)
	}
	defer b.Close()
	index, term, err := b.Applied()
	if err != nil {
		return status.Errorf(codes.Internal, "admin: backup: %v", err)
	}
	cw := &chunkWriter{send: stream.Send, first: &adminpb.BackupChunk{AppliedIndex: index, AppliedTerm: term, NodeId: s.cluster.Local().Id}}
	if err := b.WriteSnapshot(cw); err != nil {
		return status.Errorf(codes.Aborted, "admin: backup: %v", err)
	}
	if err := cw.flush(); err != nil {
		return err
	}
	digest, err := b.Digest()
	if err != nil {
		return status.Errorf(codes.Internal, "admin: backup: %v", err)
	}
	last := &adminpb.BackupChunk{Done: true, Digest: digest, AppliedIndex: index, AppliedTerm: term}
	if cw.first != nil { // nothing sent yet (cannot happen: a stream has a header)
		last.NodeId = cw.first.NodeId
	}
	return stream.Send(last)
}

// chunkWriter cuts a byte stream into BackupChunk messages; the first one
// carries the index and term.
type chunkWriter struct {
	send  func(*adminpb.BackupChunk) error
	first *adminpb.BackupChunk
	buf   []byte
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), backupChunkBytes-len(c.buf))
		c.buf = append(c.buf, p[:k]...)
		p = p[k:]
		if len(c.buf) == backupChunkBytes {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	msg := &adminpb.BackupChunk{}
	if c.first != nil {
		msg, c.first = c.first, nil
	}
	msg.Data = c.buf
	err := c.send(msg)
	c.buf = make([]byte, 0, backupChunkBytes)
	return err
}

// Check proposes a consistency check and collects every member's digest of
// its state at that index: each replica computes it in the background and
// judges itself (node/integrity.go); this call only watches and reports.
func (s *Service) Check(ctx context.Context, req *adminpb.CheckRequest) (*adminpb.CheckResponse, error) {
	timeout := time.Duration(req.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	index, id, err := s.cluster.ProposeCheck(ctx, "admin")
	if err != nil {
		return nil, toStatus(err)
	}
	out := &adminpb.CheckResponse{Index: index, Id: id}
	for {
		servers, err := s.cluster.Servers()
		if err != nil {
			return nil, toStatus(err)
		}
		out.Nodes = out.Nodes[:0]
		done := true
		for _, sv := range servers {
			cn := &adminpb.CheckNode{Id: sv.ID, Verdict: "unreachable"}
			ictx, icancel := context.WithTimeout(ctx, 2*time.Second)
			info, err := s.cluster.Info(ictx, sv.ID)
			icancel()
			if err == nil {
				cn.Verdict = "pending"
				for _, c := range info.Checks {
					if c.Index == index {
						cn.Digest, cn.Error, cn.Verdict = c.Digest, c.Error, c.Verdict
					}
				}
			}
			if cn.Verdict == "pending" || cn.Verdict == "unreachable" {
				done = false
			}
			out.Nodes = append(out.Nodes, cn)
		}
		sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].Id < out.Nodes[j].Id })
		if done || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	out.Consistent = len(out.Nodes) > 0
	for _, n := range out.Nodes {
		if n.Digest == "" || n.Digest != out.Nodes[0].Digest {
			out.Consistent = false
		}
	}
	out.TookMs = time.Since(start).Milliseconds()
	return out, nil
}

// Reindex drops this node's full-text index and rebuilds it from the
// state in the background (node/search). Not forwarded: the index is
// derived data of each node.
func (s *Service) Reindex(ctx context.Context, req *adminpb.ReindexRequest) (*adminpb.ReindexResponse, error) {
	x := s.mail.Index()
	if x == nil {
		return nil, status.Error(codes.FailedPrecondition, "admin: reindex: this node has no full-text index")
	}
	target, caughtUp, err := x.ReindexAndWait(ctx, time.Duration(req.WaitMs)*time.Millisecond)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "admin: reindex: %v", err)
	}
	return &adminpb.ReindexResponse{Node: s.cluster.Local().GetId(), CaughtUp: caughtUp, AppliedIndex: target, Indexed: x.Stats().Indexed}, nil
}
