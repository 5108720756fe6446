package clustertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Frequent snapshots: a snapshot every 64 new entries, checked every
// 500 ms, 32 entries kept behind it. A follower down for a few hundred
// entries then finds the leader's log compacted past its own end.
var snapshotArgs = []string{"--raft-snapshot-threshold", "64", "--raft-trailing-logs", "32", "--raft-snapshot-interval", "500ms"}

// logSince returns node i's log from its k-th start on (1-based; the
// harness writes a "=== clustertest: start k of" line at each start).
func logSince(c *Cluster, i, k int) string {
	b, _ := os.ReadFile(c.Nodes[i].LogPath)
	s := string(b)
	mark := fmt.Sprintf("=== clustertest: start %d of %s ", k, c.Nodes[i].ID)
	if j := strings.Index(s, mark); j >= 0 {
		return s[j:]
	}
	return ""
}

// starts returns how many times node i has been started.
func (c *Cluster) starts(i int) int {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.starts
}

// leaderIndex returns the current leader's last log index, waiting for a
// leader.
func (r *run) leaderIndex() uint64 {
	r.t.Helper()
	var last uint64
	r.c.Eventually(30*time.Second, "the leader's last index", func() (bool, string) {
		l := r.c.Leader()
		if l < 0 {
			return false, "no leader"
		}
		in, err := r.c.Info(l)
		if err != nil {
			return false, err.Error()
		}
		last = in.LastIndex
		return true, ""
	})
	return last
}

// waitLogPast keeps the load running until the leader has committed well
// past base: more than a snapshot threshold plus the trailing logs, and
// at least two snapshot intervals, so its log no longer holds base+1.
func (r *run) waitLogPast(base uint64, what string) {
	r.t.Helper()
	const past = 64*3 + 32 + 100
	since := time.Now()
	r.c.Eventually(60*time.Second, what, func() (bool, string) {
		l := r.c.Leader()
		if l < 0 {
			return false, "no leader"
		}
		in, err := r.c.Info(l)
		if err != nil {
			return false, err.Error()
		}
		return in.CommitIndex > base+past && time.Since(since) > 2*time.Second,
			fmt.Sprintf("leader commit %d, want > %d", in.CommitIndex, base+past)
	})
}

// snapshotIDs lists the snapshot directories in node i's data directory
// (hashicorp/raft's FileSnapshotStore: <term>-<index>-<ms>).
func snapshotIDs(c *Cluster, i int) []string {
	var ids []string
	matches, _ := filepath.Glob(filepath.Join(c.Nodes[i].DataDir, "*", "snapshots", "*"))
	m2, _ := filepath.Glob(filepath.Join(c.Nodes[i].DataDir, "snapshots", "*"))
	for _, m := range append(matches, m2...) {
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			ids = append(ids, filepath.Base(m))
		}
	}
	return ids
}

