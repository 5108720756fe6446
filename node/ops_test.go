package node_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// load is a set of writers delivering to alice through a changing set of
// nodes, the way MTAs spread over MX hosts. Each message has a unique
// X-Test-Id; acked records those answered with success.
type load struct {
	t       *testing.T
	mu      sync.Mutex
	targets []*node.Node
	acked   map[string]time.Time // X-Test-Id → when acknowledged
	tempErr int
	permErr []error
	stop    atomic.Bool
	wg      sync.WaitGroup
	seq     atomic.Int64
}

func startLoad(t *testing.T, prefix string, writers int, targets ...*node.Node) *load {
	l := &load{t: t, targets: targets, acked: map[string]time.Time{}}
	for w := 0; w < writers; w++ {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for !l.stop.Load() {
				i := l.seq.Add(1)
				l.mu.Lock()
				ts := l.targets
				l.mu.Unlock()
				if len(ts) == 0 {
					time.Sleep(10 * time.Millisecond) // no target right now; not waiting for a state
					continue
				}
				n := ts[int(i)%len(ts)]
				id := fmt.Sprintf("%s-%d", prefix, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := n.Mail().Deliver(ctx, mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg(id), msg(id))
				cancel()
				l.mu.Lock()
				switch {
				case err == nil && res[0].Err == nil:
					l.acked[id] = time.Now()
				case err == nil:
					l.permErr = append(l.permErr, fmt.Errorf("%s via %s: %w", id, n.Config().ID, res[0].Err))
				case mail.IsTemporary(err):
					l.tempErr++
				default:
					l.permErr = append(l.permErr, fmt.Errorf("%s via %s: %w", id, n.Config().ID, err))
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// setTargets replaces the nodes writers deliver through.
func (l *load) setTargets(ns ...*node.Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.targets = ns
}

// ackedCount returns how many deliveries were acknowledged so far.
func (l *load) ackedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

// waitAcked polls until at least n more deliveries are acknowledged: the
// writers make progress through whatever is happening to the cluster.
func (l *load) waitAcked(c *nodetest.Cluster, n int, timeout time.Duration) {
	l.t.Helper()
	want := l.ackedCount() + n
	c.Eventually(timeout, fmt.Sprintf("%d acknowledged deliveries", want), func() bool { return l.ackedCount() >= want })
}

// finish stops the writers and reports the figures; any permanent error is
// a failure.
func (l *load) finish() map[string]time.Time {
	l.stop.Store(true)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("load: acked %d, temporary failures %d, permanent %d", len(l.acked), l.tempErr, len(l.permErr))
	for i, err := range l.permErr {
		if i == 5 {
			break
		}
		l.t.Errorf("permanent error under load: %v", err)
	}
	if len(l.acked) == 0 {
		l.t.Fatal("no delivery acknowledged")
	}
	return l.acked
}

// storedIDs returns the X-Test-Ids in alice's INBOX on n, with counts.
func storedIDs(t *testing.T, n *node.Node, userID uint64) map[string]int {
	t.Helper()
	found := map[string]int{}
	snap := n.DB().Snapshot()
	defer snap.Close()
	mb, err := snap.MailboxByName(userID, "INBOX")
	if err != nil {
		t.Fatalf("%s: INBOX: %v", n.Config().ID, err)
	}
	err = snap.Messages(mb.Id, 1, 0, func(m *storagepbMessage) error {
		b, err := snap.Blob(m.Blob)
		if err != nil {
			return err
		}
		found[testID(b)]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// checkNoneLost asserts every acknowledged delivery is stored exactly once
// on every running node (set-full, docs/TESTPLAN.md §2).
func checkNoneLost(t *testing.T, c *nodetest.Cluster, userID uint64, acked map[string]time.Time) {
	t.Helper()
	for _, n := range c.Nodes {
		if n == nil {
			continue
		}
		found := storedIDs(t, n, userID)
		lost, dup := 0, 0
		for id := range acked {
			if found[id] == 0 {
				lost++
			}
		}
		for _, k := range found {
			if k > 1 {
				dup++
			}
		}
		t.Logf("%s: acked %d, stored %d, lost %d, duplicated %d", n.Config().ID, len(acked), len(found), lost, dup)
		if lost > 0 || dup > 0 {
			t.Errorf("%s: lost %d, duplicated %d of %d acknowledged", n.Config().ID, lost, dup, len(acked))
		}
	}
}

// voters returns the leader's view of the voters' IDs.
func voters(c *nodetest.Cluster) map[string]bool {
	out := map[string]bool{}
	l := c.Leader()
	if l < 0 {
		return out
	}
	servers, err := c.Nodes[l].Raft().Servers()
	if err != nil {
		return out
	}
	for _, s := range servers {
		if s.Suffrage == 0 {
			out[string(s.ID)] = true
		}
	}
	return out
}

func running(c *nodetest.Cluster, except ...int) []*node.Node {
	var out []*node.Node
next:
	for i, n := range c.Nodes {
		for _, e := range except {
			if i == e {
				continue next
			}
		}
		if n != nil {
			out = append(out, n)
		}
	}
	return out
}

func indexOf(c *nodetest.Cluster, id string) int {
	for i, cfg := range c.Cfgs {
		if cfg.ID == id {
			return i
		}
	}
	return -1
}

// TestTransferLeaderAndStatus drives `cluster transfer-leader` through a
// follower's admin API (forwarded to the leader), then checks that status
// reports a stopped node's site and last contact from gossip.
func TestTransferLeaderAndStatus(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	l := c.WaitLeader(10 * time.Second)
	f, target := (l+1)%3, (l+2)%3
	cl := c.Admin(f)
	ctx := c.Ctx(30 * time.Second)

	res, err := cl.TransferLeader(ctx, &adminpb.TransferLeaderRequest{To: c.Cfgs[target].ID})
	if err != nil {
		t.Fatalf("TransferLeader via follower: %v", err)
	}
	if res.Leader != c.Cfgs[target].ID {
		t.Fatalf("TransferLeader answered leader %q, want %q", res.Leader, c.Cfgs[target].ID)
	}
	c.Eventually(5*time.Second, "the chosen node leads", func() bool { return c.Leader() == target })

	// Without --to, raft picks; the leader changes.
	res, err = cl.TransferLeader(ctx, &adminpb.TransferLeaderRequest{})
	if err != nil || res.Leader == c.Cfgs[target].ID || res.Leader == "" {
		t.Fatalf("TransferLeader without --to = %v, %v; want another leader", res, err)
	}
	if _, err := cl.TransferLeader(ctx, &adminpb.TransferLeaderRequest{To: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("TransferLeader to an unknown node via a follower: %v, want NotFound", err)
	}

	// A stopped node is unreachable; status still names its site, and
	// reports last contact once gossip has declared it dead.
	down := (c.WaitLeader(10*time.Second) + 1) % 3
	c.StopNode(down)
	asker := (down + 1) % 3
	cl = c.Admin(asker)
	c.Eventually(15*time.Second, "status shows the stopped node dead in gossip", func() bool {
		st, err := cl.ClusterStatus(ctx, &adminpb.ClusterStatusRequest{})
		if err != nil {
			return false
		}
		for _, n := range st.Nodes {
			if n.Id == c.Cfgs[down].ID {
				return n.State == "unreachable" && n.Site == c.Cfgs[down].Site && n.Gossip == "dead" && n.LastContactMs >= 0 && !n.Healthy
			}
		}
		return false
	})
}

// TestMembershipChangesUnderLoad is F9: under steady delivery load, a
// fourth node joins at a new site and becomes a voter, a voter is removed,
// then the leader is removed, all through the admin API of some other node.
// No acknowledged delivery is lost, the replicas end equal, placement holds.
func TestMembershipChangesUnderLoad(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	uid := setupUser(t, c, 0)
	ld := startLoad(t, "f9", 8, running(c)...)
	ld.waitAcked(c, 50, 20*time.Second)

	// 1. A fourth node at site d joins and is promoted once caught up.
	n4 := c.AddNode("d", nil)
	c.WaitVoters(4, 30*time.Second)
	ld.setTargets(running(c)...)
	ld.waitAcked(c, 50, 20*time.Second)

	// 2. Remove a voter that is not the leader (through a third node).
	l := c.WaitLeader(10 * time.Second)
	victim := (l + 1) % 4
	asker := (l + 2) % 4
	if _, err := c.Admin(asker).RemoveNode(c.Ctx(30*time.Second), &adminpb.RemoveNodeRequest{Id: c.Cfgs[victim].ID}); err != nil {
		t.Fatalf("remove %s: %v", c.Cfgs[victim].ID, err)
	}
	c.WaitVoters(3, 10*time.Second)
	ld.setTargets(running(c, victim)...)
	c.StopNode(victim)
	ld.waitAcked(c, 50, 20*time.Second)

	// 3. Remove the leader, asking the leader itself: it hands leadership
	// over first, then the new leader removes it.
	l = c.WaitLeader(10 * time.Second)
	oldLeader := c.Cfgs[l].ID
	if _, err := c.Admin(l).RemoveNode(c.Ctx(30*time.Second), &adminpb.RemoveNodeRequest{Id: oldLeader}); err != nil {
		t.Fatalf("remove the leader %s: %v", oldLeader, err)
	}
	c.Eventually(10*time.Second, "the old leader out of the configuration", func() bool {
		v := voters(c)
		return len(v) == 2 && !v[oldLeader]
	})
	ld.setTargets(running(c, victim, l)...)
	c.StopNode(l)
	ld.waitAcked(c, 50, 20*time.Second)
	acked := ld.finish()

	c.WaitConverged(20 * time.Second)
	checkNoneLost(t, c, uid, acked)
	if !voters(c)[c.Cfgs[n4].ID] {
		t.Errorf("the node added at site d is not a voter: %v", voters(c))
	}
	st, err := c.Admin(n4).ClusterStatus(c.Ctx(10*time.Second), &adminpb.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Warnings) > 0 {
		t.Errorf("status warnings after the changes: %v", st.Warnings)
	}
	sites := map[string]int{}
	nv := 0
	for _, n := range st.Nodes {
		if n.Role == "voter" {
			sites[n.Site]++
			nv++
		}
	}
	if w := admin.PlacementWarnings(nv, sites); len(w) > 0 || nv != 2 {
		t.Errorf("placement: %d voters by site %v: %v", nv, sites, w)
	}
}

// TestWipedVoterRejoinsAsNonVoter is F10: a voter's data directory is wiped
// and the node restarted with the same ID and addresses. Its Raft transport
// stays closed until the leader has removed the old voter and re-added it as
// a non-voter; it is promoted only once caught up; nothing acknowledged is
// lost, and at no point does the leader count an empty-log voter.
func TestWipedVoterRejoinsAsNonVoter(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	uid := setupUser(t, c, 0)
	l := c.WaitLeader(10 * time.Second)
	w := (l + 1) % 3
	ld := startLoad(t, "f10", 8, running(c)...)
	ld.waitAcked(c, 50, 20*time.Second)

	ld.setTargets(running(c, w)...)
	c.StopNode(w)
	if err := removeAll(c.Cfgs[w].DataDir); err != nil {
		t.Fatal(err)
	}
	ld.waitAcked(c, 50, 20*time.Second)

	// Watch the leader's configuration while the wiped node comes back: the
	// old voter entry must be replaced by a non-voter before the node's log
	// is served, and it must be a voter again only with a caught-up log.
	id := c.Cfgs[w].ID
	var sawNonVoter atomic.Bool
	others := running(c, w) // read by the watcher; c.Nodes changes under it
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case <-stopWatch:
				return
			case <-time.After(5 * time.Millisecond):
			}
			var ln *node.Node
			for _, n := range others {
				if n.Raft().IsLeader() {
					ln = n
				}
			}
			if ln == nil {
				continue
			}
			servers, err := ln.Raft().Servers()
			if err != nil {
				continue
			}
			for _, s := range servers {
				if string(s.ID) != id {
					continue
				}
				if s.Suffrage != 0 {
					sawNonVoter.Store(true)
				}
			}
		}
	}()
	c.StartNode(w)
	wn := c.Nodes[w]
	c.Eventually(30*time.Second, "the wiped node back as a voter", func() bool {
		if wn.Raft().Fresh() {
			return false
		}
		return voters(c)[id] && wn.FSM().AppliedIndex() > 0
	})
	close(stopWatch)
	<-watchDone
	if !sawNonVoter.Load() {
		t.Errorf("the wiped voter was never a non-voter: it came back as the old voter")
	}
	ld.setTargets(running(c)...)
	ld.waitAcked(c, 50, 20*time.Second)
	acked := ld.finish()
	c.WaitConverged(20 * time.Second)
	checkNoneLost(t, c, uid, acked)
}

// TestFreshNodeHeldUntilAdmitted: a wiped voter whose join is never
// answered (every other node unreachable) takes no part in Raft: the leader
// cannot count it, and it reports itself not ready.
func TestFreshNodeHeldUntilAdmitted(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	setupUser(t, c, 0)
	l := c.WaitLeader(10 * time.Second)
	w := (l + 1) % 3
	c.StopNode(w)
	if err := removeAll(c.Cfgs[w].DataDir); err != nil {
		t.Fatal(err)
	}
	c.Cfgs[w].Join = []string{nodetest.FreeAddr(t)} // nobody there
	c.StartNode(w)
	wn := c.Nodes[w]
	// The leader keeps replicating to the old voter's address; the held
	// transport must refuse it, so the wiped node's log stays empty.
	lastIndex := c.Nodes[l].Raft().LastIndex()
	c.Eventually(10*time.Second, "the leader's log to grow past the restart", func() bool {
		_, err := c.Nodes[l].Mail().Deliver(c.Ctx(5*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg("held"), msg("held"))
		return err == nil && c.Nodes[l].Raft().LastIndex() > lastIndex
	})
	deadline := time.Now().Add(2 * c.Nodes[l].Raft().Profile().Election)
	for time.Now().Before(deadline) {
		if got := wn.Raft().LastIndex(); got != 0 {
			t.Fatalf("a held fresh node received log entries (last index %d)", got)
		}
		if ok, _ := wn.Ready(); ok {
			t.Fatal("a held fresh node reports ready")
		}
		time.Sleep(20 * time.Millisecond) // sampling for a bounded period: nothing to wait for
	}
}

func removeAll(dir string) error { return osRemoveAll(dir) }
