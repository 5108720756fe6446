package node_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/storage"
)

func setupUser(t *testing.T, c *nodetest.Cluster, via int) uint64 {
	t.Helper()
	m := c.Nodes[via].Mail()
	ctx := c.Ctx(20 * time.Second)
	if err := m.AddDomain(ctx, "example.test", ""); err != nil {
		t.Fatalf("AddDomain: %v", err)
	}
	id, err := m.AddUser(ctx, "alice@example.test", "correct horse battery", 0)
	if err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	return id
}

func msg(id string) []byte {
	return []byte("From: bob@remote.test\r\nTo: alice@example.test\r\nSubject: test " + id +
		"\r\nX-Test-Id: " + id + "\r\n\r\nHello " + id + "\r\n")
}

// inboxCount reads alice's INBOX message count on node i, locally.
func inboxCount(t *testing.T, c *nodetest.Cluster, i int, userID uint64) uint32 {
	t.Helper()
	mb, err := c.Nodes[i].Mail().Mailbox(userID, "INBOX")
	if err != nil {
		t.Fatalf("node %d: INBOX: %v", i, err)
	}
	return mb.Messages
}

func TestWriteThroughFollowerIsForwardedAndApplied(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	l := c.WaitLeader(10 * time.Second)
	f := (l + 1) % 3
	uid := setupUser(t, c, f) // admin writes through a follower, too

	res, err := c.Nodes[f].Mail().Deliver(c.Ctx(10*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg("fwd-1"), msg("fwd-1"))
	if err != nil {
		t.Fatalf("Deliver through follower: %v", err)
	}
	if len(res) != 1 || res[0].Err != nil || res[0].UID != 1 {
		t.Fatalf("Deliver = %+v, want one delivery with UID 1", res)
	}
	// A write through a follower that a session reads back (IMAP's
	// CREATE, APPEND, STORE) returns only once the follower has applied it.
	if err := c.Nodes[f].Mail().CreateMailbox(c.Ctx(10*time.Second), uid, "Projects", ""); err != nil {
		t.Fatalf("CreateMailbox through follower: %v", err)
	}
	if _, err := c.Nodes[f].Mail().Mailbox(uid, "Projects"); err != nil {
		t.Fatalf("follower does not see its own CREATE: %v", err)
	}
	// Delivery promises commit on a quorum, not the follower's apply: after
	// a read-index wait the follower sees it.
	if err := c.Nodes[f].Mail().Sync(c.Ctx(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := inboxCount(t, c, f, uid); got != 1 {
		t.Fatalf("follower INBOX has %d messages after Sync, want 1", got)
	}
	c.WaitConverged(10 * time.Second)
	for i := range c.Nodes {
		if got := inboxCount(t, c, i, uid); got != 1 {
			t.Errorf("node %d INBOX has %d messages, want 1", i, got)
		}
	}
	// UIDVALIDITY is the same everywhere (assigned in apply).
	var v uint32
	for i := range c.Nodes {
		mb, _ := c.Nodes[i].Mail().Mailbox(uid, "INBOX")
		if i == 0 {
			v = mb.UidValidity
		} else if mb.UidValidity != v {
			t.Errorf("node %d UIDVALIDITY %d, node 0 has %d", i, mb.UidValidity, v)
		}
	}
}

func TestRetryIsNotASecondCopy(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	uid := setupUser(t, c, 0)
	env := mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}
	var first uint32
	for i := range c.Nodes { // the same bytes, retried at every site
		res, err := c.Nodes[i].Mail().Deliver(c.Ctx(10*time.Second), env, append([]byte("Received: by n"+fmt.Sprint(i)+"\r\n"), msg("dup")...), msg("dup"))
		if err != nil || res[0].Err != nil {
			t.Fatalf("node %d Deliver: %v %+v", i, err, res)
		}
		if i == 0 {
			first = res[0].UID
		} else if !res[0].Duplicate || res[0].UID != first {
			t.Fatalf("retry at node %d = %+v, want duplicate of UID %d", i, res[0], first)
		}
	}
	c.WaitConverged(10 * time.Second)
	for i := range c.Nodes {
		if got := inboxCount(t, c, i, uid); got != 1 {
			t.Errorf("node %d has %d copies, want 1", i, got)
		}
	}
}

// TestLeaderKilledUnderLoad kills the leader while 16 writers deliver
// through every node: a new leader must appear within the election timeout
// plus 2 s, and every acknowledged delivery must be on both survivors.
func TestLeaderKilledUnderLoad(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	uid := setupUser(t, c, 0)
	old := c.WaitLeader(10 * time.Second)

	// Writers go through the two nodes that survive; the leader is killed
	// under them, so their forwarded writes hit the election.
	survivors := []*node.Node{c.Nodes[(old+1)%3], c.Nodes[(old+2)%3]}
	var mu sync.Mutex
	acked := map[string]bool{}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var seq atomic.Int64
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := int(seq.Add(1))
				id := fmt.Sprintf("load-%d", i)
				node := survivors[i%2]
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				res, err := node.Mail().Deliver(ctx, mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg(id), msg(id))
				cancel()
				if err == nil && res[0].Err == nil {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				} else if err != nil && !mail.IsTemporary(err) && !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("deliver %s: non-temporary error %v", id, err)
				}
			}
		}()
	}
	time.Sleep(time.Second) // let load build up before the kill
	killed := time.Now()
	c.StopNode(old)
	timeout := 2*c.Nodes[(old+1)%3].Raft().Profile().Election + 2*time.Second
	nl := c.WaitLeader(timeout + 5*time.Second)
	if took := time.Since(killed); took > timeout {
		t.Errorf("new leader after %v, want within %v", took, timeout)
	}
	time.Sleep(time.Second) // and keep writing to the new leader
	stop.Store(true)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no delivery acknowledged")
	}
	c.WaitConverged(15 * time.Second)
	for i, n := range c.Nodes {
		if n == nil {
			continue
		}
		found := map[string]int{}
		snap := n.DB().Snapshot()
		mb, err := snap.MailboxByName(uid, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		err = snap.Messages(mb.Id, 1, 0, func(m *storagepbMessage) error {
			b, err := snap.Blob(m.Blob)
			if err != nil {
				return err
			}
			found[testID(b)]++
			return nil
		})
		snap.Close()
		if err != nil {
			t.Fatal(err)
		}
		lost, dup := 0, 0
		for id := range acked {
			if found[id] == 0 {
				lost++
			}
		}
		for _, k := range found {
			if k > 1 {
				dup++
			}
		}
		t.Logf("node %d (leader now %d): acked %d, stored %d, lost %d, duplicated %d", i, nl, len(acked), len(found), lost, dup)
		if lost > 0 || dup > 0 {
			t.Errorf("node %d: lost %d, duplicated %d of %d acknowledged", i, lost, dup, len(acked))
		}
	}

	// The killed node restarts and catches up.
	c.StartNode(old)
	c.WaitConverged(20 * time.Second)
}

