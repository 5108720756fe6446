package node_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyzFollowsIsolation cuts a follower's Raft links to every other
// node: its /readyz (real HTTP) must answer 503 within 2 × election timeout
// and 200 again after the heal. /healthz stays 200 throughout.
func TestReadyzFollowsIsolation(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	l := c.WaitLeader(10 * time.Second)
	f := (l + 1) % 3
	url := "http://" + c.Cfgs[f].HTTPAddr
	c.Eventually(5*time.Second, "follower ready", func() bool { code, _ := httpGet(t, url+"/readyz"); return code == 200 })

	election := c.Nodes[f].Raft().Profile().Election
	cut := time.Now()
	c.Net.Isolate(c.Cfgs[f].ID, c.IDs()...)
	var why string
	c.Eventually(5*time.Second, "isolated follower unready", func() bool {
		code, body := httpGet(t, url+"/readyz")
		why = body
		return code == http.StatusServiceUnavailable
	})
	took := time.Since(cut)
	t.Logf("unready after %v (election timeout %v): %s", took.Round(time.Millisecond), election, strings.TrimSpace(why))
	if took > 2*election {
		t.Errorf("unready after %v, want within 2 × election timeout = %v", took, 2*election)
	}
	if code, _ := httpGet(t, url+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d on an isolated node, want 200 (alive)", code)
	}
	c.Net.HealAll()
	healed := time.Now()
	c.Eventually(15*time.Second, "ready after heal", func() bool { code, _ := httpGet(t, url+"/readyz"); return code == 200 })
	t.Logf("ready again %v after heal", time.Since(healed).Round(time.Millisecond))
}

