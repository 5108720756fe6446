package nodetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// Cluster is a set of in-process nodes.
type Cluster struct {
	t     testing.TB
	Dir   string
	Nodes []*node.Node // nil while a node is stopped
	Cfgs  []config.Config
	Net   *Network
	opts  Options
	logs  []*lockedBuffer
	disks []*diskFault
	// started[i] is set once node i has run: its addresses are then in
	// the Raft configuration and must not change.
	started []bool
	// TLSDir holds the cluster CA, the node certificates, the admin
	// certificate "test" and the gossip key (empty when Insecure).
	TLSDir  string
	adminMu sync.Mutex
	admins  map[int]*grpc.ClientConn
}

// Options tune a cluster.
type Options struct {
	Nodes             int
	SnapshotThreshold uint64
	TrailingLogs      uint64
	NoSync            bool
	// NoJournal turns the archive journal off on every node (benchmarks).
	NoJournal bool
	// Protocols starts SMTP, LMTP and IMAP listeners on every node.
	Protocols bool
	// BootstrapExpect starts every node at once with --bootstrap-expect
	// Nodes and a join list of all the others, instead of node 0
	// bootstrapping alone and the others joining it.
	BootstrapExpect bool
	// Configure, when set, edits each node's configuration before start.
	Configure func(i int, c *config.Config)
	// Insecure runs the cluster with insecure-dev: no TLS material, no
	// gossip key (plaintext Raft, peer and admin traffic). By default a
	// cluster has its own CA (TLSDir), a certificate per node, an admin
	// certificate and a gossip key.
	Insecure bool
}

// handedOut is every port FreeAddr returned in this process: it never
// returns one twice. A cluster's configurations are all made before its
// first node binds anything, so a check for "free right now" alone let two
// addresses of one cluster coincide (about one cluster start in a hundred);
// when n1 and n2 drew the same gossip port, n2's retry pointed the join
// lists at itself and the cluster never formed (TestImportLargeMessage in
// the CI run of 2026-12-02).
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreeAddr returns a loopback address with a port free right now and never
// returned before in this process. Ports come from 20000–32767, below
// Linux's ephemeral range, so an outgoing connection cannot take a port
// between this check and the node's bind (a race "127.0.0.1:0" loses under
// a busy test run); other test processes choose at random, so they rarely
// collide, and Start retries when they do.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for i := 0; i < 200; i++ {
		port := 20000 + rand.IntN(12768)
		if handedOut.ports[port] {
			continue
		}
		handedOut.ports[port] = true
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatal("nodetest: no free port in 20000-32767")
	return ""
}

// freeUDPTCP returns a port free for both TCP and UDP (memberlist binds
// both).
func freeUDPTCP(t testing.TB) string {
	for i := 0; i < 50; i++ {
		a := FreeAddr(t)
		u, err := net.ListenPacket("udp", a)
		if err == nil {
			u.Close()
			return a
		}
	}
	t.Fatal("no free port for gossip")
	return ""
}

