package admin_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// statusCluster answers ClusterStatus's questions from fixed views; the
// embedded interface leaves every other method unimplemented.
type statusCluster struct {
	admin.Cluster
	infos map[string]*peerpb.InfoResponse
}

func (c statusCluster) Servers() ([]admin.Server, error) {
	return []admin.Server{{ID: "n1", Voter: true}, {ID: "n2", Voter: true}, {ID: "n3", Voter: true}}, nil
}

func (c statusCluster) Info(_ context.Context, id string) (*peerpb.InfoResponse, error) {
	if in, ok := c.infos[id]; ok {
		return in, nil
	}
	return nil, errors.New("unreachable")
}

func (c statusCluster) Local() *peerpb.InfoResponse { return c.infos["n1"] }

func (c statusCluster) Gossip(id string) (string, bool, time.Time, bool) {
	return "", true, time.Time{}, false
}

// TestClusterStatusKeepsIntegrityWarnings: a quarantined node and a
// disagreeing check are reported next to the placement warnings, not
// replaced by them.
func TestClusterStatusKeepsIntegrityWarnings(t *testing.T) {
	c := statusCluster{infos: map[string]*peerpb.InfoResponse{
		"n1": {Id: "n1", Site: "a", State: "leader", LeaderId: "n1", Term: 2, AppliedIndex: 10, CommitIndex: 10},
		"n2": {Id: "n2", Site: "a", State: "follower", LeaderId: "n1", Term: 2, AppliedIndex: 10, CommitIndex: 10, LastContactMs: 5,
			Quarantine: "digest disagrees", Checks: []*peerpb.CheckDigest{{Index: 9, Verdict: "disagrees"}}},
	}}
	gs := grpc.NewServer()
	svc := admin.Register(gs, nil, c)
	st, err := svc.ClusterStatus(context.Background(), &adminpb.ClusterStatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(st.Warnings, "\n")
	for _, want := range []string{"n2 is quarantined", "consistency check at index 9: n2 disagrees", `placement: site "a" holds 2 of 3 voters`} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
}
