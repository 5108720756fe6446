package clustertest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// Fixed ports: every node is its own host, so they never collide.
const (
	PortSMTP   = 2525
	PortIMAP   = 1143
	PortHTTP   = 8080
	PortGRPC   = 7090
	PortRaft   = 7091
	PortAdmin  = 7093
	PortGossip = 7092
)

// Domain is the mail domain every cluster serves.
const Domain = "example.test"

// ElectionTimeout and Heartbeat are the "local" Raft profile's
// (node/consensus), which every cluster here runs.
const (
	ElectionTimeout = 400 * time.Millisecond
	Heartbeat       = 400 * time.Millisecond
)

var builds struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// Binary builds cmd/continuum once per test binary and set of build tags
// and returns its path.
func Binary(t testing.TB, tags string) string {
	t.Helper()
	builds.Lock()
	defer builds.Unlock()
	if p, ok := builds.bins[tags]; ok {
		return p
	}
	if builds.dir == "" {
		d, err := os.MkdirTemp("", "clustertest-bin-")
		if err != nil {
			t.Fatal(err)
		}
		builds.dir, builds.bins = d, map[string]string{}
	}
	// CONTINUUM_CLUSTERTEST_SRC builds from another checkout of the module
	// (for instance one carrying a planted fault's hook).
	root := os.Getenv("CONTINUUM_CLUSTERTEST_SRC")
	if root == "" {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			t.Fatalf("clustertest: go env GOMOD: %v", err)
		}
		root = filepath.Dir(strings.TrimSpace(string(out)))
	}
	p := filepath.Join(builds.dir, "continuum"+strings.ReplaceAll(tags, ",", "-"))
	args := []string{"build", "-o", p}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, "./cmd/continuum")...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("clustertest: go %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	builds.bins[tags] = p
	return p
}

// RemoveBinaries deletes what Binary built; TestMain calls it.
func RemoveBinaries() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
	}
}

// Options configure a Cluster.
type Options struct {
	Nodes int    // 3 when 0
	Tags  string // build tags of the continuum binary
	// Users are local parts of the users created in Domain.
	Users []string
	// ApplyTimeout is each node's --apply-timeout (5 s when 0).
	ApplyTimeout time.Duration
	// ExtraArgs are appended to every node's serve command line (for
	// instance --raft-snapshot-threshold).
	ExtraArgs []string
	// IMAP gives every node a self-signed certificate (--tls-cert,
	// --tls-key): a password may cross a non-loopback connection only
	// after STARTTLS, and the test reaches the nodes over the bridge.
	IMAP bool
	// NodeEnv, when set, returns extra environment variables (KEY=value)
	// for node i's process, on top of the test's own environment: a
	// planted fault that must fire on one node only is switched on this
	// way (the state machine never reads its node's identity).
	NodeEnv func(i int) []string
	// Start is how many nodes Start starts (all when 0); the others are
	// started later with StartNode. Voters is how many voters Start waits
	// for (Start's count when 0). NodeArgs, when set, adds to node i's
	// serve command line (for instance --role archive).
	Start, Voters int
	NodeArgs      func(i int) []string
	// CPUs, when set, returns the CPUs node i runs on, as a cpuset list
	// ("0", "1", "0-1"; "" for no confinement): nodes with the same list
	// share one cgroup (cpuset.go).
	CPUs func(i int) string
}

// Node is one continuum serve process in its own namespace.
type Node struct {
	Index   int
	ID      string
	NS      string
	IP      string
	DataDir string
	LogPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process has exited
	paused bool
	starts int
}

// Addr returns the node's address on port.
func (n *Node) Addr(port int) string { return fmt.Sprintf("%s:%d", n.IP, port) }

// Cluster is a set of real continuum processes, one per namespace.
type Cluster struct {
	t      testing.TB
	Bin    string
	Dir    string // data directories, logs, history; kept when the test fails
	Net    *Net
	Nodes  []*Node
	Users  []string // full addresses
	opts   Options
	events *eventLog
	mu     sync.Mutex
	// hungStops counts nodes that did not exit within StopTimeout of SIGTERM.
	hungStops int
	// retired nodes are gone for good (Retire).
	retired map[int]bool
	cpus    cpuGroups // Options.CPUs
	// workloads counts StartWorkload calls: message IDs must be unique
	// across every workload of one test (workload.go, sender).
	workloads int

	adminMu sync.Mutex
	admin   map[int]*grpc.ClientConn
	http    *http.Client

	tlsCert, tlsKey string // PEM files, when Options.IMAP
	// TLSDir holds the cluster CA, every node's certificate (its bridge IP
	// and loopback), the admin certificate "test" and the gossip key: the
	// nodes run secure, as in production.
	TLSDir string
}

