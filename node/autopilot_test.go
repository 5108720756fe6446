package node_test

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
)

func voterIDs(t *testing.T, c *nodetest.Cluster) map[string]bool {
	t.Helper()
	l := c.Leader()
	if l < 0 {
		return nil
	}
	servers, err := c.Nodes[l].Raft().Servers()
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			out[string(s.ID)] = true
		}
	}
	return out
}

// TestAutopilotRemovesDeadVoterOnlyWhileSafe: with the option on, a voter
// dead for longer than the bound is removed from a 4-voter cluster; a
// second death is not acted on, because three voters is the floor.
func TestAutopilotRemovesDeadVoterOnlyWhileSafe(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Nodes: 4, Configure: func(i int, cfg *config.Config) {
		cfg.AutopilotDeadAfter = config.Duration{Duration: time.Second}
	}})
	l := c.WaitLeader(10 * time.Second)
	dead := (l + 1) % 4
	deadID := c.Cfgs[dead].ID
	c.StopNode(dead)
	c.Eventually(30*time.Second, "autopilot to remove "+deadID, func() bool {
		v := voterIDs(t, c)
		return v != nil && len(v) == 3 && !v[deadID]
	})

	second := (l + 2) % 4
	if second == dead {
		second = (l + 3) % 4
	}
	c.StopNode(second)
	// Watch for well past the bound: the configuration must keep 3 voters.
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		if v := voterIDs(t, c); v != nil && len(v) < 3 {
			t.Fatalf("autopilot shrank the cluster to %d voters: %v", len(v), v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The two survivors are still a quorum of three: writes go on. An
	// election may be under way when the write is made (a 52 s jump of the
	// machine's clock once made the last leader step down and the two
	// survivors split their votes): as an MTA would, retry a temporary
	// failure, for a bounded time. Any other error fails at once.
	c.Eventually(20*time.Second, "a write after losing two of four", func() bool {
		err := c.Nodes[c.WaitLeader(10*time.Second)].Mail().AddDomain(c.Ctx(5*time.Second), "after.test", "")
		switch {
		case err == nil:
			return true
		case errors.Is(err, mail.ErrUnavailable), errors.Is(err, mail.ErrUnknownOutcome):
			t.Logf("write after losing two of four: %v (retrying)", err)
			return false
		case errors.Is(err, mail.ErrExists): // an earlier try committed after all
			return true
		}
		t.Fatalf("write after losing two of four: %v", err)
		return false
	})
}
