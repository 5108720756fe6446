package node_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// checkVerdicts proposes a consistency check through node via and waits
// until every running node has judged its digest; it returns each node's
// verdict.
func checkVerdicts(t *testing.T, c *nodetest.Cluster, via int) []string {
	t.Helper()
	idx, _, err := c.Nodes[via].ProposeCheck(c.Ctx(10*time.Second), "test")
	if err != nil {
		t.Fatalf("propose check: %v", err)
	}
	verdicts := make([]string, len(c.Nodes))
	c.Eventually(30*time.Second, "every node judged the check", func() bool {
		for i, n := range c.Nodes {
			verdicts[i] = "pending"
			if n == nil {
				verdicts[i] = "stopped"
				continue
			}
			for _, ch := range n.Info().Checks {
				if ch.Index == idx {
					verdicts[i] = ch.Verdict
				}
			}
			if verdicts[i] == "pending" {
				return false
			}
		}
		return true
	})
	return verdicts
}

// TestConsistencyCheckQuarantinesTheOddReplica: on a healthy cluster every
// replica's digest at a check agrees. A row planted behind raft's back in
// one follower's state makes that follower — and only it — judge itself
// out and quarantine: unready, QUARANTINE written, a restart refused.
// `node rebuild` then lets it rejoin from a snapshot, equal to the others.
func TestConsistencyCheckQuarantinesTheOddReplica(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	l := c.WaitLeader(10 * time.Second)
	ctx := c.Ctx(10 * time.Second)
	for _, d := range []string{"one.test", "two.test"} {
		if err := c.Nodes[l].Mail().AddDomain(ctx, d, ""); err != nil {
			t.Fatal(err)
		}
	}
	f := (l + 1) % 3
	if v := checkVerdicts(t, c, f); v[0] != "agrees" || v[1] != "agrees" || v[2] != "agrees" {
		t.Fatalf("healthy cluster: verdicts %v, want agrees everywhere", v)
	}

	// Divergence: a domain only f has.
	b := c.Nodes[f].DB().NewBatch()
	if err := b.PutDomain(&storagepb.Domain{Name: "planted.test"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	v := checkVerdicts(t, c, l)
	for i := range v {
		want := "agrees"
		if i == f {
			want = "disagrees"
		}
		if v[i] != want {
			t.Errorf("after planting a row on node %d: node %d verdict %q, want %q (all: %v)", f, i, v[i], want, v)
		}
	}
	if q := c.Nodes[f].Quarantined(); q == "" {
		t.Fatal("the odd replica is not quarantined")
	} else {
		t.Logf("quarantined: %s", q)
	}
	if ok, why := c.Nodes[f].Ready(); ok {
		t.Error("a quarantined node reports ready")
	} else {
		t.Logf("readyz: %s", why)
	}
	for i := range c.Nodes {
		if i != f && c.Nodes[i].Quarantined() != "" {
			t.Errorf("healthy node %d quarantined: %s", i, c.Nodes[i].Quarantined())
		}
	}

	c.StopNode(f)
	dir := c.Cfgs[f].DataDir
	if _, err := os.Stat(filepath.Join(dir, node.QuarantineFile)); err != nil {
		t.Fatalf("no quarantine record: %v", err)
	}
	if _, err := node.New(c.Cfgs[f], node.Options{}); !errors.Is(err, node.ErrQuarantined) {
		t.Fatalf("start of a quarantined node: %v, want ErrQuarantined", err)
	}
	moved, err := node.Rebuild(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(moved, "state")); err != nil {
		t.Fatalf("the damaged state was not kept in %s: %v", moved, err)
	}
	c.StartNode(f)
	c.WaitVoters(3, 60*time.Second)
	c.WaitConverged(60 * time.Second)
	if v := checkVerdicts(t, c, l); v[0] != "agrees" || v[1] != "agrees" || v[2] != "agrees" {
		t.Fatalf("after the rebuild: verdicts %v, want agrees everywhere", v)
	}
}

// TestRebuildRefusesARunningNode: the databases' locks show the node runs.
func TestRebuildRefusesARunningNode(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 1})
	if _, err := node.Rebuild(c.Cfgs[0].DataDir, false); err == nil {
		t.Fatal("rebuild of a running node's directory succeeded")
	} else {
		t.Logf("refused: %v", err)
	}
}