// Start builds the binary, creates the namespaces, starts every node (node
// 0 bootstraps, the others join through it), waits for a leader and every
// voter, and creates Domain and the users.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	requireRoot(t)
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.ApplyTimeout == 0 {
		opts.ApplyTimeout = 5 * time.Second
	}
	bin := Binary(t, opts.Tags)
	dir, err := os.MkdirTemp("", "clustertest-"+sanitize(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir is removed even when the test fails; this directory is
	// kept then, with the node logs, data and history, and its path printed.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("CONTINUUM_CLUSTERTEST_KEEP") != "" {
			t.Logf("clustertest: node logs, data directories and history kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	c := &Cluster{t: t, Bin: bin, Dir: dir, opts: opts, admin: map[int]*grpc.ClientConn{},
		events: &eventLog{t0: time.Now()},
		http:   &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}}
	if opts.IMAP {
		c.tlsCert, c.tlsKey = writeSelfSignedCert(t, dir)
	}
	c.Net = NewNet(t, opts.Nodes) // its cleanup runs after the nodes' (LIFO)
	c.TLSDir = filepath.Join(dir, "tls")
	if err := identity.CreateCA(c.TLSDir); err != nil {
		t.Fatal(err)
	}
	if _, _, err := identity.IssueAdmin(c.TLSDir, "test"); err != nil {
		t.Fatal(err)
	}
	if err := identity.WriteGossipKey(identity.GossipKeyFile(c.TLSDir)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < opts.Nodes; i++ {
		if _, _, err := identity.IssueNode(c.TLSDir, fmt.Sprintf("n%d", i+1), []string{c.Net.IPs[i], "127.0.0.1", "localhost"}); err != nil {
			t.Fatal(err)
		}
	}
	// Cleanups run last first: the nodes die, then their cgroups go.
	t.Cleanup(func() {
		if err := c.cpus.remove(); err != nil {
			t.Logf("clustertest: cleanup: %v", err)
		}
	})
	t.Cleanup(c.killAll)
	for i := 0; i < opts.Nodes; i++ {
		n := &Node{Index: i, ID: fmt.Sprintf("n%d", i+1), NS: c.Net.NS[i], IP: c.Net.IPs[i],
			DataDir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), LogPath: filepath.Join(dir, fmt.Sprintf("n%d.log", i+1))}
		c.Nodes = append(c.Nodes, n)
	}
	for _, u := range opts.Users {
		c.Users = append(c.Users, u+"@"+Domain)
	}
	starts, voters := opts.Nodes, opts.Voters
	if opts.Start > 0 {
		starts = opts.Start
	}
	if voters == 0 {
		voters = starts
	}
	for i := range c.Nodes[:starts] {
		c.StartNode(i)
		if i == 0 {
			c.WaitLeader(30 * time.Second)
		}
	}
	c.WaitVoters(voters, 60*time.Second)
	c.setup()
	return c
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// StartNode starts node i's process on its data directory. Node 0
// bootstraps on its first start only; every other start joins through the
// other nodes' gossip addresses.
func (c *Cluster) StartNode(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			c.t.Fatalf("clustertest: start %s: already running", n.ID)
		}
	}
	args := []string{"netns", "exec", n.NS, c.Bin, "serve",
		"--id", n.ID, "--site", fmt.Sprintf("site%d", i+1), "--data", n.DataDir,
		"--hostname", n.ID + "." + Domain,
		"--smtp", n.Addr(PortSMTP), "--lmtp", "", "--imap", n.Addr(PortIMAP), "--http", n.Addr(PortHTTP),
		"--grpc", n.Addr(PortGRPC), "--raft", n.Addr(PortRaft), "--gossip", n.Addr(PortGossip),
		"--raft-profile", "local", "--apply-timeout", c.opts.ApplyTimeout.String(),
		"--admin", n.Addr(PortAdmin), "--cluster-key-file", identity.GossipKeyFile(c.TLSDir)}
	caFile, _ := identity.CAFiles(c.TLSDir)
	nodeCert, nodeKey := identity.NodeFiles(c.TLSDir, n.ID)
	args = append(args, "--cluster-ca", caFile, "--node-cert", nodeCert, "--node-key", nodeKey)
	if c.tlsCert != "" {
		args = append(args, "--tls-cert", c.tlsCert, "--tls-key", c.tlsKey)
	}
	args = append(args, c.opts.ExtraArgs...)
	if c.opts.NodeArgs != nil {
		args = append(args, c.opts.NodeArgs(i)...)
	}
	if i == 0 && n.starts == 0 {
		args = append(args, "--bootstrap")
	} else {
		var join []string
		for _, m := range c.Nodes {
			if m != n {
				join = append(join, m.Addr(PortGossip))
			}
		}
		args = append(args, "--join", strings.Join(join, ","))
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== clustertest: start %d of %s at %s: ip %s\n", n.starts+1, n.ID, time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if c.opts.NodeEnv != nil {
		if env := c.opts.NodeEnv(i); len(env) > 0 {
			cmd.Env = append(os.Environ(), env...)
			fmt.Fprintf(logf, "=== clustertest: environment of %s adds %s\n", n.ID, strings.Join(env, " "))
		}
	}
	// ip netns exec execs the binary, so the pid is the node's. Pdeathsig
	// takes the node down with a test binary that dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatalf("clustertest: start %s: %v", n.ID, err)
	}
	logf.Close()
	if c.opts.CPUs != nil {
		if cpus := c.opts.CPUs(i); cpus != "" {
			if err := c.cpus.confine(cmd.Process.Pid, cpus); err != nil {
				cmd.Process.Kill()
				cmd.Wait()
				c.t.Fatalf("clustertest: start %s: %v", n.ID, err)
			}
		}
	}
	done := make(chan struct{})
	n.cmd, n.done, n.paused = cmd, done, false
	n.starts++
	c.events.add("start", i, "")
	go func() {
		err := cmd.Wait()
		c.events.add("exit", i, fmt.Sprint(err))
		close(done)
	}()
}

