package node_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/commandpb"
)

// BenchmarkSingleWriteLatency: one client, one write at a time (STORE
// +FLAGS / -FLAGS on one message, as IMAP STORE calls it, waiting for the
// local apply: read-your-writes), at the leader and at a follower of a
// 3-node cluster over loopback TCP (local profile). Reports p50/p99; the
// two sub-benchmarks run in one process so a shared machine's load falls
// on both (docs/notes/read-path.md).
func BenchmarkSingleWriteLatency(b *testing.B) {
	c := nodetest.Start(b, nodetest.Options{})
	ctx := context.Background()
	m0 := c.Nodes[0].Mail()
	if err := m0.AddDomain(ctx, "example.test", ""); err != nil {
		b.Fatal(err)
	}
	if _, err := m0.AddUser(ctx, "alice@example.test", "correct horse battery", 0); err != nil {
		b.Fatal(err)
	}
	msg := []byte("Subject: x\r\n\r\nbody\r\n")
	d, err := m0.Deliver(ctx, mail.Envelope{From: "a@remote.test", To: []string{"alice@example.test"}}, msg, msg)
	if err != nil || d[0].Err != nil {
		b.Fatal(err, d)
	}
	box, uid := d[0].MailboxID, d[0].UID
	leader := c.Leader()
	for _, tc := range []struct {
		name string
		node int
	}{{"leader", leader}, {"follower", (leader + 1) % len(c.Nodes)}} {
		b.Run(tc.name, func(b *testing.B) {
			m := c.Nodes[tc.node].Mail()
			u, err := m.Authenticate(ctx, "alice@example.test", "correct horse battery")
			if err != nil {
				b.Fatal(err)
			}
			uids := []*commandpb.UIDRange{{Start: uid, Stop: uid}}
			lat := make([]time.Duration, 0, b.N)
			for i := 0; b.Loop(); i++ {
				op := commandpb.FlagOp_FLAG_OP_ADD
				if i%2 == 1 {
					op = commandpb.FlagOp_FLAG_OP_REMOVE
				}
				t0 := time.Now()
				if _, err := m.StoreFlags(ctx, u.ID, box, uids, op, []string{`\Flagged`}, 0); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// TestForwardedWriteSkipsCommitTick: a write at a follower returns (applied
// there) without waiting for the leader's idle replication tick to bring
// the commit index: with the tick stretched to 3–6 s, the best of three
// forwarded writes must take under 1.5 s (node/consensus/publish.go).
// Without the leader publishing its commit index, each takes 3 s or more.
// The same for a read-index wait (Sync) at the follower after a write at
// the leader.
func TestForwardedWriteSkipsCommitTick(t *testing.T) {
	local := consensus.Profiles["local"]
	slow := local
	slow.Commit = 3 * time.Second
	consensus.Profiles["local"] = slow // read by consensus.Open only; no test here runs in parallel
	t.Cleanup(func() { consensus.Profiles["local"] = local })

	c := nodetest.Start(t, nodetest.Options{})
	ctx := context.Background()
	leader := c.Leader()
	lm := c.Nodes[leader].Mail()
	if err := lm.AddDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := lm.AddUser(ctx, "alice@example.test", "correct horse battery", 0); err != nil {
		t.Fatal(err)
	}
	msg := []byte("Subject: x\r\n\r\nbody\r\n")
	d, err := lm.Deliver(ctx, mail.Envelope{From: "a@remote.test", To: []string{"alice@example.test"}}, msg, msg)
	if err != nil || d[0].Err != nil {
		t.Fatal(err, d)
	}
	f := (leader + 1) % len(c.Nodes)
	fm := c.Nodes[f].Mail()
	// Deliveries through the follower do not wait for their own apply:
	// they must not make the leader publish (no barrier entries).
	before := publishBarriers(t)
	for i := range 3 {
		m := []byte(fmt.Sprintf("Subject: fwd %d\r\n\r\nbody\r\n", i))
		if d, err := fm.Deliver(ctx, mail.Envelope{From: "a@remote.test", To: []string{"alice@example.test"}}, m, m); err != nil || d[0].Err != nil {
			t.Fatal(err, d)
		}
	}
	if n := publishBarriers(t) - before; n != 0 {
		t.Errorf("3 forwarded deliveries made %v barrier entries, want 0", n)
	}
	before = publishBarriers(t)
	u, err := fm.Authenticate(ctx, "alice@example.test", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	uids := []*commandpb.UIDRange{{Start: d[0].UID, Stop: d[0].UID}}
	best := time.Hour
	for i, op := range []commandpb.FlagOp{commandpb.FlagOp_FLAG_OP_ADD, commandpb.FlagOp_FLAG_OP_REMOVE, commandpb.FlagOp_FLAG_OP_ADD} {
		t0 := time.Now()
		if _, err := fm.StoreFlags(ctx, u.ID, d[0].MailboxID, uids, op, []string{`\Flagged`}, 0); err != nil {
			t.Fatalf("store %d at follower: %v", i, err)
		}
		best = min(best, time.Since(t0))
		// Read-your-writes at the follower: its own view shows the flag.
		snap := fm.View()
		m, err := snap.Message(d[0].MailboxID, d[0].UID)
		snap.Close()
		if err != nil {
			t.Fatal(err)
		}
		flagged := slices.Contains(m.Flags, `\Flagged`)
		if flagged != (op == commandpb.FlagOp_FLAG_OP_ADD) {
			t.Fatalf("store %d: follower's view has \\Flagged = %v right after the write", i, flagged)
		}
	}
	if best > 1500*time.Millisecond {
		t.Fatalf("fastest forwarded write took %v: the follower waited for the commit tick", best)
	}
	if n := publishBarriers(t) - before; n < 1 {
		t.Errorf("3 forwarded STOREs made %v barrier entries, want at least 1", n)
	}

	// A read-index wait at the follower after a write at the leader: the
	// follower has not heard of the commit yet, so the leader publishes it.
	lu, err := lm.Authenticate(ctx, "alice@example.test", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	best = time.Hour
	for i := range 3 {
		if _, err := lm.StoreFlags(ctx, lu.ID, d[0].MailboxID, uids, commandpb.FlagOp_FLAG_OP_ADD, []string{fmt.Sprintf("k%d", i)}, 0); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		if err := fm.Sync(ctx); err != nil {
			t.Fatalf("sync %d at follower: %v", i, err)
		}
		best = min(best, time.Since(t0))
		snap := fm.View()
		m, err := snap.Message(d[0].MailboxID, d[0].UID)
		snap.Close()
		if err != nil || !slices.Contains(m.Flags, fmt.Sprintf("k%d", i)) {
			t.Fatalf("after Sync the follower does not see the leader's write %d: %v, %v", i, m, err)
		}
	}
	if best > 1500*time.Millisecond {
		t.Fatalf("fastest read-index wait at the follower took %v: it waited for the commit tick", best)
	}
}

// publishBarriers reads continuum_raft_commit_publish_barriers_total (all
// nodes of the process share it; only a leader adds to it).
func publishBarriers(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "continuum_raft_commit_publish_barriers_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("continuum_raft_commit_publish_barriers_total not registered")
	return 0
}