// TestMetricsExposed: /metrics carries the node's Raft figures, the
// bridged hashicorp metrics and store sizes.
func TestMetricsExposed(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	setupUser(t, c, 0)
	l := c.WaitLeader(10 * time.Second)
	if _, err := c.Nodes[l].Mail().Deliver(c.Ctx(10*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg("m1"), msg("m1")); err != nil {
		t.Fatal(err)
	}
	_, body := httpGet(t, "http://"+c.Cfgs[l].HTTPAddr+"/metrics")
	for _, name := range []string{
		`continuum_raft_applied_index{node="` + c.Cfgs[l].ID + `"}`,
		"continuum_raft_commit_index",
		"continuum_raft_apply_lag",
		"continuum_raft_leader_changes_total",
		"continuum_raft_is_leader",
		"continuum_raft_apply_seconds_bucket",
		"continuum_imap_sessions",
		`continuum_store_size_bytes{node="` + c.Cfgs[l].ID + `",store="state"}`,
		`continuum_store_size_bytes{node="` + c.Cfgs[l].ID + `",store="index"}`,
		"continuum_search_index_bytes",
		"continuum_search_indexed_messages_total",
		"continuum_search_index_seconds_total",
		"continuum_search_indexed_mail_bytes_total",
		"continuum_search_index_lag",
		"continuum_raft_commitTime",     // bridged from hashicorp/raft
		"continuum_raft_fsm_applyBatch", // bridged
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// TestBackupRestoreUnderLoad takes a backup through a follower's admin API
// while writers deliver, restores it into a new data directory, starts a
// new three-node cluster from it, and checks: every delivery acknowledged
// before the backup began is there, the new cluster's state digest equals
// the one the source computed over the backed-up view, and the restored
// cluster accepts new mail with UIDs above the restored ones.
func TestBackupRestoreUnderLoad(t *testing.T) {
	src := nodetest.Start(t, nodetest.Options{})
	uid := setupUser(t, src, 0)
	l := src.WaitLeader(10 * time.Second)
	ld := startLoad(t, "bk", 8, running(src)...)
	ld.waitAcked(src, 100, 20*time.Second)

	ld.mu.Lock()
	before := map[string]bool{}
	for id := range ld.acked {
		before[id] = true
	}
	ld.mu.Unlock()
	f := (l + 1) % 3
	stream, err := src.Admin(f).Backup(src.Ctx(60*time.Second), &adminpb.BackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	var first, last *adminpb.BackupChunk
	for {
		ch, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("backup stream: %v", err)
		}
		if first == nil {
			first = ch
		}
		if ch.Done {
			last = ch
		}
		buf.Write(ch.Data)
	}
	ld.waitAcked(src, 50, 20*time.Second) // load goes on past the backup
	ld.finish()
	if first == nil || last == nil || first.AppliedIndex == 0 || last.AppliedIndex != first.AppliedIndex || len(last.Digest) == 0 {
		t.Fatalf("backup stream: first %v, last %v", first, last)
	}
	t.Logf("backup of %s at index %d: %d bytes, %d deliveries acknowledged before it", first.NodeId, first.AppliedIndex, buf.Len(), len(before))
	backupFile := filepath.Join(t.TempDir(), "backup.cntm")
	if err := os.WriteFile(backupFile, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	var restoredIndex uint64
	dst := nodetest.Start(t, nodetest.Options{Configure: func(i int, cfg *config.Config) {
		if i != 0 {
			return
		}
		cfg.Bootstrap = false
		fh, err := os.Open(backupFile)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		idx, _, err := node.Restore(fh, cfg.DataDir, cfg.ID, cfg.RaftAddr, true)
		if err != nil {
			t.Fatalf("restore: %v", err)
		}
		restoredIndex = idx
	}})
	if restoredIndex != first.AppliedIndex {
		t.Fatalf("restored index %d, backup says %d", restoredIndex, first.AppliedIndex)
	}
	digest := dst.WaitConverged(20 * time.Second)
	if !bytes.Equal(digest, last.Digest) {
		t.Fatalf("restored cluster digest %x, source's at index %d was %x", digest, first.AppliedIndex, last.Digest)
	}
	for i, n := range dst.Nodes {
		found := storedIDs(t, n, uid)
		lost := 0
		for id := range before {
			if found[id] != 1 {
				lost++
			}
		}
		if lost > 0 {
			t.Errorf("restored node %d lacks %d of %d deliveries acknowledged before the backup", i, lost, len(before))
		}
	}
	// The restored cluster goes on: a new delivery gets the next UID.
	mb, err := dst.Nodes[1].Mail().Mailbox(uid, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	res, err := dst.Nodes[1].Mail().Deliver(dst.Ctx(10*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg("after-restore"), msg("after-restore"))
	if err != nil || res[0].Err != nil {
		t.Fatalf("deliver after restore: %v %+v", err, res)
	}
	if res[0].UID != mb.UidNext {
		t.Errorf("first UID after restore %d, want the restored UIDNEXT %d", res[0].UID, mb.UidNext)
	}
	dst.WaitConverged(10 * time.Second)
}

// TestLeaderCloseHandsOver: Close on the leader while writers deliver
// through it hands leadership over (a new leader well before an election
// timeout would elect one), and every in-flight Deliver on it either
// succeeds or fails temporarily; nothing acknowledged is lost.
func TestLeaderCloseHandsOver(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	uid := setupUser(t, c, 0)
	l := c.WaitLeader(10 * time.Second)
	leader := c.Nodes[l]
	ld := startLoad(t, "close", 8, leader)
	ld.waitAcked(c, 50, 20*time.Second)

	var closeErr error
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go func() { defer wg.Done(); closeErr = leader.Close() }()
	// The others learn of a new leader from the transfer, not from an
	// election after a missed heartbeat.
	var nl int
	c.Eventually(10*time.Second, "a new leader", func() bool {
		for i, n := range c.Nodes {
			if i != l && n != nil && n.Raft().IsLeader() {
				nl = i
				return true
			}
		}
		return false
	})
	took := time.Since(start)
	wg.Wait()
	ld.setTargets()
	acked := ld.finish()
	c.Nodes[l] = nil
	t.Logf("new leader %s %v after Close began (election timeout %v)", c.Cfgs[nl].ID, took.Round(time.Millisecond), c.Nodes[nl].Raft().Profile().Election)
	if closeErr != nil {
		t.Errorf("Close: %v", closeErr)
	}
	if election := c.Nodes[nl].Raft().Profile().Election; took >= election {
		t.Errorf("new leader %v after Close began: an election, not a handover (election timeout %v)", took, election)
	}
	c.WaitConverged(10 * time.Second)
	checkNoneLost(t, c, uid, acked)
}

// TestRollingRestartUnderLoad restarts every node in turn while writers
// deliver through the running ones: 0 lost, no permanent error.
func TestRollingRestartUnderLoad(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	uid := setupUser(t, c, 0)
	ld := startLoad(t, "roll", 8, running(c)...)
	ld.waitAcked(c, 50, 20*time.Second)
	for i := range c.Nodes {
		ld.setTargets(running(c, i)...)
		c.StopNode(i)
		ld.waitAcked(c, 30, 20*time.Second)
		c.StartNode(i)
		ld.setTargets(running(c)...)
		// Caught up before the next node goes down (replicas are compared
		// once the writers stop: under load they never rest at one index).
		l := c.WaitLeader(10 * time.Second)
		c.WaitApplied(c.Nodes[l].Raft().CommitIndex(), 20*time.Second)
		ld.waitAcked(c, 30, 20*time.Second)
	}
	acked := ld.finish()
	c.WaitConverged(20 * time.Second)
	checkNoneLost(t, c, uid, acked)
}

// TestGossipNeedsTheClusterKey: with cluster-key set, a node without the
// key (or with another key) cannot join the gossip pool; membership seen by
// the cluster stays unchanged.
func TestGossipNeedsTheClusterKey(t *testing.T) {
	// nodetest gives every cluster its own gossip key file.
	c := nodetest.Start(t, nodetest.Options{})
	if got := len(c.Nodes[0].Members()); got != 3 {
		t.Fatalf("keyed cluster sees %d members, want 3", got)
	}
	otherKey := filepath.Join(t.TempDir(), "other.key")
	if err := identity.WriteGossipKey(otherKey); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"", otherKey} {
		i := c.AddNode("x", func(cfg *config.Config) {
			// No key at all is allowed only in insecure-dev.
			cfg.ClusterKeyFile, cfg.InsecureDev = k, k == ""
		})
		// Give gossip time to fail: poll that it never succeeds for a
		// few probe intervals.
		deadline := time.Now().Add(1500 * time.Millisecond)
		for time.Now().Before(deadline) {
			for j := 0; j < 3; j++ {
				for _, m := range c.Nodes[j].Members() {
					if m.ID == c.Cfgs[i].ID {
						t.Fatalf("a node with key %q joined the gossip pool of node %d", k, j)
					}
				}
			}
			time.Sleep(50 * time.Millisecond) // sampling a bounded window
		}
		c.StopNode(i)
	}
}