// Running reports whether node i's process is alive (paused counts).
func (c *Cluster) Running(i int) bool {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Paused reports whether node i is stopped by SIGSTOP.
func (c *Cluster) Paused(i int) bool {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.paused
}

func (c *Cluster) signal(i int, sig syscall.Signal) {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		n.cmd.Process.Signal(sig)
		switch sig {
		case syscall.SIGSTOP:
			n.paused = true
		case syscall.SIGCONT, syscall.SIGKILL:
			n.paused = false
		}
	}
}

func (c *Cluster) wait(i int, timeout time.Duration) bool {
	n := c.Nodes[i]
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Kill sends SIGKILL to node i and waits for it to exit.
func (c *Cluster) Kill(i int) {
	c.t.Helper()
	c.events.add("kill", i, "")
	c.signal(i, syscall.SIGKILL)
	if !c.wait(i, 30*time.Second) {
		c.t.Fatalf("clustertest: %s did not exit after SIGKILL", c.Nodes[i].ID)
	}
}

// Pause stops node i with SIGSTOP; Resume continues it.
//
// Pause returns once every thread of the process is stopped (or after 2 s),
// so that a caller's "stopped from" time taken after it is a time at which
// the node could no longer read or answer anything: SIGSTOP is delivered
// asynchronously, and a node may still act for a moment after kill(2)
// returns.
func (c *Cluster) Pause(i int) {
	c.signal(i, syscall.SIGSTOP)
	c.waitStopped(i, 2*time.Second)
	c.events.add("pause", i, "")
}

// waitStopped waits until every thread of node i's process is in the
// stopped state ('T' or 't' in /proc/PID/task/TID/stat), or timeout.
func (c *Cluster) waitStopped(i int, timeout time.Duration) bool {
	n := c.Nodes[i]
	n.mu.Lock()
	var pid int
	if n.cmd != nil && n.cmd.Process != nil {
		pid = n.cmd.Process.Pid
	}
	n.mu.Unlock()
	if pid == 0 {
		return false
	}
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if allThreadsStopped(pid) {
			return true
		}
	}
	return false
}

func allThreadsStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			return false
		}
		// The state follows the command name's closing parenthesis.
		j := bytes.LastIndexByte(b, ')')
		if j < 0 || j+2 >= len(b) || (b[j+2] != 'T' && b[j+2] != 't') {
			return false
		}
	}
	return true
}

