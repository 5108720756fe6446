package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/storage/failpoint"
)

func TestMain(m *testing.M) {
	code := m.Run()
	RemoveBinaries()
	os.Exit(code)
}

// params reads CONTINUUM_FAULT_SEED and CONTINUUM_FAULT_DURATION.
func params(t *testing.T) (uint64, time.Duration) {
	t.Helper()
	seed := uint64(1)
	if s := os.Getenv("CONTINUUM_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CONTINUUM_FAULT_SEED %q: %v", s, err)
		}
		seed = v
	}
	dur := 15 * time.Second
	if s := os.Getenv("CONTINUUM_FAULT_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil || v <= 0 {
			t.Fatalf("CONTINUUM_FAULT_DURATION %q: want a positive duration like 30s or 10m", s)
		}
		dur = v
	}
	return seed, dur
}

// run is one scenario in progress.
type run struct {
	t        *testing.T
	c        *Cluster
	w        *Workload
	rng      *rand.Rand
	seed     uint64
	deadline time.Time
}

func (r *run) done() bool { return time.Now().After(r.deadline) }

// between returns a seeded duration in [lo, hi).
func (r *run) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)))
}

// hold lets the load run under the current faults for d (never past the
// deadline by more than d). This waits for time, not for a state.
func (r *run) hold(d time.Duration) { time.Sleep(d) }

// waitAnswering waits until node i answers and follows a leader.
func (r *run) waitAnswering(i int) {
	r.t.Helper()
	r.c.Eventually(60*time.Second, r.c.Nodes[i].ID+" answers with a leader", func() (bool, string) {
		in, err := r.c.Info(i)
		if err != nil {
			return false, err.Error()
		}
		return in.LeaderId != "", "no leader known"
	})
}

// scenario is a fault script run under load.
type scenario struct {
	tags     string
	users    int
	workload WorkloadOptions
	// faults runs while the load runs; it returns at or after r.deadline.
	faults func(r *run)
	// check adds scenario-specific assertions on the history.
	check func(r *run, ops []*Op, f *Figures)
	// expectLoss inverts the set-full verdict (the planted fault).
	expectLoss bool
	// expectDivergence lets the replicas differ (a planted fault): the
	// test asserts that itself; every other violation still fails it.
	expectDivergence bool
	// opts are the cluster's options; Tags and Users are set from tags
	// and users.
	opts Options
	// beforeQuiesce runs after the load stopped, with every fault still in
	// place, before Quiesce heals and stops the cluster.
	beforeQuiesce func(r *run, ops []*Op)
}

