package node_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// outsider is a would-be attacker: how it dials (its TLS, if any).
type outsider struct {
	name string
	tls  *tls.Config // nil: plain TCP
}

func (o outsider) dial(addr string) (net.Conn, error) {
	if o.tls == nil {
		return net.DialTimeout("tcp", addr, 2*time.Second)
	}
	return tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr, o.tls)
}

func (o outsider) creds() credentials.TransportCredentials {
	if o.tls == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(o.tls)
}

// dialStream is a raft.StreamLayer that only dials, the outsider's way.
type dialStream struct {
	o    outsider
	done chan struct{}
}

func (d *dialStream) Dial(a raft.ServerAddress, _ time.Duration) (net.Conn, error) {
	return d.o.dial(string(a))
}
func (d *dialStream) Accept() (net.Conn, error) { <-d.done; return nil, net.ErrClosed }
func (d *dialStream) Close() error {
	select {
	case <-d.done:
	default:
		close(d.done)
	}
	return nil
}
func (d *dialStream) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func raftClient(t *testing.T, o outsider) *raft.NetworkTransport {
	t.Helper()
	tr := raft.NewNetworkTransport(&dialStream{o: o, done: make(chan struct{})}, 1, 3*time.Second, io.Discard)
	t.Cleanup(func() { tr.Close() })
	return tr
}

func header(id, addr string) raft.RPCHeader {
	return raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte(id), Addr: []byte(addr)}
}

// outsiderTLS returns a client TLS configuration presenting cert/key and
// trusting any server (an attacker does not care whom it talks to).
func outsiderTLS(t *testing.T, cert, key string) *tls.Config {
	t.Helper()
	cfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg
}