// Resume continues node i after Pause.
func (c *Cluster) Resume(i int) {
	c.events.add("resume", i, "")
	c.signal(i, syscall.SIGCONT)
}

// StopTimeout is how long Stop waits after SIGTERM.
const StopTimeout = 20 * time.Second

// Stop asks node i to shut down (SIGTERM) and waits; after StopTimeout it
// dumps its goroutines (SIGQUIT), kills it and reports false.
func (c *Cluster) Stop(i int) bool {
	if !c.Running(i) {
		return true
	}
	c.events.add("stop", i, "")
	c.signal(i, syscall.SIGCONT)
	c.signal(i, syscall.SIGTERM)
	if c.wait(i, StopTimeout) {
		return true
	}
	// A hang at shutdown is a bug of its own: SIGQUIT makes the Go runtime
	// write every goroutine's stack into the node's log, then exit.
	c.t.Logf("clustertest: %s did not stop within %v of SIGTERM; SIGQUIT for a goroutine dump in %s", c.Nodes[i].ID, StopTimeout, c.Nodes[i].LogPath)
	c.events.add("hung-at-stop", i, "")
	c.signal(i, syscall.SIGQUIT)
	if !c.wait(i, 10*time.Second) {
		c.Kill(i)
	}
	c.mu.Lock()
	c.hungStops++
	c.mu.Unlock()
	return false
}

// Restart stops node i if it runs and starts it on the same data directory.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.Stop(i)
	c.StartNode(i)
}

// Wipe kills node i, removes its data directory and starts it again, with
// the same ID, joining the others.
func (c *Cluster) Wipe(i int) {
	c.t.Helper()
	if c.Running(i) {
		c.Kill(i)
	}
	c.events.add("wipe", i, "")
	if err := os.RemoveAll(c.Nodes[i].DataDir); err != nil {
		c.t.Fatal(err)
	}
	c.StartNode(i)
}

// Isolate, Partition, Block and Heal are Net's, recorded in the event log.
func (c *Cluster) Isolate(i int) {
	c.t.Helper()
	if err := c.Net.Isolate(i); err != nil {
		c.t.Fatalf("clustertest: isolate %s: %v", c.Nodes[i].ID, err)
	}
	c.events.add("isolate", i, "")
}

// Partition cuts the groups from each other.
func (c *Cluster) Partition(groups ...[]int) {
	c.t.Helper()
	if err := c.Net.Partition(groups...); err != nil {
		c.t.Fatalf("clustertest: partition %v: %v", groups, err)
	}
	c.events.add("partition", -1, fmt.Sprint(groups))
}

// Block drops packets from one node to another (one way).
func (c *Cluster) Block(from, to int) {
	c.t.Helper()
	if err := c.Net.Block(from, to); err != nil {
		c.t.Fatalf("clustertest: block %d→%d: %v", from, to, err)
	}
	c.events.add("block", from, fmt.Sprintf("to %s", c.Nodes[to].ID))
}

// Heal removes every network fault.
func (c *Cluster) Heal() {
	c.t.Helper()
	if err := c.Net.Heal(); err != nil {
		c.t.Fatalf("clustertest: heal: %v", err)
	}
	c.events.add("heal", -1, "")
}

// killAll is the cleanup: no process outlives the test.
func (c *Cluster) killAll() {
	for i := range c.Nodes {
		if c.Running(i) {
			c.signal(i, syscall.SIGCONT)
			c.signal(i, syscall.SIGKILL)
			c.wait(i, 10*time.Second)
		}
	}
	c.adminMu.Lock()
	for _, cc := range c.admin {
		cc.Close()
	}
	c.adminMu.Unlock()
}

// HungStops is the number of times a node did not exit within StopTimeout
// of SIGTERM.
func (c *Cluster) HungStops() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hungStops
}

// adminCredentials are the admin certificate "test"'s.
func (c *Cluster) adminCredentials() credentials.TransportCredentials {
	caFile, _ := identity.CAFiles(c.TLSDir)
	cert, key := identity.AdminFiles(c.TLSDir, "test")
	m, err := identity.Load(caFile, cert, key)
	if err != nil {
		c.t.Fatalf("clustertest: admin credentials: %v", err)
	}
	return credentials.NewTLS(m.ClientConfig(nil))
}