// TestFaultF11SnapshotCatchUp: frequent snapshots; a follower is kept down
// while the load runs until the leader's log is compacted past the
// follower's end, so it must catch up by InstallSnapshot; it is killed
// once early in that catch-up and restarted, then taken down again for a
// second round. The restored state must equal the leader's (digest at the
// same applied index), and the follower's log must show that it really
// installed a snapshot it did not take.
func TestFaultF11SnapshotCatchUp(t *testing.T) {
	var v int
	type round struct {
		start     int           // the start (1-based) that had to catch up
		killAfter time.Duration // killed this long after that start; 0: not killed
		installed bool          // that start logged an installed snapshot before the kill
		stage     string        // the last snapshot step its log showed at the kill
	}
	var rounds []round
	runScenario(t, scenario{
		opts: Options{ExtraArgs: snapshotArgs},
		// Larger messages make larger snapshots: a kill has more of the
		// install to land in.
		workload: WorkloadOptions{BodyLines: 80},
		faults: func(r *run) {
			l := r.c.WaitLeader(30 * time.Second)
			v = (l + 1 + r.rng.IntN(len(r.c.Nodes)-1)) % len(r.c.Nodes)
			r.t.Logf("follower %s will be kept down (leader %s)", r.c.Nodes[v].ID, r.c.Nodes[l].ID)
			for k := 0; k < 2; k++ {
				r.hold(r.between(300*time.Millisecond, time.Second))
				// The leader's last index bounds the follower's from above.
				base := r.leaderIndex()
				r.c.Kill(v)
				r.waitLogPast(base, fmt.Sprintf("the leader's log past %s's end (%d)", r.c.Nodes[v].ID, base))
				r.c.StartNode(v)
				rd := round{start: r.c.starts(v)}
				if k == 0 {
					// Crash once in the middle of the catch-up: as soon as
					// the node's log shows a snapshot being written (the
					// leader's arriving, or its own), or a seeded few
					// milliseconds later.
					delay := time.Duration(r.rng.IntN(25)) * time.Millisecond
					t0 := time.Now()
					stage := ""
					r.c.Eventually(30*time.Second, r.c.Nodes[v].ID+" starts writing a snapshot", func() (bool, string) {
						log := logSince(r.c, v, rd.start)
						if strings.Contains(log, "creating new snapshot") {
							return true, ""
						}
						if strings.Contains(log, "Installed remote snapshot") {
							return true, ""
						}
						return false, "no snapshot yet"
					})
					time.Sleep(delay)
					r.c.Kill(v)
					rd.killAfter = time.Since(t0)
					log := logSince(r.c, v, rd.start)
					for _, st := range []string{"creating new snapshot", "copied to local snapshot", "state restored from snapshot", "Installed remote snapshot"} {
						if strings.Contains(log, st) {
							stage = st
						}
					}
					rd.installed = strings.Contains(log, "Installed remote snapshot")
					rd.stage = stage
					rounds = append(rounds, rd)
					r.hold(r.between(200*time.Millisecond, 800*time.Millisecond))
					r.c.StartNode(v)
					rd = round{start: r.c.starts(v)}
				}
				rounds = append(rounds, rd)
				r.waitAnswering(v)
				// Caught up: applied what the leader had committed when it
				// came back.
				target := r.leaderIndex()
				r.c.Eventually(60*time.Second, r.c.Nodes[v].ID+" catches up", func() (bool, string) {
					in, err := r.c.Info(v)
					if err != nil {
						return false, err.Error()
					}
					return in.AppliedIndex+1 >= target, fmt.Sprintf("applied %d, leader was at %d", in.AppliedIndex, target)
				})
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			installedStarts := 0
			prevInstalled := false
			for _, rd := range rounds {
				log := logSince(r.c, v, rd.start)
				if next := strings.Index(log[1:], "=== clustertest: start "); next >= 0 {
					log = log[:next+1]
				}
				n := strings.Count(log, "Installed remote snapshot")
				restored := strings.Count(log, "msg=\"restored from snapshot\"")
				if n > 0 {
					installedStarts++
				}
				how := "ran to the end"
				if rd.killAfter > 0 {
					how = fmt.Sprintf("killed %v after its snapshot step began, at %q (installed before the kill: %v)", rd.killAfter.Round(time.Millisecond), rd.stage, rd.installed)
				}
				r.t.Logf("%s start %d: %s; installed remote snapshots %d, FSM restores %d", r.c.Nodes[v].ID, rd.start, how, n, restored)
				// A start right after a kill that came only once the
				// snapshot was installed has nothing left to install.
				if rd.killAfter == 0 && n == 0 && !prevInstalled {
					r.t.Errorf("%s start %d caught up without installing a snapshot: the scenario did not test InstallSnapshot", r.c.Nodes[v].ID, rd.start)
				}
				prevInstalled = rd.killAfter > 0 && rd.installed
				if n > 0 && restored == 0 {
					r.t.Errorf("%s start %d installed a snapshot but its FSM never logged a restore", r.c.Nodes[v].ID, rd.start)
				}
			}
			if installedStarts == 0 {
				r.t.Errorf("%s never installed a snapshot", r.c.Nodes[v].ID)
			}
			var taken int
			for i := range r.c.Nodes {
				b, _ := os.ReadFile(r.c.Nodes[i].LogPath)
				taken += strings.Count(string(b), "snapshot complete up to")
			}
			r.t.Logf("snapshots taken across the nodes: %d; %s's snapshot store now: %v", taken, r.c.Nodes[v].ID, snapshotIDs(r.c, v))
			if taken < 4 {
				r.t.Errorf("only %d snapshots taken: the scenario did not force frequent snapshots", taken)
			}
		},
	})
}