// TestOutsidersAreRefused is docs/TESTPLAN.md F18 in process: with no certificate,
// with another CA's certificates (named like members), with a valid node
// certificate of a node that is not a member (n4), and with a member's
// certificate claiming to be another member, every Raft RPC, every peer
// RPC that can change or read the cluster and every admin RPC is refused;
// a gossip member without the cluster key can neither join nor make any
// node count a forged login failure (gossipOutsiders).
// The replicated state is the same afterwards, the leader and term have not
// moved, and every node is still running and takes a real write.
func TestOutsidersAreRefused(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	l := c.WaitLeader(10 * time.Second)
	f := (l + 1) % 3
	before := c.WaitConverged(10 * time.Second)
	term := c.Nodes[l].Raft().Term()
	leaderID := c.Cfgs[l].ID

	// Another CA that issues certificates with the cluster's names.
	other := t.TempDir()
	if err := identity.CreateCA(other); err != nil {
		t.Fatal(err)
	}
	on1c, on1k, _ := identity.IssueNode(other, "n1", nil)
	oac, oak, _ := identity.IssueAdmin(other, "test")
	// A genuine node certificate for a node that never joined.
	n4c, n4k, err := identity.IssueNode(c.TLSDir, "n4", nil)
	if err != nil {
		t.Fatal(err)
	}
	n3c, n3k := identity.NodeFiles(c.TLSDir, "n3")

	outsiders := []outsider{
		{"plaintext", nil},
		{"TLS without a certificate", outsiderTLS(t, "", "")},
		{"another CA's n1", outsiderTLS(t, on1c, on1k)},
		{"another CA's admin", outsiderTLS(t, oac, oak)},
		{"non-member n4", outsiderTLS(t, n4c, n4k)},
	}

	ctx := c.Ctx(2 * time.Minute)
	for _, o := range outsiders {
		for i := range c.Nodes {
			target := c.Cfgs[i]
			// Raft: a forged entry that would stop every FSM, a vote that
			// would depose the leader, a snapshot that would replace the state.
			tr := raftClient(t, o)
			var ae raft.AppendEntriesResponse
			last := c.Nodes[i].Raft().LastIndex()
			err := tr.AppendEntries(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), &raft.AppendEntriesRequest{
				RPCHeader: header(leaderID, c.Cfgs[l].RaftAddr), Term: term + 5, PrevLogEntry: last, PrevLogTerm: term,
				Entries:           []*raft.Log{{Index: last + 1, Term: term + 5, Type: raft.LogCommand, Data: []byte{0xff, 0xee, 0xdd}}},
				LeaderCommitIndex: last + 1,
			}, &ae)
			if err == nil {
				t.Errorf("%s: AppendEntries to %s accepted (success=%v)", o.name, target.ID, ae.Success)
			}
			var rv raft.RequestVoteResponse
			err = tr.RequestVote(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), &raft.RequestVoteRequest{
				RPCHeader: header(c.Cfgs[f].ID, c.Cfgs[f].RaftAddr), Term: term + 5, LastLogIndex: last + 100, LastLogTerm: term + 5, LeadershipTransfer: true,
			}, &rv)
			if err == nil {
				t.Errorf("%s: RequestVote to %s accepted (granted=%v)", o.name, target.ID, rv.Granted)
			}
			var is raft.InstallSnapshotResponse
			snap := []byte("not a snapshot")
			err = tr.InstallSnapshot(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), &raft.InstallSnapshotRequest{
				RPCHeader: header(leaderID, c.Cfgs[l].RaftAddr), SnapshotVersion: raft.SnapshotVersionMax, Term: term + 5,
				LastLogIndex: last + 1000, LastLogTerm: term + 5, Size: int64(len(snap)),
				Configuration: []byte{}, ConfigurationIndex: 1,
			}, &is, bytes.NewReader(snap))
			if err == nil {
				t.Errorf("%s: InstallSnapshot to %s accepted (success=%v)", o.name, target.ID, is.Success)
			}
			var tn raft.TimeoutNowResponse
			if err := tr.TimeoutNow(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), &raft.TimeoutNowRequest{RPCHeader: header(leaderID, c.Cfgs[l].RaftAddr)}, &tn); err == nil {
				t.Errorf("%s: TimeoutNow to %s accepted", o.name, target.ID)
			}

			// Peer gRPC.
			pc, err := grpc.NewClient(target.GRPCAddr, grpc.WithTransportCredentials(o.creds()))
			if err != nil {
				t.Fatal(err)
			}
			peer := peerpb.NewPeerClient(pc)
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if _, err := peer.Forward(rctx, &peerpb.ForwardRequest{Command: []byte{0xff, 0xee}}); err == nil {
				t.Errorf("%s: Forward to %s accepted", o.name, target.ID)
			}
			if _, err := peer.ReadIndex(rctx, &peerpb.ReadIndexRequest{}); err == nil {
				t.Errorf("%s: ReadIndex on %s answered", o.name, target.ID)
			}
			for _, fresh := range []bool{false, true} {
				if _, err := peer.Join(rctx, &peerpb.JoinRequest{Id: "n2", RaftAddr: "127.0.0.1:1", Voter: true, Fresh: fresh}); err == nil {
					t.Errorf("%s: Join as n2 (fresh=%v) on %s accepted", o.name, fresh, target.ID)
				}
			}
			if _, err := peer.TransferLeader(rctx, &peerpb.TransferLeaderRequest{To: c.Cfgs[f].ID}); err == nil {
				t.Errorf("%s: peer TransferLeader on %s accepted", o.name, target.ID)
			}
			if _, err := peer.RemoveServer(rctx, &peerpb.RemoveServerRequest{Id: "n2"}); err == nil {
				t.Errorf("%s: peer RemoveServer on %s accepted", o.name, target.ID)
			}
			// The admin API is not on the peer port, whoever asks.
			if _, err := adminpb.NewAdminClient(pc).UserList(rctx, &adminpb.UserListRequest{}); err == nil {
				t.Errorf("%s: admin UserList on %s's peer port answered", o.name, target.ID)
			}
			if _, err := adminpb.NewAdminClient(pc).RemoveNode(rctx, &adminpb.RemoveNodeRequest{Id: "n2", Forwarded: true}); err == nil {
				t.Errorf("%s: forwarded RemoveNode on %s's peer port accepted", o.name, target.ID)
			}
			cancel()
			pc.Close()

			// Every admin RPC on the admin listener.
			ac, err := grpc.NewClient(target.AdminAddr, grpc.WithTransportCredentials(o.creds()))
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range adminpb.Admin_ServiceDesc.Methods {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				err := ac.Invoke(rctx, "/"+adminpb.Admin_ServiceDesc.ServiceName+"/"+m.MethodName, &emptypb.Empty{}, &emptypb.Empty{})
				cancel()
				if err == nil {
					t.Errorf("%s: admin %s on %s answered", o.name, m.MethodName, target.ID)
				}
			}
			for _, sd := range adminpb.Admin_ServiceDesc.Streams {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				st, err := ac.NewStream(rctx, &sd, "/"+adminpb.Admin_ServiceDesc.ServiceName+"/"+sd.StreamName)
				if err == nil {
					if err = st.SendMsg(&emptypb.Empty{}); err == nil {
						st.CloseSend()
						err = st.RecvMsg(&adminpb.BackupChunk{})
					}
				}
				cancel()
				if err == nil {
					t.Errorf("%s: admin stream %s on %s answered", o.name, sd.StreamName, target.ID)
				}
			}
			ac.Close()
		}
	}

	// A member's certificate that claims to be another member: n3's
	// certificate presenting RPCs as n2. The same RPC as itself is answered
	// (a harmless stale-term vote request), so the refusal is the claim's.
	n3 := outsider{"member n3", outsiderTLS(t, n3c, n3k)}
	target := c.Cfgs[0]
	if target.ID == "n3" || target.ID == "n2" {
		t.Fatal("test expects node 0 to be n1")
	}
	var rv raft.RequestVoteResponse
	stale := &raft.RequestVoteRequest{RPCHeader: header("n3", c.Cfgs[2].RaftAddr), Term: 0, LastLogIndex: 0, LastLogTerm: 0}
	if err := raftClient(t, n3).RequestVote(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), stale, &rv); err != nil {
		t.Fatalf("control: n3's stale vote request as itself: %v", err)
	}
	if rv.Granted {
		t.Fatal("control: a stale-term vote was granted")
	}
	stale.RPCHeader = header("n2", c.Cfgs[1].RaftAddr)
	if err := raftClient(t, n3).RequestVote(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), stale, &rv); err == nil {
		t.Error("n3's certificate claiming n2: RequestVote accepted")
	}
	var ae raft.AppendEntriesResponse
	if err := raftClient(t, n3).AppendEntries(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), &raft.AppendEntriesRequest{
		RPCHeader: header("n2", c.Cfgs[1].RaftAddr), Term: 0}, &ae); err == nil {
		t.Error("n3's certificate claiming n2: AppendEntries accepted")
	}
	pc, err := grpc.NewClient(target.GRPCAddr, grpc.WithTransportCredentials(n3.creds()))
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := peerpb.NewPeerClient(pc).Join(ctx, &peerpb.JoinRequest{Id: "n2", RaftAddr: "127.0.0.1:1", Fresh: true}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("n3's certificate joining as n2 (fresh): %v, want PermissionDenied", err)
	}
	// Not even a member's certificate gets admin calls on the peer port
	// (a follower passes RemoveNode and TransferLeader on as peer calls).
	pcl, err := grpc.NewClient(c.Cfgs[l].GRPCAddr, grpc.WithTransportCredentials(n3.creds()))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	if _, err := adminpb.NewAdminClient(pcl).RemoveNode(ctx, &adminpb.RemoveNodeRequest{Id: "n2", Forwarded: true}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("member n3: forwarded admin RemoveNode on the leader's peer port: %v, want PermissionDenied", err)
	}
	if _, err := adminpb.NewAdminClient(pcl).TransferLeader(ctx, &adminpb.TransferLeaderRequest{Forwarded: true}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("member n3: forwarded admin TransferLeader on the leader's peer port: %v, want PermissionDenied", err)
	}
	// n4's certificate claiming n2 on every peer call that names an ID,
	// and on Raft (the same stale vote request n3 got answered as itself).
	n4 := outsider{"n4", outsiderTLS(t, n4c, n4k)}
	stale.RPCHeader = header("n2", c.Cfgs[1].RaftAddr)
	if err := raftClient(t, n4).RequestVote(raft.ServerID(target.ID), raft.ServerAddress(target.RaftAddr), stale, &rv); err == nil {
		t.Error("n4's certificate claiming n2: RequestVote accepted")
	}
	pc4, err := grpc.NewClient(c.Cfgs[l].GRPCAddr, grpc.WithTransportCredentials(n4.creds()))
	if err != nil {
		t.Fatal(err)
	}
	defer pc4.Close()
	if _, err := peerpb.NewPeerClient(pc4).Join(ctx, &peerpb.JoinRequest{Id: "n2", RaftAddr: c.Cfgs[1].RaftAddr, Voter: true, Fresh: true}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("n4's certificate joining as n2 at the leader: %v, want PermissionDenied", err)
	}

	gossipOutsiders(t, c)

	// Nothing changed; everyone is still there.
	after := c.WaitConverged(10 * time.Second)
	if !bytes.Equal(before, after) {
		t.Fatalf("state digest changed: %x -> %x", before, after)
	}
	if nl := c.Leader(); nl != l || c.Nodes[l].Raft().Term() != term {
		t.Errorf("leadership moved: leader %d term %d, was %d term %d", nl, c.Nodes[l].Raft().Term(), l, term)
	}
	servers, err := c.Nodes[l].Raft().Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("configuration now %v (%v), want the three members", servers, err)
	}
	for i, n := range c.Nodes {
		if st := n.Raft().State(); strings.EqualFold(st, "shutdown") {
			t.Errorf("node %d is %s", i, st)
		}
	}
	if _, err := c.Admin(f).DomainAdd(ctx, &adminpb.DomainAddRequest{Name: "after.test"}); err != nil {
		t.Fatalf("a real admin write after the attempts: %v", err)
	}
	if d := c.WaitConverged(10 * time.Second); bytes.Equal(d, before) {
		t.Fatal("a real write did not change the digest")
	}
}

