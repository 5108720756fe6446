package node_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/storage"
)

// TestArchiveReplicaAndRecover (issue 20, in process): an archive replica
// joins as a non-voter that is never promoted and is read-only; recovery
// is refused while a quorum runs; once the voters are gone, `recover`
// makes it the one voter of a new cluster identity that takes mail; the
// recovery is in the audit log; an archive data directory refuses to
// start as a voter.
func TestArchiveReplicaAndRecover(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	setupUser(t, c, 0)
	a := c.AddNode("vault", func(cfg *config.Config) { cfg.Role = "archive" })
	for _, id := range []string{"d1", "d2", "d3"} {
		if _, err := c.Nodes[c.Leader()].Mail().Deliver(c.Ctx(10*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg(id), msg(id)); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged(20 * time.Second)
	arch := c.Nodes[a]
	if !arch.Mail().CutOff() {
		t.Fatal("the archive replica is not read-only (mail.CutOff)")
	}
	if ok, why := arch.Ready(); !ok {
		t.Fatalf("the archive replica is not ready: %s", why)
	}
	if _, err := arch.Mail().Deliver(c.Ctx(5*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg("x"), msg("x")); !errors.Is(err, mail.ErrUnavailable) {
		t.Fatalf("delivery through the archive replica: %v, want ErrUnavailable", err)
	}
	// Several promotion rounds (one a second): it stays a non-voter.
	time.Sleep(2500 * time.Millisecond)
	servers, err := c.Nodes[c.Leader()].Raft().Servers()
	if err != nil {
		t.Fatal(err)
	}
	voters := 0
	for _, s := range servers {
		if s.Suffrage == 0 { // raft.Voter
			voters++
			if string(s.ID) == c.Cfgs[a].ID {
				t.Fatal("the archive replica was promoted to voter")
			}
		}
	}
	if voters != 3 || len(servers) != 4 {
		t.Fatalf("configuration %v: want 3 voters and the archive", servers)
	}
	if in := arch.Info(); in.Role != "archive" {
		t.Fatalf("Info role %q", in.Role)
	}

	// Refused while the voters run.
	c.StopNode(a)
	plan, err := node.PlanRecover(c.Cfgs[a].DataDir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.CheckPeers(context.Background(), time.Second); !errors.Is(err, node.ErrQuorumReachable) {
		t.Fatalf("CheckPeers with three voters up: %v", err)
	}
	// The archive role is durable: its directory refuses to start as a voter.
	cfg := c.Cfgs[a]
	cfg.Role = "voter"
	if _, err := node.New(cfg, node.Options{}); err == nil || !strings.Contains(err.Error(), "archive replica") {
		t.Fatalf("starting an archive's directory as a voter: %v", err)
	}

	for i := 0; i < 3; i++ {
		c.StopNode(i)
	}
	plan, err = node.PlanRecover(c.Cfgs[a].DataDir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := plan.CheckPeers(context.Background(), time.Second); err != nil {
		t.Fatalf("CheckPeers with every voter down: %v", err)
	}
	if plan.AppliedIndex == 0 || len(plan.Voters) != 3 || plan.SelfVoter() {
		t.Fatalf("plan: applied %d, voters %v, self voter %v", plan.AppliedIndex, plan.Voters, plan.SelfVoter())
	}
	uvBefore := uidValidities(t, c.Cfgs[a].DataDir)
	ident, err := plan.Recover(nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if ident.Cluster == "" || len(ident.Supersedes) != 1 || ident.Supersedes[0] != "" {
		t.Fatalf("identity after recovery: %+v", ident)
	}
	uvAfter := uidValidities(t, c.Cfgs[a].DataDir)
	if len(uvAfter) != len(uvBefore) || len(uvBefore) == 0 {
		t.Fatalf("mailboxes before %v, after %v", uvBefore, uvAfter)
	}
	for name, v := range uvAfter {
		if v <= uvBefore[name] {
			t.Errorf("%s: UIDVALIDITY %d after the recovery, %d before: want a new, higher one", name, v, uvBefore[name])
		}
	}

	// Started again with its usual configuration (role archive), it leads
	// a one-voter cluster and takes mail.
	c.StartNode(a)
	c.Eventually(20*time.Second, "the recovered node leads", func() bool { return c.Nodes[a].Raft().IsLeader() })
	if _, err := c.Nodes[a].Mail().Deliver(c.Ctx(10*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg("after"), msg("after")); err != nil {
		t.Fatalf("delivery after the recovery: %v", err)
	}
	c.Eventually(20*time.Second, "the recovery in the audit log", func() bool {
		entries, err := c.Nodes[a].Mail().AuditEntries(0)
		if err != nil {
			return false
		}
		for _, e := range entries {
			if e.Action == node.RecoverAction && strings.Contains(e.Detail, "cluster="+ident.Cluster) {
				return true
			}
		}
		return false
	})
	if got := c.Nodes[a].ClusterID(); got != ident.Cluster {
		t.Fatalf("ClusterID %q, want %q", got, ident.Cluster)
	}
}

// uidValidities reads a stopped node's UIDVALIDITY per mailbox of
// alice@example.test.
func uidValidities(t *testing.T, dir string) map[string]uint32 {
	t.Helper()
	db, err := storage.Open(filepath.Join(dir, "state"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap := db.Snapshot()
	defer snap.Close()
	u, err := snap.UserByEmail("alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	mbs, err := snap.Mailboxes(u.Id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint32{}
	for _, m := range mbs {
		out[m.Name] = m.UidValidity
	}
	return out
}

// TestRecoverPlanAhead: the lost majority's lead is counted beyond what
// the recovery keeps (applied, and the log beyond, which it commits).
func TestRecoverPlanAhead(t *testing.T) {
	for _, c := range []struct {
		applied, last, leaderCommit uint64
		want                        uint64
		ok                          bool
	}{
		{100, 100, 0, 0, false},
		{100, 100, 90, 0, true},
		{100, 117, 110, 0, true},
		{100, 105, 130, 25, true},
		{100, 0, 130, 30, true},
	} {
		p := &node.RecoverPlan{AppliedIndex: c.applied}
		p.Raft.LastIndex = c.last
		if c.leaderCommit > 0 {
			p.Progress = &node.Progress{LeaderCommit: c.leaderCommit}
		}
		if got, ok := p.Ahead(); got != c.want || ok != c.ok {
			t.Errorf("applied %d last %d leader commit %d: Ahead %d %v, want %d %v", c.applied, c.last, c.leaderCommit, got, ok, c.want, c.ok)
		}
	}
}