// Admin returns an admin API client for node i.
func (c *Cluster) Admin(i int) adminpb.AdminClient {
	c.adminMu.Lock()
	defer c.adminMu.Unlock()
	cc, ok := c.admin[i]
	if !ok {
		var err error
		cc, err = grpc.NewClient(c.Nodes[i].Addr(PortAdmin), grpc.WithTransportCredentials(c.adminCredentials()), grpc.WithNoProxy())
		if err != nil {
			c.t.Fatalf("clustertest: admin client: %v", err)
		}
		c.admin[i] = cc
	}
	return adminpb.NewAdminClient(cc)
}

// Info is node i's own view (GET /status), or an error when it does not
// answer within 2 s.
func (c *Cluster) Info(i int) (*peerpb.InfoResponse, error) {
	resp, err := c.http.Get("http://" + c.Nodes[i].Addr(PortHTTP) + "/status")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	info := new(peerpb.InfoResponse)
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, info); err != nil {
		return nil, err
	}
	return info, nil
}

// Infos asks every running, unpaused node for its view, in parallel; nil
// for the others.
func (c *Cluster) Infos() []*peerpb.InfoResponse {
	out := make([]*peerpb.InfoResponse, len(c.Nodes))
	var wg sync.WaitGroup
	for i := range c.Nodes {
		if !c.Running(i) || c.Paused(i) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if in, err := c.Info(i); err == nil {
				out[i] = in
			}
		}()
	}
	wg.Wait()
	return out
}

// Eventually polls cond until it holds or fails the test after timeout.
func (c *Cluster) Eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, why := cond()
		if ok {
			return
		}
		if why != "" {
			last = why
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("clustertest: %s: not within %v (last: %s)", what, timeout, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Cluster) indexOf(id string) int {
	for i, n := range c.Nodes {
		if n.ID == id {
			return i
		}
	}
	return -1
}

// members counts the nodes that take part: started at least once and not
// retired (Retire). It is len(Nodes) once every node has started.
func (c *Cluster) members() int {
	k := 0
	for i, n := range c.Nodes {
		n.mu.Lock()
		started := n.starts > 0
		n.mu.Unlock()
		c.mu.Lock()
		gone := c.retired[i]
		c.mu.Unlock()
		if started && !gone {
			k++
		}
	}
	return k
}

// Retire marks node i as gone for good (a lost site): Leader no longer
// counts it.
func (c *Cluster) Retire(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.retired == nil {
		c.retired = map[int]bool{}
	}
	c.retired[i] = true
}

// Leader returns the index of the node that says it leads and that a
// majority of the members (started, not retired) follow, or -1.
func (c *Cluster) Leader() int {
	infos := c.Infos()
	for i, in := range infos {
		if in == nil || in.State != "leader" {
			continue
		}
		agree := 0
		for _, o := range infos {
			if o != nil && o.LeaderId == in.Id && o.Term == in.Term {
				agree++
			}
		}
		if agree*2 > c.members() {
			return i
		}
	}
	return -1
}

// WaitLeader waits for a leader and returns its index.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	c.t.Helper()
	l := -1
	c.Eventually(timeout, "a leader", func() (bool, string) {
		if len(c.Nodes) > 0 && c.Nodes[0].starts > 0 && !c.Running(1%len(c.Nodes)) {
			// Only node 0 runs (bootstrap): it alone is a majority of itself.
			if in, err := c.Info(0); err == nil && in.State == "leader" {
				l = 0
				return true, ""
			}
		}
		l = c.Leader()
		return l >= 0, "no leader"
	})
	return l
}

