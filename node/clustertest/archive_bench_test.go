package clustertest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestArchiveReplicaCost (make bench-archive; skipped unless
// CONTINUUM_ARCHIVE_BENCH is set to a phase's duration): issue 20's
// "the archive replica under load: its lag (p50/p99), and delivery latency
// with it attached unchanged within noise".
//
// On one machine the stand-in for an archive replica on hardware of its
// own is a separate, fixed CPU budget: the three voters run confined to
// CPU 0 and the archive replica to CPU 1 (Options.CPUs, a cpuset cgroup
// each), the same budgets with and without it. The machine has one disk;
// two archive replicas separate that part: n4 keeps its data on the disk
// the voters use, n5 on a tmpfs (its own "disk", with no fsync cost, so
// its lag is a lower bound). The load (4 SMTP senders through the voters
// only) runs in phases that cycle without an archive, with n4, with n5,
// CONTINUUM_ARCHIVE_ROUNDS times (3). "Without" stops the archive
// replicas (SIGTERM; they stay in the configuration and the leader
// retries them with raft's backoff); "with" starts one again and waits,
// load-free, until it has caught up, then loads. Every phase samples the
// same status calls, so the voters answer the same probes in all.
// Figures are logged (per phase and pooled), not asserted; what is
// asserted is that each archive stays an archive follower and catches up
// after every phase, and that at the end every acknowledged message is
// on all five nodes.
//
// CONTINUUM_ARCHIVE_PROFILE=DIR records the leader with perf (cpu-clock,
// call graphs) during the last round's phases and logs its CPU per
// delivery by Go package, without against with.
func TestArchiveReplicaCost(t *testing.T) {
	v := os.Getenv("CONTINUUM_ARCHIVE_BENCH")
	if v == "" {
		t.Skip("a measurement: make bench-archive (CONTINUUM_ARCHIVE_BENCH=<phase duration>)")
	}
	dur, err := time.ParseDuration(v)
	if err != nil || dur <= 0 {
		t.Fatalf("CONTINUUM_ARCHIVE_BENCH %q: want a positive duration", v)
	}
	rounds := 3
	if s := os.Getenv("CONTINUUM_ARCHIVE_ROUNDS"); s != "" {
		if rounds, err = strconv.Atoi(s); err != nil || rounds < 1 {
			t.Fatalf("CONTINUUM_ARCHIVE_ROUNDS %q: want a positive number", s)
		}
	}
	profDir := os.Getenv("CONTINUUM_ARCHIVE_PROFILE")
	if profDir != "" {
		if _, err := exec.LookPath("perf"); err != nil {
			t.Fatalf("CONTINUUM_ARCHIVE_PROFILE needs perf: %v", err)
		}
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const voterCPUs, archiveCPUs = "0", "1"
	const diskArchive, tmpfsArchive = 3, 4 // n4, n5
	isArchive := func(i int) bool { return i == diskArchive || i == tmpfsArchive }
	seed, _ := params(t)
	c := Start(t, Options{Nodes: 5, Start: 3, Voters: 3, Users: []string{"user1", "user2", "user3"},
		ExtraArgs: []string{"--raft-profile", "lan"},
		NodeArgs: func(i int) []string {
			if isArchive(i) {
				return []string{"--role", "archive"}
			}
			return nil
		},
		CPUs: func(i int) string {
			if isArchive(i) {
				return archiveCPUs
			}
			return voterCPUs
		}})
	shm, err := os.MkdirTemp("/dev/shm", "clustertest-archive-")
	if err != nil {
		t.Fatalf("a tmpfs for n5: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	c.Nodes[tmpfsArchive].DataDir = filepath.Join(shm, c.Nodes[tmpfsArchive].ID)
	voters := []int{0, 1, 2}
	for _, i := range []int{diskArchive, tmpfsArchive} {
		c.StartNode(i)
		c.waitArchiveFollower(i, 60*time.Second)
	}
	t.Logf("voters on CPU %s, the archive replicas on CPU %s (n4's data on the voters' disk, n5's on a tmpfs); %d rounds of %v without, with n4, with n5; load average %s",
		voterCPUs, archiveCPUs, rounds, dur, loadAvg())

	// Warm-up with both archives attached (not counted).
	w := c.StartWorkload(WorkloadOptions{Seed: seed, Nodes: voters})
	time.Sleep(min(dur, 10*time.Second))
	all := w.Stop()

	type mode struct {
		name    string
		archive int // -1: none
	}
	modes := []mode{{"without", -1}, {"with n4 (shared disk)", diskArchive}, {"with n5 (tmpfs)", tmpfsArchive}}
	type phase struct {
		mode    int
		lat     []time.Duration
		lags    []float64
		cpu     []time.Duration
		leader  int
		load    string
		took    time.Duration
		profile map[string]float64 // package → share of the leader's samples
		repl    float64            // share of the leader's samples in replicationRoots
		catchup time.Duration      // from the archive's start to caught up
	}
	var phases []*phase
	for r := 0; r < rounds; r++ {
		for m, md := range modes {
			p := &phase{mode: m}
			for _, i := range []int{diskArchive, tmpfsArchive} {
				if i != md.archive {
					c.Stop(i)
				}
			}
			sampled := diskArchive // without: probes n4's stopped port, as the others probe a live one
			if md.archive >= 0 {
				sampled = md.archive
				start := time.Now()
				c.StartNode(md.archive)
				c.waitArchiveFollower(md.archive, 120*time.Second)
				c.waitCaughtUp(md.archive, 120*time.Second)
				p.catchup = time.Since(start)
			}
			p.leader = c.Leader()
			if p.leader < 0 {
				c.Eventually(30*time.Second, "a leader", func() (bool, string) { p.leader = c.Leader(); return p.leader >= 0, "" })
			}
			var perf *exec.Cmd
			var perfOut string
			if profDir != "" && r == rounds-1 {
				perfOut = filepath.Join(profDir, fmt.Sprintf("leader-%d.data", m))
				perf = c.startPerf(p.leader, perfOut, dur)
			}
			cpu0 := c.cpuTimes()
			t0 := time.Now()
			w := c.StartWorkload(WorkloadOptions{Seed: seed + uint64(1+len(phases)), Nodes: voters})
			p.lags = c.sampleLag(sampled, dur)
			ops := w.Stop()
			p.took = time.Since(t0)
			p.cpu = cpuSince(cpu0, c.cpuTimes())
			p.load = loadAvg()
			all = append(all, ops...)
			p.lat = okLatencies(ops)
			if len(p.lat) == 0 {
				t.Fatalf("round %d %s: no delivery acknowledged", r+1, md.name)
			}
			if perf != nil {
				if err := perf.Wait(); err != nil {
					t.Fatalf("perf record: %v", err)
				}
				if p.profile, err = perfPackages(perfOut); err != nil {
					t.Fatalf("perf report: %v", err)
				}
				roots, err := perfCumulative(perfOut, replicationRoots)
				if err != nil {
					t.Fatalf("perf report: %v", err)
				}
				for _, v := range roots {
					p.repl += v
				}
			}
			if md.archive >= 0 && len(p.lags) == 0 {
				t.Fatalf("round %d %s: no lag sample", r+1, md.name)
			}
			phases = append(phases, p)
			t.Logf("round %d %s: %s, %.1f/s; leader n%d busy %.0f%%; CPU per delivery %s; lag %s; catch-up before it %v; load average %s",
				r+1, md.name, pctl(p.lat), float64(len(p.lat))/p.took.Seconds(), p.leader+1, 100*p.cpu[p.leader].Seconds()/p.took.Seconds(),
				cpuPer(p.cpu, len(p.lat)), pctlN(p.lags), p.catchup.Round(time.Millisecond), p.load)
		}
	}

	// Pooled per mode, with the spread of the phases' medians.
	leaderPer := func(p *phase) float64 {
		return float64(p.cpu[p.leader]) / float64(time.Millisecond) / float64(len(p.lat))
	}
	for m, md := range modes {
		var lat []time.Duration
		var lags []float64
		var meds []string
		var leaderCPU time.Duration
		n := 0
		for _, p := range phases {
			if p.mode != m {
				continue
			}
			s := slices.Clone(p.lat)
			slices.Sort(s)
			meds = append(meds, s[len(s)/2].Round(100*time.Microsecond).String())
			lat, lags = append(lat, p.lat...), append(lags, p.lags...)
			leaderCPU += p.cpu[p.leader]
			n += len(p.lat)
		}
		t.Logf("%s, pooled: %s; phase medians %v; leader CPU per delivery %.2f ms", md.name, pctl(lat), meds,
			float64(leaderCPU)/float64(time.Millisecond)/float64(n))
		if md.archive >= 0 {
			t.Logf("%s: lag (entries behind the leader's commit, sampled every 50 ms, %d samples): %s", md.name, len(lags), pctlN(lags))
		}
	}
	if profDir != "" {
		last := phases[len(phases)-len(modes):]
		for m := 1; m < len(modes); m++ {
			c.logProfiles(modes[m].name, last[0].profile, last[m].profile, leaderPer(last[0]), leaderPer(last[m]))
		}
		for m, md := range modes {
			t.Logf("leader's replication goroutines (raft replicate and heartbeat, cumulative; perf, last round), %s: %.1f%% of its samples, %.3f ms per delivery",
				md.name, 100*last[m].repl, last[m].repl*leaderPer(last[m]))
		}
	}

	// Every acknowledged message is on all five nodes, which agree.
	for _, i := range []int{diskArchive, tmpfsArchive} {
		if !c.Running(i) {
			c.StartNode(i)
		}
	}
	everyone := []int{0, 1, 2, diskArchive, tmpfsArchive}
	var digest []byte
	for k, st := range c.convergedStates(everyone, 120*time.Second) {
		i := everyone[k]
		lost := 0
		for _, op := range all {
			if op.Outcome == OutcomeOK && st.found[op.TestID] == nil {
				if lost++; lost <= 5 {
					t.Errorf("%s: acknowledged message %s is missing", c.Nodes[i].ID, op.TestID)
				}
			}
		}
		for _, v := range st.violations {
			t.Errorf("invariant: %s", v)
		}
		if digest == nil {
			digest = st.digest
		} else if !bytes.Equal(digest, st.digest) {
			t.Errorf("%s's state differs from n1's", c.Nodes[i].ID)
		}
	}
	// A node that does not stop within StopTimeout of SIGTERM is a bug of
	// its own (seen once, at load ~26, on n4 at the end): failing keeps
	// the logs with the goroutine dump SIGQUIT wrote.
	if n := c.HungStops(); n > 0 {
		t.Errorf("%d stop(s) did not finish within %v of SIGTERM: goroutine dumps in the node logs", n, StopTimeout)
	}
}

// waitCaughtUp waits until node i has applied what the leader had
// applied when the wait began. (Not the leader's commit index: the last
// committed entry may be one the state machine never sees, a
// configuration change or a no-op, and nothing more comes without load.)
func (c *Cluster) waitCaughtUp(i int, timeout time.Duration) {
	c.t.Helper()
	var target uint64
	c.Eventually(timeout, c.Nodes[i].ID+" caught up with the leader's applied index", func() (bool, string) {
		if target == 0 {
			l := c.Leader()
			if l < 0 {
				return false, "no leader"
			}
			li, err := c.Info(l)
			if err != nil {
				return false, err.Error()
			}
			target = li.AppliedIndex
		}
		in, err := c.Info(i)
		if err != nil {
			return false, err.Error()
		}
		return in.AppliedIndex >= target, fmt.Sprintf("applied %d of %d", in.AppliedIndex, target)
	})
}

// startPerf records node i's process with perf for d (cpu-clock samples
// with call graphs) into out.
func (c *Cluster) startPerf(i int, out string, d time.Duration) *exec.Cmd {
	c.t.Helper()
	n := c.Nodes[i]
	n.mu.Lock()
	pid := n.cmd.Process.Pid
	n.mu.Unlock()
	cmd := exec.Command("perf", "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", out,
		"--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', 1, 64))
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("perf record: %v", err)
	}
	return cmd
}

// perfSymbols runs perf report on a recording and returns, for every
// sampled symbol, its share of the samples: self time, or with children
// (what it calls) included.
func perfSymbols(data string, children bool) (map[string]float64, error) {
	mode := "--no-children"
	if children {
		mode = "--children"
	}
	out, err := exec.Command("perf", "report", "-i", data, "--stdio", mode, "--sort", "symbol", "-g", "none", "--percent-limit", "0").Output()
	if err != nil {
		return nil, err
	}
	shares := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		// "  12.34%  [.] crypto/tls.(*Conn).Write", or with children
		// "   4.05%     0.00%  [.] github.com/hashicorp/raft.(*Raft).replicateTo"
		f := strings.Fields(sc.Text())
		k := slices.IndexFunc(f, func(x string) bool { return strings.HasPrefix(x, "[") })
		if k < 1 || k+1 >= len(f) || !strings.HasSuffix(f[0], "%") {
			continue
		}
		if pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64); err == nil {
			shares[f[k+1]] += pct / 100
		}
	}
	return shares, sc.Err()
}

// perfPackages returns each Go package's share of a recording's samples
// (self time, by the package of the sampled function).
func perfPackages(data string) (map[string]float64, error) {
	syms, err := perfSymbols(data, false)
	if err != nil {
		return nil, err
	}
	shares := map[string]float64{}
	for sym, v := range syms {
		shares[goPackage(sym)] += v
	}
	return shares, nil
}

// replicationRoots are the leader's goroutines that stream the log to
// the other members (hashicorp/raft: one replicate and one heartbeat
// goroutine per member): their cumulative samples (with what they call:
// reading the log, encoding, TLS, the socket) are the leader's cost of
// its replication streams.
var replicationRoots = []string{"github.com/hashicorp/raft.(*Raft).replicate", "github.com/hashicorp/raft.(*Raft).heartbeat"}

// perfCumulative returns the share of a recording's samples under each of
// syms (children included).
func perfCumulative(data string, syms []string) (map[string]float64, error) {
	all, err := perfSymbols(data, true)
	if err != nil {
		return nil, err
	}
	shares := map[string]float64{}
	for _, sym := range syms {
		shares[sym] = all[sym]
	}
	return shares, nil
}

// goPackage is the package path of a Go symbol ("crypto/tls.(*Conn).Write"
// → "crypto/tls"); a non-Go symbol is returned as it is.
func goPackage(sym string) string {
	slash := strings.LastIndexByte(sym, '/')
	if dot := strings.IndexByte(sym[slash+1:], '.'); dot > 0 {
		return sym[:slash+1+dot]
	}
	return sym
}

// logProfiles logs the leader's CPU per delivery by package, without an
// archive and with one (name), largest difference first.
func (c *Cluster) logProfiles(name string, without, with map[string]float64, perA, perB float64) {
	type row struct {
		pkg  string
		a, b float64 // ms per delivery
	}
	var rows []row
	seen := map[string]bool{}
	for _, m := range []map[string]float64{without, with} {
		for pkg := range m {
			if !seen[pkg] {
				seen[pkg] = true
				rows = append(rows, row{pkg, without[pkg] * perA, with[pkg] * perB})
			}
		}
	}
	slices.SortFunc(rows, func(x, y row) int {
		dx, dy := x.b-x.a, y.b-y.a
		switch {
		case dx > dy:
			return -1
		case dx < dy:
			return 1
		}
		return strings.Compare(x.pkg, y.pkg)
	})
	var b strings.Builder
	fmt.Fprintf(&b, "leader CPU per delivery by package (perf, last round): without %.3f ms, %s %.3f ms\n", perA, name, perB)
	for i, r := range rows {
		if i == 20 {
			break
		}
		fmt.Fprintf(&b, "  %-50s %7.3f → %7.3f ms (%+.3f)\n", r.pkg, r.a, r.b, r.b-r.a)
	}
	c.t.Logf("%s", b.String())
}
