package raftfsm

import (
	"fmt"

	"github.com/continuum-mail/continuum/proto/commandpb"
)

// applyClusterRecovered records an operator's recovery from a lost
// majority (node/disaster.go) in the journal. It changes no mail state;
// the AdminCommand that wraps it puts it in the audit log.
func applyClusterRecovered(t *tx, c *commandpb.Command) (*commandpb.Result, error) {
	op := c.GetClusterRecovered()
	if op.GetNodeId() == "" || op.GetClusterId() == "" {
		return invalid("cluster recovered: node and new cluster identity are required"), nil
	}
	detail := fmt.Sprintf("node=%s cluster=%s previous=%q applied=%d term=%d log=%d",
		op.GetNodeId(), op.GetClusterId(), op.GetPreviousClusterId(), op.GetAppliedIndex(), op.GetAppliedTerm(), op.GetLogIndex())
	return okResult(), t.link("cluster-recover", 0, detail)
}
