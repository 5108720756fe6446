package node_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
)

// TestRestartedFirstNodeRejoinsGossip: n1 bootstrapped the cluster and
// runs without --join. Stopped until the others count it dead (memberlist
// then forgets where it was) and started again, it finds the pool through
// the peers it remembers in its data directory: every node sees the other
// two alive, and a write through n1 is forwarded to the leader (which
// needs the leader's gRPC address from gossip). Without the peers file n1
// stays alone in gossip (30 s and more in the CI run of 2026-12-02).
func TestRestartedFirstNodeRejoinsGossip(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	if len(c.Cfgs[0].Join) != 0 {
		t.Fatalf("n1 has --join %v; the test needs a node without", c.Cfgs[0].Join)
	}
	c.WaitLeader(10 * time.Second)
	uid := setupUser(t, c, 1)

	aliveOthers := func(i int) int {
		n := 0
		for _, m := range c.Nodes[i].Members() {
			if m.Alive && m.ID != c.Cfgs[i].ID {
				n++
			}
		}
		return n
	}
	c.StopNode(0)
	c.Eventually(30*time.Second, "n2 and n3 count n1 dead", func() bool {
		return aliveOthers(1) == 1 && aliveOthers(2) == 1
	})
	c.StartNode(0)
	c.Eventually(15*time.Second, "every node sees the other two alive", func() bool {
		for i := range c.Nodes {
			if aliveOthers(i) != 2 {
				return false
			}
		}
		return true
	})
	l := c.WaitLeader(10 * time.Second)
	if l == 0 {
		t.Fatalf("n1 leads right after its restart; the write below would not be forwarded")
	}
	for i := range 3 {
		id := fmt.Sprint("after-restart-", i)
		res, err := c.Nodes[0].Mail().Deliver(c.Ctx(10*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg(id), msg(id))
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("deliver through the restarted n1: %+v, %v", res, err)
		}
	}
	c.Eventually(10*time.Second, "the three messages on every node", func() bool {
		for i := range c.Nodes {
			if inboxCount(t, c, i, uid) != 3 {
				return false
			}
		}
		return true
	})
}
