package node

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/peer"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// loadIdentity reads the node's TLS material and checks that its
// certificate names this node: a node started with another node's
// certificate would be refused by every peer anyway, but late and unclearly.
func loadIdentity(cfg config.Config) (*identity.Material, error) {
	m, err := identity.Load(cfg.ClusterCA, cfg.NodeCert, cfg.NodeKey)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	c, err := m.Cert.Certificate()
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("node: node-cert: %w", err)
	}
	id, err := identity.FromCertificate(leaf)
	if err != nil {
		return nil, fmt.Errorf("node: node-cert: %w", err)
	}
	if id != (identity.Identity{Role: identity.RoleNode, Name: cfg.ID}) {
		return nil, fmt.Errorf("node: node-cert %s names %s, not node %s", cfg.NodeCert, id, cfg.ID)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.CAs, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("node: node-cert %s is not valid under cluster-ca %s: %w", cfg.NodeCert, cfg.ClusterCA, err)
	}
	return m, nil
}

// Limits of the gRPC servers. A forwarded command carries at most one
// message (SIZE) plus what was parsed from it and its recipients; the
// margin covers those (the same 16 MiB peer.MaxMessageBytes allows over
// 1 GiB).
const (
	grpcMessageMargin        = 16 << 20
	grpcMaxConcurrentStreams = 256
)

// startGRPC starts the two gRPC listeners:
//
//   - grpc: node to node (Peer service), mutual TLS with node certificates;
//     it also answers the two admin calls one node forwards to the leader
//     (TransferLeader, RemoveNode with forwarded set), from members only;
//   - admin: the admin API, mutual TLS with admin certificates.
func (n *Node) startGRPC() error {
	maxMsg := int(n.cfg.MaxMessageBytes) + grpcMessageMargin
	limits := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(peer.MaxMessageBytes),
		grpc.MaxConcurrentStreams(grpcMaxConcurrentStreams),
	}
	peerOpts := append([]grpc.ServerOption{}, limits...)
	adminOpts := append([]grpc.ServerOption{}, limits...)
	if n.identity != nil {
		peerOpts = append(peerOpts, grpc.Creds(credentials.NewTLS(n.identity.ServerConfig(identity.RoleNode, nil))))
		adminOpts = append(adminOpts, grpc.Creds(credentials.NewTLS(n.identity.ServerConfig(identity.RoleAdmin, nil))))
	}
	peerOpts = append(peerOpts, grpc.UnaryInterceptor(n.peerGate), grpc.StreamInterceptor(n.peerStreamGate))
	adminOpts = append(adminOpts, grpc.UnaryInterceptor(n.adminLog))

	n.grpc = grpc.NewServer(peerOpts...)
	ps := peer.NewServer(n.grpc, n.raft, n.cluster, n.propose, n.Info, n.log, n.identity != nil)
	ps.Keys = n.gossipKeys
	ps.Ops = n.cluster
	n.admin = grpc.NewServer(adminOpts...)
	svc := admin.Register(n.admin, n.mail, (*clusterView)(n))
	adminpb.RegisterAdminServer(n.grpc, svc) // behind peerGate

	var err error
	if n.grpcLn, err = net.Listen("tcp", n.cfg.GRPCAddr); err != nil {
		return fmt.Errorf("node: grpc listen: %w", err)
	}
	n.goServe("grpc", func() error { return n.grpc.Serve(n.grpcLn) })
	if n.adminLn, err = net.Listen("tcp", n.cfg.AdminAddr); err != nil {
		return fmt.Errorf("node: admin listen: %w", err)
	}
	n.goServe("admin", func() error { return n.admin.Serve(n.adminLn) })
	return nil
}

var adminServicePrefix = "/" + adminpb.Admin_ServiceDesc.ServiceName + "/"

// errAdminElsewhere answers an admin call on the peer port.
var errAdminElsewhere = status.Error(codes.PermissionDenied, "node: the admin API is served on the admin listener only")

// peerGate lets through the Peer service and refuses every unary call of
// the admin service, which is registered on the peer port only for the
// Import stream (peerStreamGate). A follower passes TransferLeader and
// RemoveNode to the leader as the Peer service's TransferLeader and
// RemoveServer (members only), not as admin calls.
func (n *Node) peerGate(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !strings.HasPrefix(info.FullMethod, adminServicePrefix) {
		return handler(ctx, req)
	}
	return nil, errAdminElsewhere
}

// peerStreamGate lets through the Peer service's streams and, of the admin
// service's, only Import, which a follower passes on whole to the leader
// (node/admin/migrate.go), from a member of the cluster.
func (n *Node) peerStreamGate(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !strings.HasPrefix(info.FullMethod, adminServicePrefix) {
		return handler(srv, ss)
	}
	if info.FullMethod != adminServicePrefix+"Import" {
		return errAdminElsewhere
	}
	if n.identity != nil {
		id, ok := identity.FromContext(ss.Context())
		if !ok || id.Role != identity.RoleNode || !n.raft.IsMember(id.Name) {
			return status.Error(codes.PermissionDenied, "node: forwarded imports are taken from members only")
		}
	}
	return handler(srv, ss)
}

// adminLog records who called which admin method (the TLS layer has
// already refused anything but an admin certificate from the cluster CA).
func (n *Node) adminLog(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	who := "insecure"
	if id, ok := identity.FromContext(ctx); ok {
		who = id.String()
	}
	resp, err := handler(ctx, req)
	n.log.Debug("admin call", "component", "admin", "method", info.FullMethod, "by", who, "code", status.Code(err).String())
	return resp, err
}
