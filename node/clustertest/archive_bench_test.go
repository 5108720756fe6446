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
// CPU 0 and the archive replica n4 to CPU 1 (Options.CPUs, a cpuset
// cgroup each), the same budgets with and without it. The load (4 SMTP
// senders through the voters only) runs in phases that alternate without
// and with the archive, CONTINUUM_ARCHIVE_ROUNDS times (3): "without"
// stops n4 (SIGTERM; it stays in the configuration and the leader retries
// it with raft's backoff); "with" starts it again and waits, load-free,
// until it has caught up, then loads. Every phase samples the same status
// calls, so the voters answer the same probes in both. Figures are
// logged (per phase and pooled), not asserted; what is asserted is that
// the archive stays an archive follower and catches up after every phase,
// and that at the end every acknowledged message is on all four nodes.
//
// CONTINUUM_ARCHIVE_PROFILE=DIR records the leader with perf (cpu-clock,
// call graphs) during the last round's two phases and logs its CPU per
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
	seed, _ := params(t)
	c := Start(t, Options{Nodes: 4, Start: 3, Voters: 3, Users: []string{"user1", "user2", "user3"},
		ExtraArgs: []string{"--raft-profile", "lan"},
		NodeArgs: func(i int) []string {
			if i == archiveNode {
				return []string{"--role", "archive"}
			}
			return nil
		},
		CPUs: func(i int) string {
			if i == archiveNode {
				return archiveCPUs
			}
			return voterCPUs
		}})
	voters := []int{0, 1, 2}
	c.StartNode(archiveNode)
	c.waitArchiveFollower(archiveNode, 60*time.Second)
	t.Logf("voters on CPU %s, the archive replica on CPU %s; %d rounds of %v without, then with it; load average %s",
		voterCPUs, archiveCPUs, rounds, dur, loadAvg())

	// Warm-up with the archive attached (not counted).
	w := c.StartWorkload(WorkloadOptions{Seed: seed, Nodes: voters})
	time.Sleep(min(dur, 10*time.Second))
	all := w.Stop()

	type phase struct {
		with    bool
		lat     []time.Duration
		lags    []float64
		cpu     []time.Duration
		leader  int
		load    string
		took    time.Duration
		profile map[string]float64 // package → share of the leader's samples
		catchup time.Duration      // with: from the archive's start to caught up
	}
	var phases []*phase
	for r := 0; r < rounds; r++ {
		for _, with := range []bool{false, true} {
			p := &phase{with: with}
			if with {
				start := time.Now()
				c.StartNode(archiveNode)
				c.waitArchiveFollower(archiveNode, 120*time.Second)
				c.waitCaughtUp(archiveNode, 120*time.Second)
				p.catchup = time.Since(start)
			} else {
				c.Stop(archiveNode)
			}
			p.leader = c.Leader()
			if p.leader < 0 {
				c.Eventually(30*time.Second, "a leader", func() (bool, string) { p.leader = c.Leader(); return p.leader >= 0, "" })
			}
			var perf *exec.Cmd
			var perfOut string
			if profDir != "" && r == rounds-1 {
				perfOut = filepath.Join(profDir, fmt.Sprintf("leader-%s.data", map[bool]string{false: "without", true: "with"}[with]))
				perf = c.startPerf(p.leader, perfOut, dur)
			}
			cpu0 := c.cpuTimes()
			t0 := time.Now()
			w := c.StartWorkload(WorkloadOptions{Seed: seed + uint64(1+len(phases)), Nodes: voters})
			p.lags = c.sampleLag(archiveNode, dur)
			ops := w.Stop()
			p.took = time.Since(t0)
			p.cpu = cpuSince(cpu0, c.cpuTimes())
			p.load = loadAvg()
			all = append(all, ops...)
			p.lat = okLatencies(ops)
			if len(p.lat) == 0 {
				t.Fatalf("round %d (archive attached: %v): no delivery acknowledged", r+1, with)
			}
			if perf != nil {
				if err := perf.Wait(); err != nil {
					t.Fatalf("perf record: %v", err)
				}
				if p.profile, err = perfPackages(perfOut); err != nil {
					t.Fatalf("perf report: %v", err)
				}
			}
			if with && len(p.lags) == 0 {
				t.Fatalf("round %d: no lag sample of the archive replica", r+1)
			}
			phases = append(phases, p)
			t.Logf("round %d %-7s: %s, %.1f/s; leader n%d; CPU per delivery %s; lag %s; catch-up before it %v; load average %s",
				r+1, map[bool]string{false: "without", true: "with"}[with], pctl(p.lat), float64(len(p.lat))/p.took.Seconds(),
				p.leader+1, cpuPer(p.cpu, len(p.lat)), pctlN(p.lags), p.catchup.Round(time.Millisecond), p.load)
		}
	}

	// Pooled, and the spread of the phases' medians.
	var latA, latB []time.Duration
	var lags []float64
	var p50A, p50B []string
	var leaderA, leaderB, nA, nB float64
	for _, p := range phases {
		s := slices.Clone(p.lat)
		slices.Sort(s)
		med := s[len(s)/2].Round(100 * time.Microsecond).String()
		leaderCPU := float64(p.cpu[p.leader]) / float64(time.Millisecond)
		if p.with {
			latB, lags, p50B = append(latB, p.lat...), append(lags, p.lags...), append(p50B, med)
			leaderB, nB = leaderB+leaderCPU, nB+float64(len(p.lat))
		} else {
			latA, p50A = append(latA, p.lat...), append(p50A, med)
			leaderA, nA = leaderA+leaderCPU, nA+float64(len(p.lat))
		}
	}
	t.Logf("without the archive, pooled: %s; phase medians %v", pctl(latA), p50A)
	t.Logf("with the archive, pooled:    %s; phase medians %v", pctl(latB), p50B)
	t.Logf("leader CPU per delivery: without %.2f ms, with %.2f ms", leaderA/nA, leaderB/nB)
	t.Logf("archive replica lag (entries behind the leader's commit, %d samples every 50 ms): %s", len(lags), pctlN(lags))
	if profDir != "" {
		c.logProfiles(phases[len(phases)-2].profile, phases[len(phases)-1].profile,
			float64(phases[len(phases)-2].cpu[phases[len(phases)-2].leader])/float64(time.Millisecond)/float64(len(phases[len(phases)-2].lat)),
			float64(phases[len(phases)-1].cpu[phases[len(phases)-1].leader])/float64(time.Millisecond)/float64(len(phases[len(phases)-1].lat)))
	}

	// Every acknowledged message is on all four nodes, which agree.
	c.WaitConvergedOn([]int{0, 1, 2, 3}, 120*time.Second)
	for i := 0; i <= archiveNode; i++ {
		c.Stop(i)
	}
	var digest []byte
	for i := 0; i <= archiveNode; i++ {
		st, err := c.readNode(i)
		if err != nil {
			t.Fatal(err)
		}
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
}