// TestFarBehindFollowerGetsSnapshot keeps a follower down while enough is
// written that the leader compacts its log; the follower must come back
// through InstallSnapshot and end equal to the others.
func TestFarBehindFollowerGetsSnapshot(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{SnapshotThreshold: 64, TrailingLogs: 16})
	uid := setupUser(t, c, 0)
	l := c.WaitLeader(10 * time.Second)
	down := (l + 1) % 3
	c.StopNode(down)
	for i := 0; i < 300; i++ {
		id := fmt.Sprintf("snap-%d", i)
		if _, err := c.Nodes[l].Mail().Deliver(c.Ctx(10*time.Second), mail.Envelope{From: "bob@remote.test", To: []string{"alice@example.test"}}, msg(id), msg(id)); err != nil {
			t.Fatalf("deliver %d: %v", i, err)
		}
	}
	// Every live node compacts its log, so whichever leads when the
	// follower returns (a loaded machine may move leadership) no longer
	// holds the entries it missed.
	for i, n := range c.Nodes {
		if n == nil {
			continue
		}
		// Nothing new: it snapshotted at its last index on its own.
		if err := n.Raft().Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			t.Fatalf("snapshot on node %d: %v", i, err)
		}
	}
	c.StartNode(down)
	c.WaitConverged(30 * time.Second)
	// It came back through InstallSnapshot, not by replaying the log: it
	// holds a snapshot it never took itself.
	if snap := c.Nodes[down].Raft().Raft().Stats()["last_snapshot_index"]; snap == "0" || snap == "" {
		t.Errorf("restarted follower has last_snapshot_index %q; want the leader's snapshot installed", snap)
	}
	if got := inboxCount(t, c, down, uid); got != 300 {
		t.Fatalf("restored follower has %d messages, want 300", got)
	}
}

// TestReadIndexAfterElection: a new leader's first entry is a no-op the
// state machine never sees; a consistent read must not wait for it for ever.
func TestReadIndexAfterElection(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	setupUser(t, c, 0)
	old := c.WaitLeader(10 * time.Second)
	c.StopNode(old)
	c.WaitLeader(10 * time.Second)
	for i, n := range c.Nodes {
		if n == nil {
			continue
		}
		if err := n.Mail().Sync(c.Ctx(5 * time.Second)); err != nil {
			t.Errorf("node %d: Sync after election with no new writes: %v", i, err)
		}
		if _, err := n.Mail().Users(); err != nil {
			t.Errorf("node %d: Users: %v", i, err)
		}
	}
}
