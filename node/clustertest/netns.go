package clustertest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// namePrefix starts every namespace and interface this package creates, so
// a sweep can find the ones a killed test binary left behind. A name is
// namePrefix + the creating process's pid in base 36 + "-" + a sequence
// number, which keeps interface names within Linux's 15 bytes.
const namePrefix = "ctf"

var netSeq struct {
	sync.Mutex
	n int
}

// Net is one network namespace per node, each joined by a veth pair to a
// bridge in a switch namespace: node i is host 10.231.<k>.(10+i); the test
// process reaches every node through its own veth pair to the bridge, as
// 10.231.<k>.1. Faults are blackhole routes inside the
// namespaces, so they cut node-to-node paths and never the test's own.
type Net struct {
	t      testing.TB
	Tag    string
	Subnet int
	Bridge string // inside the switch namespace
	NS     []string
	IPs    []string
	HostIP string

	switchNS string

	mu      sync.Mutex
	blocked map[[2]int]bool // {from, to}: a route in from's namespace drops packets to to
}

// requireRoot skips the test when it cannot create namespaces, except in
// CI, which runs as root: there a skip would hide the whole suite.
func requireRoot(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (network namespaces, veth, bridge, blackhole routes)"
	} else if _, err := exec.LookPath("ip"); err != nil {
		why = "needs the ip command (iproute2)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("clustertest: %s; CI runs as root with iproute2, so this is a broken CI machine", why)
	}
	t.Skipf("clustertest: %s; run as root (CI does)", why)
}

// ipCmd runs ip with args and returns its combined output in the error.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NewNet creates n namespaces on a fresh subnet. Everything is removed in
// t.Cleanup.
func NewNet(t testing.TB, n int) *Net {
	t.Helper()
	requireRoot(t)
	sweepStale(t)
	netSeq.Lock()
	netSeq.n++
	seq := netSeq.n
	netSeq.Unlock()
	tag := namePrefix + strconv.FormatInt(int64(os.Getpid()), 36) + "-" + strconv.FormatInt(int64(seq), 36)
	nt := &Net{t: t, Tag: tag, Bridge: tag + "b", blocked: map[[2]int]bool{}}
	nt.Subnet = pickSubnet(t)
	nt.HostIP = fmt.Sprintf("10.231.%d.1", nt.Subnet)
	t.Cleanup(nt.destroy)

	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatalf("clustertest: network setup: %v", err)
		}
	}
	// The bridge lives in a namespace of its own: in the root namespace
	// bridged frames would cross the host's iptables FORWARD chain
	// (br_netfilter), which Docker sets to DROP.
	sw := tag + "-sw"
	must("netns", "add", sw)
	nt.switchNS = sw
	must("netns", "exec", sw, "ip", "link", "set", "lo", "up")
	must("netns", "exec", sw, "ip", "link", "add", nt.Bridge, "type", "bridge")
	must("netns", "exec", sw, "ip", "link", "set", nt.Bridge, "up")
	exec.Command("ip", "netns", "exec", sw, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0").Run()
	attach := func(host string) {
		t.Helper()
		must("link", "set", host, "netns", sw)
		must("netns", "exec", sw, "ip", "link", "set", host, "master", nt.Bridge)
		must("netns", "exec", sw, "ip", "link", "set", host, "up")
	}
	// The test process's own leg: 10.231.k.1 in the root namespace.
	root := tag + "r"
	must("link", "add", root, "type", "veth", "peer", "name", tag+"s")
	attach(tag + "s")
	must("addr", "add", nt.HostIP+"/24", "dev", root)
	must("link", "set", root, "up")
	for i := 0; i < n; i++ {
		ns := fmt.Sprintf("%s-n%d", tag, i+1)
		host, peer := fmt.Sprintf("%sh%d", tag, i+1), fmt.Sprintf("%sp%d", tag, i+1)
		ip := fmt.Sprintf("10.231.%d.%d", nt.Subnet, 10+i)
		must("netns", "add", ns)
		nt.NS = append(nt.NS, ns)
		nt.IPs = append(nt.IPs, ip)
		must("link", "add", host, "type", "veth", "peer", "name", peer)
		must("link", "set", peer, "netns", ns)
		attach(host)
		must("netns", "exec", ns, "ip", "link", "set", "lo", "up")
		must("netns", "exec", ns, "ip", "addr", "add", ip+"/24", "dev", peer)
		must("netns", "exec", ns, "ip", "link", "set", peer, "up")
	}
	return nt
}