func runScenario(t *testing.T, sc scenario) *Figures {
	seed, dur := params(t)
	if sc.users == 0 {
		sc.users = 3
	}
	var users []string
	for i := 0; i < sc.users; i++ {
		users = append(users, fmt.Sprintf("user%d", i+1))
	}
	start := time.Now()
	opts := sc.opts
	opts.Tags, opts.Users = sc.tags, users
	c := Start(t, opts)
	t.Logf("cluster up in %v: %s (subnet 10.231.%d.0/24, dir %s)", time.Since(start).Round(time.Millisecond), c.Net.Tag, c.Net.Subnet, c.Dir)
	wo := sc.workload
	wo.Seed = seed
	w := c.StartWorkload(wo)
	// A scenario that fails half-way (t.Fatal) must not leave its senders
	// running into the next test's cluster, which reuses the subnet.
	t.Cleanup(func() { w.Stop() })
	var figures *Figures
	var ops []*Op
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		if ops == nil {
			ops = w.Ops()
		}
		if p, err := c.SaveHistory(seed, ops, figures); err == nil {
			t.Logf("history: %s", p)
		}
	})
	r := &run{t: t, c: c, w: w, rng: rand.New(rand.NewPCG(seed, 0x5eed)), seed: seed, deadline: time.Now().Add(dur)}
	if sc.faults != nil {
		sc.faults(r)
	}
	if d := time.Until(r.deadline); d > 0 {
		time.Sleep(d)
	}
	ops = w.Stop()
	if sc.beforeQuiesce != nil {
		sc.beforeQuiesce(r, ops)
	}
	c.Quiesce()
	f, err := c.Check(ops)
	if err != nil {
		t.Fatal(err)
	}
	figures = f
	t.Logf("figures (seed %d, load %v): %s", seed, dur, f)
	t.Logf("TOTAL %s: acked=%d lost=%d duplicated=%d unknown=%d replicas_equal=%v hung_at_stop=%d", t.Name(), f.Acked, f.Lost, f.Duplicated, f.Unknown, f.ReplicasEqual, c.HungStops())
	violations := f.Violations
	if sc.expectDivergence {
		violations = nil
		for _, v := range f.Violations {
			if !strings.HasPrefix(v, "replicas differ") {
				violations = append(violations, v)
			}
		}
	}
	if len(violations) > 0 && !sc.expectLoss {
		t.Errorf("%d violations:\n  %s", len(violations), strings.Join(violations, "\n  "))
	}
	if !f.ReplicasEqual && !sc.expectDivergence {
		t.Errorf("replicas differ: applied %v, digests %v", f.Applied, f.Digests)
	}
	if f.Duplicated != 0 {
		t.Errorf("duplicated = %d, want 0 (e.g. %v)", f.Duplicated, f.DuplicatedIDs)
	}
	if f.Acked == 0 {
		t.Errorf("acked = 0: the scenario delivered nothing, so it proved nothing")
	}
	if !sc.expectLoss {
		if f.Lost != 0 {
			t.Errorf("lost = %d, want 0 (e.g. %v)", f.Lost, f.LostIDs)
		}
		// docs/ARCHITECTURE.md §1: a cluster failure is never a 5xx.
		if f.Failed != 0 {
			for _, op := range ops {
				if op.Outcome == OutcomeFail {
					a := op.Attempts[len(op.Attempts)-1]
					t.Errorf("%s bounced by %s at %s: %s", op.TestID, c.Nodes[a.Node].ID, a.Stage, a.Reply)
					break
				}
			}
			t.Errorf("failed (5xx) = %d, want 0", f.Failed)
		}
	}
	if sc.check != nil {
		sc.check(r, ops, f)
	}
	return f
}

// noAckFrom fails the test for any 250 that node gave to a message whose
// final "." it received inside [from, to]: while it cannot reach a quorum
// nothing it acknowledges can be committed.
func noAckFrom(r *run, ops []*Op, node int, from, to time.Time, why string) {
	for _, op := range ops {
		for _, a := range op.Attempts {
			if a.Node == node && a.Code == 250 && a.Stage == "dot" && a.DataSent.After(from) && a.DataSent.Before(to) {
				r.t.Errorf("%s acknowledged %s (data at +%v) while %s [+%v, +%v]", r.c.Nodes[node].ID, op.TestID,
					a.DataSent.Sub(r.c.events.t0).Round(time.Millisecond), why,
					from.Sub(r.c.events.t0).Round(time.Millisecond), to.Sub(r.c.events.t0).Round(time.Millisecond))
			}
		}
	}
}