// waitCaughtUp waits until node i has applied the leader's commit index
// as it was when the wait began.
func (c *Cluster) waitCaughtUp(i int, timeout time.Duration) {
	c.t.Helper()
	var target uint64
	c.Eventually(timeout, c.Nodes[i].ID+" caught up with the leader's commit index", func() (bool, string) {
		if target == 0 {
			l := c.Leader()
			if l < 0 {
				return false, "no leader"
			}
			li, err := c.Info(l)
			if err != nil {
				return false, err.Error()
			}
			target = li.CommitIndex
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

// perfPackages reads a perf recording and returns each Go package's share
// of the samples (self time, by the package of the sampled function).
func perfPackages(data string) (map[string]float64, error) {
	out, err := exec.Command("perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "symbol", "-g", "none", "--percent-limit", "0").Output()
	if err != nil {
		return nil, err
	}
	shares := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// "  12.34%  [.] crypto/tls.(*Conn).Write"
		if len(f) < 3 || !strings.HasSuffix(f[0], "%") || !strings.HasPrefix(f[1], "[") {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		shares[goPackage(strings.Join(f[2:], " "))] += pct / 100
	}
	return shares, sc.Err()
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

// logProfiles logs the leader's CPU per delivery by package, without and
// with the archive, largest difference first.
func (c *Cluster) logProfiles(without, with map[string]float64, perA, perB float64) {
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
	fmt.Fprintf(&b, "leader CPU per delivery by package (perf, last round): without %.3f ms, with %.3f ms\n", perA, perB)
	for i, r := range rows {
		if i == 20 {
			break
		}
		fmt.Fprintf(&b, "  %-50s %7.3f → %7.3f ms (%+.3f)\n", r.pkg, r.a, r.b, r.b-r.a)
	}
	c.t.Logf("%s", b.String())
}
