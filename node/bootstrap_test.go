package node_test

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/nodetest"
)

// TestBootstrapExpectFormsAllVoters starts three nodes at once with
// --bootstrap-expect 3: the first configuration any leader has holds all
// three as voters (no two-voter window), and a fourth node that starts
// later with the same flag joins as a non-voter and is promoted.
func TestBootstrapExpectFormsAllVoters(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 3, BootstrapExpect: true})
	l := c.WaitLeader(10 * time.Second)
	servers, err := c.Nodes[l].Raft().Servers()
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 3 {
		t.Fatalf("configuration %v, want 3 servers", servers)
	}
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			t.Fatalf("configuration %v: %s is not a voter", servers, s.ID)
		}
	}
	// The log holds the bootstrap entry (index 1, term 1) and at most two
	// entries per later term, nothing else: the no-op raft appends on
	// election and the barrier a new leader commits before it serves reads
	// (consensus termReady, one per term). The one-by-one path would have
	// added two non-voters and promoted them, four configuration entries.
	if last, term := c.Nodes[l].Raft().LastIndex(), c.Nodes[l].Raft().Term(); last > 1+2*(term-1) {
		t.Errorf("leader's last index %d in term %d before any write: configuration changed after bootstrap", last, term)
	}
	setupUser(t, c, l)

	i := c.AddNode("d", func(cfg *config.Config) { cfg.BootstrapExpect = 3 })
	c.WaitVoters(4, 30*time.Second)
	// The leader may list it as a voter before its first AppendEntries has
	// arrived (promotion allows 64 entries of lag; over mTLS the first
	// connection takes a handshake): poll, with a deadline.
	c.Eventually(10*time.Second, "the late node to hold the cluster's log (added, promoted)", func() bool {
		return c.Nodes[i].Raft().LastIndex() >= 6
	})
}
