package admin

import (
	"fmt"

	"github.com/continuum-mail/continuum/proto/adminpb"
)

// FaultTolerance is how many voters the cluster can lose right now and
// still elect a leader and commit: the healthy voters (in contact with the
// leader, not far behind) minus the quorum of all voters, never below 0.
// A cluster grown one voter at a time, or with a voter down or lagging,
// shows 0: one more loss stops writes.
func FaultTolerance(st *adminpb.ClusterStatusResponse) int {
	if st.Leader == "" {
		return 0
	}
	voters, healthy := 0, 0
	for _, n := range st.Nodes {
		if n.Role != "voter" {
			continue
		}
		voters++
		if n.Healthy {
			healthy++
		}
	}
	return max(0, healthy-(voters/2+1))
}

// ReadyContactMs is the longest a follower may have gone without hearing
// from the leader and still count as "in contact" for FullyReady: a few
// heartbeats of the slowest (wan) profile.
const ReadyContactMs = 3000

// FullyReady reports whether every node of the configuration is a voter,
// in contact with the leader, knows the leader's commit index and has
// applied what the leader's state machine has: the state `continuum dev`
// waits for before it writes cluster.json ("ready and fault tolerant").
// want is the number of voters expected. When it is not ready, the
// string says why.
func FullyReady(st *adminpb.ClusterStatusResponse, want int) (bool, string) {
	if st.Leader == "" {
		return false, "no leader"
	}
	var leader *adminpb.NodeStatus
	for _, n := range st.Nodes {
		if n.Id == st.Leader && n.State == "leader" {
			leader = n
		}
	}
	if leader == nil {
		return false, "the leader does not answer"
	}
	if len(st.Nodes) != want {
		return false, fmt.Sprintf("%d of %d nodes in the configuration", len(st.Nodes), want)
	}
	for _, n := range st.Nodes {
		switch {
		case n.Role != "voter":
			return false, n.Id + " is not a voter yet"
		case !n.Healthy:
			return false, n.Id + " is not healthy"
		case n.State != "leader" && (n.LastContactMs < 0 || n.LastContactMs > ReadyContactMs):
			return false, fmt.Sprintf("%s: no contact with the leader for %d ms", n.Id, n.LastContactMs)
		case n.CommitIndex < leader.CommitIndex:
			return false, fmt.Sprintf("%s: commit index %d, leader %d", n.Id, n.CommitIndex, leader.CommitIndex)
		case n.AppliedIndex < leader.AppliedIndex:
			return false, fmt.Sprintf("%s: applied %d, leader %d", n.Id, n.AppliedIndex, leader.AppliedIndex)
		}
	}
	if ft := FaultTolerance(st); ft < (want-1)/2 {
		return false, fmt.Sprintf("fault tolerance %d", ft)
	}
	return true, ""
}