// TestFaultF1Steady: steady load at every node, no fault; replicated
// consistency checks (`continuum cluster check`) run under the load, each
// asked at another node, and every one must find all replicas equal.
func TestFaultF1Steady(t *testing.T) {
	var checks []*adminpb.CheckResponse
	runScenario(t, scenario{
		faults: func(r *run) {
			for k := 0; time.Until(r.deadline) > 3*time.Second; k++ {
				r.hold(r.between(time.Second, 2*time.Second))
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				res, err := r.c.Admin(k%len(r.c.Nodes)).Check(ctx, &adminpb.CheckRequest{TimeoutMs: 55_000})
				cancel()
				if err != nil {
					r.t.Errorf("cluster check %d via %s: %v", k+1, r.c.Nodes[k%len(r.c.Nodes)].ID, err)
					continue
				}
				checks = append(checks, res)
				r.t.Logf("cluster check %d at index %d: consistent %v in %v: %v", k+1, res.Index, res.Consistent, time.Duration(res.TookMs)*time.Millisecond, res.Nodes)
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			if len(checks) == 0 {
				r.t.Error("no consistency check ran under the load")
			}
			for _, res := range checks {
				if !res.Consistent || len(res.Nodes) != len(r.c.Nodes) {
					r.t.Errorf("check at index %d: consistent %v, %d nodes: %v", res.Index, res.Consistent, len(res.Nodes), res.Nodes)
				}
				for _, n := range res.Nodes {
					if n.Verdict != "agrees" {
						r.t.Errorf("check at index %d: %s verdict %q (%s)", res.Index, n.Id, n.Verdict, n.Error)
					}
				}
			}
		},
	})
}

// TestFaultF2KillLeader: kill -9 the leader repeatedly under load and
// restart it; writes resume within election timeout + 2 s.
func TestFaultF2KillLeader(t *testing.T) {
	var kills []time.Time
	var killed []int
	runScenario(t, scenario{
		faults: func(r *run) {
			for !r.done() {
				l := r.c.WaitLeader(30 * time.Second)
				r.hold(r.between(500*time.Millisecond, 1500*time.Millisecond))
				kills = append(kills, time.Now())
				killed = append(killed, l)
				r.c.Kill(l)
				r.hold(r.between(time.Second, 3*time.Second))
				r.c.StartNode(l)
				r.waitAnswering(l)
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			bound := ElectionTimeout + 2*time.Second
			for k, at := range kills {
				first := time.Time{}
				for _, op := range ops {
					for _, a := range op.Attempts {
						if a.Code == 250 && a.Stage == "dot" && a.Node != killed[k] && a.DataSent.After(at) && (first.IsZero() || a.End.Before(first)) {
							first = a.End
						}
					}
				}
				if first.IsZero() {
					r.t.Errorf("kill %d of %s: no write acknowledged afterwards", k+1, r.c.Nodes[killed[k]].ID)
					continue
				}
				resume := first.Sub(at)
				r.t.Logf("kill %d of leader %s: writes resumed after %v", k+1, r.c.Nodes[killed[k]].ID, resume.Round(time.Millisecond))
				if resume > bound {
					r.t.Errorf("kill %d: writes resumed after %v, want within %v (election timeout + 2 s)", k+1, resume, bound)
				}
			}
		},
	})
}

// TestFaultF3KillRandom: kill -9 a random node under load, restart it; it
// catches up and equals the others.
func TestFaultF3KillRandom(t *testing.T) {
	runScenario(t, scenario{
		faults: func(r *run) {
			for !r.done() {
				v := r.rng.IntN(len(r.c.Nodes))
				r.hold(r.between(300*time.Millisecond, 1500*time.Millisecond))
				r.c.Kill(v)
				r.hold(r.between(500*time.Millisecond, 2500*time.Millisecond))
				r.c.StartNode(v)
				r.waitAnswering(v)
				r.c.WaitLeader(30 * time.Second)
			}
		},
	})
}

// TestFaultF4IsolateLeader: cut the leader off from both other sites; it
// greets 421 within 2 × election timeout + heartbeat and acknowledges
// nothing while cut off; heal; repeat.
func TestFaultF4IsolateLeader(t *testing.T) {
	type window struct {
		node     int
		from, to time.Time
		greeted  time.Duration
	}
	var windows []window
	runScenario(t, scenario{
		faults: func(r *run) {
			for !r.done() {
				l := r.c.WaitLeader(30 * time.Second)
				r.hold(r.between(500*time.Millisecond, 1500*time.Millisecond))
				r.c.Isolate(l)
				w := window{node: l, from: time.Now()}
				r.c.Eventually(20*time.Second, r.c.Nodes[l].ID+" greets 421 when cut off", func() (bool, string) {
					// The 421 is decided at accept: time the probe by its dial.
					probe := time.Now()
					code, err := r.c.Greeting(l, 2*time.Second)
					if err != nil {
						return false, err.Error()
					}
					if code == 421 {
						w.greeted = probe.Sub(w.from)
						return true, ""
					}
					return false, fmt.Sprintf("greeting %d", code)
				})
				r.c.Eventually(30*time.Second, "a leader on the majority side", func() (bool, string) {
					nl := r.c.Leader()
					return nl >= 0 && nl != l, fmt.Sprintf("leader %d", nl)
				})
				r.hold(r.between(time.Second, 2*time.Second))
				w.to = time.Now()
				r.c.Heal()
				windows = append(windows, w)
				r.c.Eventually(30*time.Second, r.c.Nodes[l].ID+" greets 220 after the heal", func() (bool, string) {
					code, err := r.c.Greeting(l, 2*time.Second)
					if err != nil {
						return false, err.Error()
					}
					return code == 220, fmt.Sprintf("greeting %d", code)
				})
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			bound := 2*ElectionTimeout + Heartbeat
			for k, w := range windows {
				r.t.Logf("isolation %d of leader %s: greets 421 after %v (bound %v)", k+1, r.c.Nodes[w.node].ID, w.greeted.Round(time.Millisecond), bound)
				if w.greeted > bound {
					r.t.Errorf("isolation %d: %s greeted 421 only after %v, want within %v", k+1, r.c.Nodes[w.node].ID, w.greeted, bound)
				}
				noAckFrom(r, ops, w.node, w.from, w.to, "cut off")
			}
		},
	})
}

// leaderWatch samples every node's view and records each term's leaders:
// two leaders in one term is a split brain.
type leaderWatch struct {
	mu    sync.Mutex
	terms map[uint64]map[string]bool
	stop  chan struct{}
	done  chan struct{}
}

func watchLeaders(c *Cluster) *leaderWatch {
	lw := &leaderWatch{terms: map[uint64]map[string]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lw.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, in := range c.Infos() {
				if in != nil && in.State == "leader" {
					lw.mu.Lock()
					if lw.terms[in.Term] == nil {
						lw.terms[in.Term] = map[string]bool{}
					}
					lw.terms[in.Term][in.Id] = true
					lw.mu.Unlock()
				}
			}
			select {
			case <-lw.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return lw
}

func (lw *leaderWatch) Stop() map[uint64]map[string]bool {
	close(lw.stop)
	<-lw.done
	return lw.terms
}

// TestFaultF5Partitions: {A}|{B,C}, {A,B}|{C}, a bridge (B sees both A and
// C, which cannot see each other) and a one-way drop from the leader to a
// follower; one leader per term; replicas equal after the heal.
func TestFaultF5Partitions(t *testing.T) {
	var lw *leaderWatch
	runScenario(t, scenario{
		faults: func(r *run) {
			lw = watchLeaders(r.c)
			perm := r.rng.Perm(len(r.c.Nodes))
			a, b, cc := perm[0], perm[1], perm[2]
			steps := []struct {
				name  string
				apply func()
			}{
				{"{A}|{B,C}", func() { r.c.Partition([]int{a}, []int{b, cc}) }},
				{"{A,B}|{C}", func() { r.c.Partition([]int{a, b}, []int{cc}) }},
				{"bridge B: A|C", func() { r.c.Partition([]int{a}, []int{cc}) }},
				{"one-way leader→follower", func() {
					l := r.c.WaitLeader(30 * time.Second)
					r.c.Block(l, (l+1+r.rng.IntN(len(r.c.Nodes)-1))%len(r.c.Nodes))
				}},
			}
			per := time.Until(r.deadline) / time.Duration(len(steps))
			for k := 0; !r.done() || k < len(steps); k++ {
				s := steps[k%len(steps)]
				r.c.WaitLeader(30 * time.Second)
				r.t.Logf("+%v partition %s (A=%s B=%s C=%s)", time.Since(r.c.events.t0).Round(time.Millisecond), s.name, r.c.Nodes[a].ID, r.c.Nodes[b].ID, r.c.Nodes[cc].ID)
				s.apply()
				r.hold(max(per*2/3, 2*time.Second))
				r.c.Heal()
				r.c.WaitLeader(30 * time.Second)
				r.hold(max(per/3, time.Second))
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			terms := lw.Stop()
			for term, ids := range terms {
				if len(ids) > 1 {
					r.t.Errorf("term %d had %d leaders: %v", term, len(ids), ids)
				}
			}
			r.t.Logf("leaders observed in %d terms, one each", len(terms))
		},
	})
}

// TestFaultF6PauseLeader: SIGSTOP the leader 2–5 s, then SIGCONT; what it
// received meanwhile resolves as unknown (4xx), never 250.
func TestFaultF6PauseLeader(t *testing.T) {
	type window struct {
		node     int
		from, to time.Time
	}
	var windows []window
	runScenario(t, scenario{
		faults: func(r *run) {
			for !r.done() {
				l := r.c.WaitLeader(30 * time.Second)
				r.hold(r.between(500*time.Millisecond, 1500*time.Millisecond))
				r.c.Pause(l) // returns once the process is stopped
				w := window{node: l, from: time.Now()}
				pause := r.between(2*time.Second, 5*time.Second)
				r.c.Eventually(pause+20*time.Second, "a new leader while "+r.c.Nodes[l].ID+" is stopped", func() (bool, string) {
					nl := r.c.Leader()
					return nl >= 0 && nl != l, fmt.Sprintf("leader %d", nl)
				})
				if d := time.Until(w.from.Add(pause)); d > 0 {
					r.hold(d)
				}
				w.to = time.Now()
				r.c.Resume(l)
				windows = append(windows, w)
				r.waitAnswering(l)
				r.hold(time.Second)
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			for k, w := range windows {
				r.t.Logf("pause %d of leader %s for %v", k+1, r.c.Nodes[w.node].ID, w.to.Sub(w.from).Round(time.Millisecond))
				noAckFrom(r, ops, w.node, w.from, w.to, "stopped by SIGSTOP")
			}
		},
	})
}

// TestFaultF8TimeoutRetry: senders often give up on the reply to the
// final "." after a few milliseconds, before the commit is acknowledged,
// and retry the same bytes at the same node or another: 0 duplicated, 0
// lost.
func TestFaultF8TimeoutRetry(t *testing.T) {
	runScenario(t, scenario{
		workload: WorkloadOptions{
			Senders:  6,
			SameNode: 0.3,
			DotTimeout: func(r *rand.Rand) time.Duration {
				if r.IntN(2) == 0 {
					return time.Duration(1+r.IntN(40)) * time.Millisecond
				}
				return 8 * time.Second
			},
		},
		check: func(r *run, ops []*Op, f *Figures) {
			r.t.Logf("%d messages had an attempt that timed out after the final \".\" (%d of them stored once, as acked or unknown)", f.Ambiguous, f.Ambiguous)
			if f.Ambiguous == 0 {
				r.t.Errorf("no attempt timed out after DATA: the scenario did not test retries")
			}
		},
	})
}

// TestCheckerCatchesPlantedLoss: a binary built with -tags failpoints and
// run with mail/deliver-drop=every(10) acknowledges every 10th delivery
// without proposing it; set-full must
// report the losses. A checker that cannot fail proves nothing.
func TestCheckerCatchesPlantedLoss(t *testing.T) {
	var fired int
	f := runScenario(t, scenario{
		tags:       "failpoints",
		expectLoss: true,
		opts:       Options{NodeEnv: func(int) []string { return []string{failpoint.Env + "=" + failpoint.DeliverDrop + "=every(10)"} }},
		faults: func(r *run) {
			// A short load is enough: one in ten deliveries is dropped.
			r.deadline = time.Now().Add(min(time.Until(r.deadline), 6*time.Second))
		},
		check: func(r *run, ops []*Op, f *Figures) {
			for _, n := range r.c.Nodes {
				b, _ := os.ReadFile(n.LogPath)
				fired += strings.Count(string(b), "failpoint "+failpoint.DeliverDrop+" fired")
			}
		},
	})
	if fired == 0 {
		t.Fatalf("the planted fault never fired: the hook is missing from mail.Service.Deliver. Add, in node/mail/deliver.go, just before `res, err := s.proposeWait(`:\n\tif failpoint.Hit(failpoint.DeliverDrop, 0) {\n\t\treturn make([]Delivery, len(env.To)), nil\n\t}")
	}
	t.Logf("planted drops: %d; set-full reports lost %d", fired, f.Lost)
	if f.Lost == 0 {
		t.Fatalf("the planted fault dropped %d deliveries but set-full reports lost = 0: the checker cannot see a loss", fired)
	}
	if f.Lost > fired {
		t.Errorf("set-full reports lost %d, more than the %d planted drops", f.Lost, fired)
	}
}
