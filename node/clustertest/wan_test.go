package clustertest

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/storage/failpoint"
)

// TestFaultWANLatency: every Raft link delays each direction by 40–80 ms
// with jitter (a binary built with -tags failpoints, run with the
// raft/transport-delay failpoint: this kernel has no netem), and the nodes run the wan
// timing profile. MTA-like load must end with lost 0, duplicated 0 and
// equal replicas, and an acknowledgement must have cost at least one
// inter-site round trip (so the delay was really in the commit path).
func TestFaultWANLatency(t *testing.T) {
	var fired int
	var median time.Duration
	runScenario(t, scenario{
		tags: "failpoints",
		opts: Options{
			ExtraArgs: []string{"--raft-profile", "wan"},
			NodeEnv:   func(int) []string { return []string{failpoint.Env + "=" + failpoint.RaftDelay + "=delay(40ms-80ms)"} },
		},
		check: func(r *run, ops []*Op, f *Figures) {
			for _, n := range r.c.Nodes {
				b, _ := os.ReadFile(n.LogPath)
				if strings.Contains(string(b), "failpoint "+failpoint.RaftDelay+" fired") {
					fired++
				}
			}
			var lat []time.Duration
			for _, op := range ops {
				for _, a := range op.Attempts {
					if a.Code == 250 && a.Stage == "dot" && !a.DataSent.IsZero() {
						lat = append(lat, a.End.Sub(a.DataSent))
					}
				}
			}
			if len(lat) == 0 {
				r.t.Fatal("no delivery acknowledged over the delayed links")
			}
			slices.Sort(lat)
			median = lat[len(lat)/2]
			r.t.Logf("WAN: %d acknowledgements, median DATA-end → 250 %v, p99 %v", len(lat), median, lat[len(lat)*99/100])
		},
	})
	if fired != 3 {
		t.Fatalf("the delay fault ran on %d of 3 nodes: is the hook in node/consensus/stream.go?", fired)
	}
	// A commit needs the leader's append to reach a follower and its answer
	// to come back: at least 2 × 40 ms.
	if median < 80*time.Millisecond {
		t.Errorf("median acknowledgement %v is below one 80 ms round trip: the links were not delayed", median)
	}
}