// Start starts a cluster: node 0 bootstraps, the others join through it;
// it returns once every node is a voter and a leader is elected.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	c := &Cluster{t: t, Dir: t.TempDir(), Net: NewNetwork(), opts: opts, admins: map[int]*grpc.ClientConn{}}
	if !opts.Insecure {
		c.TLSDir = filepath.Join(c.Dir, "tls")
		if err := identity.CreateCA(c.TLSDir); err != nil {
			t.Fatal(err)
		}
		if _, _, err := identity.IssueAdmin(c.TLSDir, "test"); err != nil {
			t.Fatal(err)
		}
		if err := identity.WriteGossipKey(identity.GossipKeyFile(c.TLSDir)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < opts.Nodes; i++ {
		cfg := c.newConfig(i, string(rune('a'+i)))
		switch {
		case opts.BootstrapExpect:
			cfg.BootstrapExpect = opts.Nodes
		case i == 0:
			cfg.Bootstrap = true
		default:
			cfg.Join = []string{c.Cfgs[0].GossipAddr}
		}
		if opts.Configure != nil {
			opts.Configure(i, &cfg)
		}
		c.Cfgs = append(c.Cfgs, cfg)
		c.Nodes = append(c.Nodes, nil)
		c.logs = append(c.logs, &lockedBuffer{})
		c.disks = append(c.disks, &diskFault{})
		c.started = append(c.started, false)
	}
	if opts.BootstrapExpect {
		for i := range c.Cfgs {
			for j := range c.Cfgs {
				if j != i {
					c.Cfgs[i].Join = append(c.Cfgs[i].Join, c.Cfgs[j].GossipAddr)
				}
			}
		}
	}
	t.Cleanup(c.Close)
	for i := range c.Cfgs {
		c.StartNode(i)
		if i == 0 && !opts.BootstrapExpect {
			c.WaitLeader(10 * time.Second)
		}
	}
	c.WaitVoters(opts.Nodes, 30*time.Second)
	return c
}

// newConfig returns node i's configuration: ID n<i+1>, fresh loopback ports.
func (c *Cluster) newConfig(i int, site string) config.Config {
	t := c.t
	cfg := config.Defaults()
	cfg.ID = fmt.Sprintf("n%d", i+1)
	cfg.Site = site
	cfg.DataDir = filepath.Join(c.Dir, cfg.ID)
	cfg.Hostname = cfg.ID + ".example.test"
	cfg.RaftAddr = FreeAddr(t)
	cfg.GRPCAddr = FreeAddr(t)
	cfg.GossipAddr = freeUDPTCP(t)
	cfg.HTTPAddr = FreeAddr(t)
	cfg.AdminAddr = FreeAddr(t)
	if c.opts.Insecure {
		cfg.InsecureDev = true
	} else {
		cert, key, err := identity.IssueNode(c.TLSDir, cfg.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg.ClusterCA, _ = identity.CAFiles(c.TLSDir)
		cfg.NodeCert, cfg.NodeKey = cert, key
		cfg.ClusterKeyFile = identity.GossipKeyFile(c.TLSDir)
	}
	if c.opts.Protocols {
		cfg.SMTPAddr = FreeAddr(t)
		cfg.LMTPAddr = FreeAddr(t)
		cfg.IMAPAddr = FreeAddr(t)
	}
	cfg.RaftProfile = "local"
	cfg.Dev = true
	cfg.ApplyTimeout = config.Duration{Duration: 5 * time.Second}
	return cfg
}

// AddNode starts a new node at site that joins through every running
// node's gossip address; edit, when set, changes its configuration first.
// It returns the node's index; it does not wait for it to become a voter.
func (c *Cluster) AddNode(site string, edit func(*config.Config)) int {
	c.t.Helper()
	i := len(c.Cfgs)
	cfg := c.newConfig(i, site)
	for j, n := range c.Nodes {
		if n != nil {
			cfg.Join = append(cfg.Join, c.Cfgs[j].GossipAddr)
		}
	}
	if edit != nil {
		edit(&cfg)
	}
	c.Cfgs = append(c.Cfgs, cfg)
	c.Nodes = append(c.Nodes, nil)
	c.logs = append(c.logs, &lockedBuffer{})
	c.disks = append(c.disks, &diskFault{})
	c.started = append(c.started, false)
	c.StartNode(i)
	return i
}

// IDs returns every node's ID (running or not).
func (c *Cluster) IDs() []string {
	ids := make([]string, len(c.Cfgs))
	for i, cfg := range c.Cfgs {
		ids[i] = cfg.ID
	}
	return ids
}

// StartNode (re)starts node i with its configuration and data directory.
func (c *Cluster) StartNode(i int) {
	c.t.Helper()
	if c.Nodes[i] != nil {
		c.t.Fatalf("node %d is running", i)
	}
	log := slog.New(slog.NewTextHandler(c.logs[i], &slog.HandlerOptions{Level: slog.LevelDebug}))
	var n *node.Node
	var err error
	for attempt := 0; ; attempt++ {
		n, err = node.New(c.Cfgs[i], node.Options{
			Logger:            log,
			RaftDial:          c.Net.Dialer(c.Cfgs[i].ID),
			RaftWrapListener:  c.Net.Listener(c.Cfgs[i].ID),
			RaftWrapLogStore:  c.wrapLogStore(i),
			SnapshotThreshold: c.opts.SnapshotThreshold,
			TrailingLogs:      c.opts.TrailingLogs,
			NoSync:            c.opts.NoSync,
			NoJournal:         c.opts.NoJournal,
		})
		// A port taken between FreeAddr and the bind (another process on
		// the machine) is not the node's fault: a node that never ran
		// gets fresh ports and an empty directory, and tries again.
		if err == nil || c.started[i] || attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		c.t.Logf("start %s: %v; retrying on other ports", c.Cfgs[i].ID, err)
		c.reassignPorts(i)
	}
	if err != nil {
		c.t.Fatalf("start %s: %v", c.Cfgs[i].ID, err)
	}
	c.started[i] = true
	c.Net.Register(c.Cfgs[i].ID, c.Cfgs[i].RaftAddr)
	c.Nodes[i] = n
}

// reassignPorts gives node i new addresses (and an empty data directory),
// and points the others' join lists at its new gossip address.
func (c *Cluster) reassignPorts(i int) {
	cfg := &c.Cfgs[i]
	oldGossip := cfg.GossipAddr
	os.RemoveAll(cfg.DataDir)
	cfg.RaftAddr, cfg.GRPCAddr, cfg.GossipAddr, cfg.HTTPAddr = FreeAddr(c.t), FreeAddr(c.t), freeUDPTCP(c.t), FreeAddr(c.t)
	cfg.AdminAddr = FreeAddr(c.t)
	if cfg.SMTPAddr != "" {
		cfg.SMTPAddr, cfg.LMTPAddr, cfg.IMAPAddr = FreeAddr(c.t), FreeAddr(c.t), FreeAddr(c.t)
	}
	for j := range c.Cfgs {
		for k, a := range c.Cfgs[j].Join {
			if a == oldGossip {
				c.Cfgs[j].Join[k] = cfg.GossipAddr
			}
		}
	}
}

// StopNode closes node i (a clean stop; a crash is the same from the
// others' point of view, and Pebble and the log are synced per write).
func (c *Cluster) StopNode(i int) {
	if c.Nodes[i] == nil {
		return
	}
	c.Nodes[i].Close()
	c.Nodes[i] = nil
}

// Leader returns the index of the node that is leader, or -1.
func (c *Cluster) Leader() int {
	for i, n := range c.Nodes {
		if n != nil && n.Raft().IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader polls until some running node is leader.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.t.Helper()
	var l int
	c.Eventually(timeout, "a leader", func() bool { l = c.Leader(); return l >= 0 })
	return l
}

// WaitVoters polls until the leader's configuration has n voters.
func (c *Cluster) WaitVoters(n int, timeout time.Duration) {
	c.t.Helper()
	c.eventuallyWhy(timeout, fmt.Sprintf("%d voters", n), func() (bool, string) {
		l := c.Leader()
		if l < 0 {
			return false, "no leader; " + c.gossipViews()
		}
		servers, err := c.Nodes[l].Raft().Servers()
		if err != nil {
			return false, err.Error()
		}
		v := 0
		var desc []string
		for _, s := range servers {
			if s.Suffrage == 0 {
				v++
			}
			desc = append(desc, fmt.Sprintf("%s(%s)", s.ID, s.Suffrage))
		}
		return v == n, fmt.Sprintf("leader %s has %v; %s", c.Cfgs[l].ID, desc, c.gossipViews())
	})
}

// gossipViews describes which members each running node sees alive.
func (c *Cluster) gossipViews() string {
	var out []string
	for i, n := range c.Nodes {
		if n == nil {
			continue
		}
		var alive []string
		for _, m := range n.Members() {
			if m.Alive {
				alive = append(alive, m.ID)
			}
		}
		out = append(out, fmt.Sprintf("%s sees %v", c.Cfgs[i].ID, alive))
	}
	return "gossip: " + strings.Join(out, ", ")
}

// WaitApplied polls until every running node has applied at least index.
func (c *Cluster) WaitApplied(index uint64, timeout time.Duration) {
	c.t.Helper()
	c.Eventually(timeout, fmt.Sprintf("every node applied %d", index), func() bool {
		for _, n := range c.Nodes {
			if n != nil && n.FSM().AppliedIndex() < index {
				return false
			}
		}
		return true
	})
}

// WaitConverged polls until every running node has applied the same index
// and their state digests are equal; it returns the digest.
func (c *Cluster) WaitConverged(timeout time.Duration) []byte {
	c.t.Helper()
	var digest []byte
	c.eventuallyWhy(timeout, "replicas equal", func() (bool, string) {
		digest = nil
		var idx uint64
		for i, n := range c.Nodes {
			if n == nil {
				continue
			}
			a := n.FSM().AppliedIndex()
			d, err := n.DB().Digest()
			if err != nil {
				return false, err.Error()
			}
			if digest == nil {
				digest, idx = d, a
				continue
			}
			if a != idx {
				return false, fmt.Sprintf("node %d applied %d, others %d", i, a, idx)
			}
			if !bytes.Equal(d, digest) {
				return false, fmt.Sprintf("node %d digest differs at index %d", i, a)
			}
		}
		return true, ""
	})
	return digest
}

// Eventually polls cond every 20 ms until it holds or timeout passes.
func (c *Cluster) Eventually(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	c.eventuallyWhy(timeout, what, func() (bool, string) { return cond(), "" })
}

// eventuallyWhy is Eventually for a condition that says why it does not
// hold yet; a timeout reports the last reason.
func (c *Cluster) eventuallyWhy(timeout time.Duration, what string, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			if why != "" {
				why = ": " + why
			}
			c.t.Fatalf("timed out after %v waiting for %s%s", timeout, what, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DumpLogs writes every node's log to a new directory under $TMPDIR and
// says where; Close calls it when the test failed.
func (c *Cluster) DumpLogs() {
	// Not under t.TempDir: the testing package removes that even when the
	// test fails, and the logs are for reading afterwards.
	dir, err := os.MkdirTemp("", "continuum-"+strings.ReplaceAll(c.t.Name(), "/", "_")+"-logs-")
	if err != nil {
		c.t.Logf("cannot save node logs: %v", err)
		return
	}
	for i, l := range c.logs {
		b := l.Bytes()
		os.WriteFile(filepath.Join(dir, c.Cfgs[i].ID+".log"), b, 0o640)
		// A CI machine is gone with its /tmp: the last warnings and
		// errors go to the test output too.
		var bad []string
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") {
				if len(line) > 300 {
					line = line[:300] + "…"
				}
				bad = append(bad, line)
			}
		}
		if len(bad) > 8 {
			bad = bad[len(bad)-8:]
		}
		if len(bad) > 0 {
			c.t.Logf("%s's last warnings:\n\t%s", c.Cfgs[i].ID, strings.Join(bad, "\n\t"))
		}
	}
	c.t.Logf("node logs saved in %s", dir)
}

// Ctx returns a context with a timeout, canceled at test end.
func (c *Cluster) Ctx(timeout time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	c.t.Cleanup(cancel)
	return ctx
}

// AdminCredentials are the transport credentials of the admin
// certificate "test" (insecure ones when the cluster is).
func (c *Cluster) AdminCredentials() credentials.TransportCredentials {
	c.t.Helper()
	if c.TLSDir == "" {
		return insecure.NewCredentials()
	}
	ca, _ := identity.CAFiles(c.TLSDir)
	cert, key := identity.AdminFiles(c.TLSDir, "test")
	m, err := identity.Load(ca, cert, key)
	if err != nil {
		c.t.Fatal(err)
	}
	return credentials.NewTLS(m.ClientConfig(nil))
}

// Admin returns an admin API client for node i's admin listener, with the
// admin certificate "test".
func (c *Cluster) Admin(i int) adminpb.AdminClient {
	c.t.Helper()
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	cc, ok := c.admins[i]
	if !ok {
		var err error
		cc, err = grpc.NewClient(c.Cfgs[i].AdminAddr, grpc.WithTransportCredentials(c.AdminCredentials()))
		if err != nil {
			c.t.Fatal(err)
		}
		c.admins[i] = cc
	}
	return adminpb.NewAdminClient(cc)
}

// Close stops every node; a failed test keeps their logs.
func (c *Cluster) Close() {
	for _, cc := range c.admins {
		cc.Close()
	}
	if c.t.Failed() {
		c.DumpLogs()
	}
	// The followers first, together, then the leader: a node leaving gossip
	// waits (up to a second, node.Close) until its leave message has gone
	// out to a live member, and when every node leaves at once the last one
	// finds nobody to take it and waits the whole second, in every test.
	l := c.Leader()
	var wg sync.WaitGroup
	for i := range c.Nodes {
		if i == l {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.StopNode(i) }()
	}
	wg.Wait()
	if l >= 0 {
		c.StopNode(l)
	}
	c.Net.Close()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 64<<20 {
		return len(p), nil
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.b.Bytes()...)
}

var _ io.Writer = (*lockedBuffer)(nil)