// gossipOutsiders: a memberlist without the cluster key tries to join every
// node's gossip pool and sends each a forged login-throttle message (the
// one gossip message kind that changes what a node does: it would lock an
// address out). Neither is taken. The control: the same message sent with
// the cluster key is counted, so the refusal is the key's.
func gossipOutsiders(t *testing.T, c *nodetest.Cluster) {
	t.Helper()
	var addrs []string
	for _, cfg := range c.Cfgs {
		addrs = append(addrs, cfg.GossipAddr)
	}
	const victim = "203.0.113.9"
	forged := []byte(`L{"o":"n7","a":"` + victim + `","n":1000}`)
	start := func(name string, key []byte) *memberlist.Memberlist {
		mc := memberlist.DefaultLocalConfig()
		mc.Name, mc.BindAddr, mc.BindPort, mc.AdvertisePort = name, "127.0.0.1", 0, 0
		mc.LogOutput = io.Discard
		if key != nil {
			mc.SecretKey = key
		}
		ml, err := memberlist.Create(mc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ml.Shutdown() })
		return ml
	}
	send := func(ml *memberlist.Memberlist) {
		for _, a := range addrs {
			if err := ml.SendToAddress(memberlist.Address{Addr: a, Name: ""}, forged); err != nil {
				t.Fatalf("sending to %s: %v", a, err)
			}
		}
	}
	keyless := start("n9", nil)
	if n, err := keyless.Join(addrs); err == nil && n > 0 {
		t.Errorf("a gossip member without the key joined %d nodes", n)
	}
	send(keyless)
	// Refusal is silence: watch a bounded window for the join or the
	// count to show up anywhere.
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) {
		for i, nd := range c.Nodes {
			for _, m := range nd.Members() {
				if m.ID == "n9" {
					t.Fatalf("node %d lists the keyless gossip member", i)
				}
			}
			if n := nd.Logins().Failures(victim); n != 0 {
				t.Fatalf("node %d took a forged, unkeyed throttle message (%d failures)", i, n)
			}
		}
		time.Sleep(50 * time.Millisecond) // sampling a bounded window
	}
	// Control: with the key, the same datagram is taken.
	keyText, err := os.ReadFile(identity.GossipKeyFile(c.TLSDir))
	if err != nil {
		t.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(keyText)))
	if err != nil {
		t.Fatal(err)
	}
	send(start("n8", key))
	c.Eventually(10*time.Second, "the keyed control message counted on every node", func() bool {
		for _, nd := range c.Nodes {
			if nd.Logins().Failures(victim) == 0 {
				return false
			}
		}
		return true
	})
}