// pickSubnet returns a k for 10.231.k.0/24 that no interface uses now.
func pickSubnet(t testing.TB) int {
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("clustertest: ip addr show: %v", err)
	}
	for range 1000 {
		k := 1 + rand.IntN(254)
		if !strings.Contains(string(out), fmt.Sprintf(" 10.231.%d.", k)) {
			return k
		}
	}
	t.Fatal("clustertest: no free 10.231.k.0/24 subnet")
	return 0
}

// destroy removes the namespaces (which removes the veth pairs) and the
// bridge. Nodes must be stopped first; any process left in a namespace is
// killed.
func (nt *Net) destroy() {
	for _, ns := range nt.NS {
		killNamespacePids(ns)
		if err := ipCmd("netns", "del", ns); err != nil {
			nt.t.Logf("clustertest: cleanup: %v", err)
		}
	}
	// Removing the switch namespace removes the bridge and the test's own
	// veth pair with it.
	if nt.switchNS != "" {
		if err := ipCmd("netns", "del", nt.switchNS); err != nil {
			nt.t.Logf("clustertest: cleanup: %v", err)
		}
	}
}

func killNamespacePids(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			syscall.Kill(pid, syscall.SIGCONT)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// sweepStale removes namespaces and interfaces named by a test binary that
// no longer runs (killed before its cleanup), with their processes.
func sweepStale(t testing.TB) {
	stale := func(name string) bool {
		rest, ok := strings.CutPrefix(name, namePrefix)
		if !ok {
			return false
		}
		p, _, ok := strings.Cut(rest, "-")
		if !ok {
			return false
		}
		pid, err := strconv.ParseInt(p, 36, 64)
		if err != nil || pid <= 0 || pid > 1<<22 {
			return false
		}
		return errors.Is(syscall.Kill(int(pid), 0), syscall.ESRCH)
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && stale(f[0]) {
				killNamespacePids(f[0])
				if err := ipCmd("netns", "del", f[0]); err == nil {
					t.Logf("clustertest: removed stale namespace %s", f[0])
				}
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			if stale(name) {
				if err := ipCmd("link", "del", name); err == nil {
					t.Logf("clustertest: removed stale interface %s", name)
				}
			}
		}
	}
}

// Block drops every packet node from sends to node to (a one-way fault: to
// still reaches from, but nothing comes back over TCP).
func (nt *Net) Block(from, to int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if nt.blocked[[2]int{from, to}] {
		return nil
	}
	if err := ipCmd("netns", "exec", nt.NS[from], "ip", "route", "add", "blackhole", nt.IPs[to]+"/32"); err != nil {
		return err
	}
	nt.blocked[[2]int{from, to}] = true
	return nil
}

// Unblock undoes Block.
func (nt *Net) Unblock(from, to int) error {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	if !nt.blocked[[2]int{from, to}] {
		return nil
	}
	if err := ipCmd("netns", "exec", nt.NS[from], "ip", "route", "del", "blackhole", nt.IPs[to]+"/32"); err != nil {
		return err
	}
	delete(nt.blocked, [2]int{from, to})
	return nil
}

// Cut blocks both directions between a and b.
func (nt *Net) Cut(a, b int) error {
	return errors.Join(nt.Block(a, b), nt.Block(b, a))
}

// Partition cuts every pair of nodes that are in different groups. Nodes in
// no group keep all their links (a bridge between the groups).
func (nt *Net) Partition(groups ...[]int) error {
	var errs []error
	for gi, g := range groups {
		for _, h := range groups[gi+1:] {
			for _, a := range g {
				for _, b := range h {
					errs = append(errs, nt.Cut(a, b))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// Isolate cuts node i from every other node.
func (nt *Net) Isolate(i int) error {
	var rest []int
	for j := range nt.NS {
		if j != i {
			rest = append(rest, j)
		}
	}
	return nt.Partition([]int{i}, rest)
}

// Heal removes every fault route.
func (nt *Net) Heal() error {
	nt.mu.Lock()
	var pairs [][2]int
	for p := range nt.blocked {
		pairs = append(pairs, p)
	}
	nt.mu.Unlock()
	var errs []error
	for _, p := range pairs {
		errs = append(errs, nt.Unblock(p[0], p[1]))
	}
	return errors.Join(errs...)
}

// Blocked reports whether from cannot send to to.
func (nt *Net) Blocked(from, to int) bool {
	nt.mu.Lock()
	defer nt.mu.Unlock()
	return nt.blocked[[2]int{from, to}]
}