// WaitVoters waits until the leader's configuration holds n voters, each
// answering.
func (c *Cluster) WaitVoters(n int, timeout time.Duration) {
	c.t.Helper()
	c.Eventually(timeout, fmt.Sprintf("%d voters", n), func() (bool, string) {
		l := c.Leader()
		if l < 0 {
			return false, "no leader"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := c.Admin(l).ClusterStatus(ctx, &adminpb.ClusterStatusRequest{})
		if err != nil {
			return false, err.Error()
		}
		voters := 0
		for _, ns := range st.Nodes {
			if ns.Role == "voter" && ns.State != "unreachable" {
				voters++
			}
		}
		return voters == n, fmt.Sprintf("%d answering voters", voters)
	})
}

// WaitConverged waits until every node runs, one leads with nothing
// uncommitted, every node knows the leader's commit index, and every node
// has applied the same index, twice in a row. Applied may stay below the
// commit index: the leader's no-op entry never reaches the state machine.
func (c *Cluster) WaitConverged(timeout time.Duration) {
	c.t.Helper()
	stable := 0
	c.Eventually(timeout, "replicas converged", func() (bool, string) {
		infos := c.Infos()
		l := c.Leader()
		if l < 0 || infos[l] == nil {
			stable = 0
			return false, "no leader"
		}
		var why []string
		if infos[l].LastIndex != infos[l].CommitIndex {
			why = append(why, fmt.Sprintf("leader last %d, commit %d", infos[l].LastIndex, infos[l].CommitIndex))
		}
		for i, in := range infos {
			if in == nil {
				stable = 0
				return false, c.Nodes[i].ID + " does not answer"
			}
			if in.CommitIndex != infos[l].CommitIndex || in.AppliedIndex != infos[l].AppliedIndex {
				why = append(why, fmt.Sprintf("%s commit %d applied %d, leader commit %d applied %d", in.Id, in.CommitIndex, in.AppliedIndex, infos[l].CommitIndex, infos[l].AppliedIndex))
			}
		}
		if len(why) > 0 {
			stable = 0
			return false, strings.Join(why, "; ")
		}
		stable++
		return stable >= 2, "settling"
	})
}

// setup creates Domain and the users through the leader, retrying
// temporary failures, then waits until every node accepts every user as a
// recipient (RCPT resolves against the local replica).
func (c *Cluster) setup() {
	c.t.Helper()
	try := func(what string, f func(ctx context.Context, a adminpb.AdminClient) error) {
		c.Eventually(60*time.Second, what, func() (bool, string) {
			l := c.Leader()
			if l < 0 {
				return false, "no leader"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := f(ctx, c.Admin(l))
			if err == nil || status.Code(err) == codes.AlreadyExists {
				return true, ""
			}
			return false, err.Error()
		})
	}
	try("add domain", func(ctx context.Context, a adminpb.AdminClient) error {
		_, err := a.DomainAdd(ctx, &adminpb.DomainAddRequest{Name: Domain})
		return err
	})
	for _, u := range c.Users {
		try("add user "+u, func(ctx context.Context, a adminpb.AdminClient) error {
			_, err := a.UserAdd(ctx, &adminpb.UserAddRequest{Email: u, Password: "clustertest-password"})
			return err
		})
	}
	for i := range c.Nodes {
		if !c.Running(i) {
			continue // not started yet (Options.Start)
		}
		for _, u := range c.Users {
			c.Eventually(30*time.Second, c.Nodes[i].ID+" accepts "+u, func() (bool, string) {
				code, err := probeRcpt(c.Nodes[i].Addr(PortSMTP), u)
				if err != nil {
					return false, err.Error()
				}
				return code == 250, fmt.Sprintf("RCPT %d", code)
			})
		}
	}
}

// probeRcpt opens an SMTP session and returns the reply code to RCPT TO.
func probeRcpt(addr, rcpt string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	for _, cmd := range []string{"", "EHLO probe.clustertest.invalid", "MAIL FROM:<probe@remote.test>", "RCPT TO:<" + rcpt + ">"} {
		if cmd != "" {
			if _, err := fmt.Fprintf(conn, "%s\r\n", cmd); err != nil {
				return 0, err
			}
		}
		code, _, err := readReply(br)
		if err != nil {
			return 0, err
		}
		if cmd == "RCPT TO:<"+rcpt+">" || code >= 400 {
			fmt.Fprintf(conn, "QUIT\r\n")
			return code, nil
		}
	}
	return 0, errors.New("unreachable")
}

// readReply reads one possibly multi-line SMTP reply (RFC 5321 §4.2.1).
func readReply(br *bufio.Reader) (int, []string, error) {
	var lines []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, lines, err
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return 0, lines, fmt.Errorf("short reply line %q", line)
		}
		var code int
		if _, err := fmt.Sscanf(line[:3], "%d", &code); err != nil {
			return 0, lines, fmt.Errorf("bad reply line %q", line)
		}
		lines = append(lines, line)
		if len(line) == 3 || line[3] == ' ' {
			return code, lines, nil
		}
	}
}

// Greeting connects to node i's SMTP port and returns the greeting's code.
func (c *Cluster) Greeting(i int, timeout time.Duration) (int, error) {
	conn, err := net.DialTimeout("tcp", c.Nodes[i].Addr(PortSMTP), timeout)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	code, _, err := readReply(bufio.NewReader(conn))
	return code, err
}
