package clustertest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

// Figures are a scenario's results (docs/TESTPLAN.md §2–3).
type Figures struct {
	Ops      int `json:"ops"`
	Attempts int `json:"attempts"`
	Acked    int `json:"acked"`   // 250 after DATA
	Failed   int `json:"failed"`  // 5xx
	Unknown  int `json:"unknown"` // gave up
	// Ambiguous is the number of messages with at least one attempt that
	// sent the final "." and got no reply: each is a test of dedupe.
	Ambiguous int `json:"ambiguous"`

	Lost           int `json:"lost"`            // acked, missing from the recipient's INBOX on some node
	Duplicated     int `json:"duplicated"`      // present more than once on some node
	UnknownPresent int `json:"unknown_present"` // outcome unknown, stored (once)
	FailedPresent  int `json:"failed_present"`  // bounced, yet stored
	Misplaced      int `json:"misplaced"`       // found in another user's mailbox, or never sent

	ReplicasEqual bool     `json:"replicas_equal"`
	Applied       []uint64 `json:"applied"`
	Digests       []string `json:"digests"`
	// Violations lists every broken invariant and anomaly, in words.
	Violations []string `json:"violations,omitempty"`
	// LostIDs and DuplicatedIDs name a few offenders.
	LostIDs       []string `json:"lost_ids,omitempty"`
	DuplicatedIDs []string `json:"duplicated_ids,omitempty"`
}

func (f *Figures) String() string {
	return fmt.Sprintf("ops %d (attempts %d): acked %d, lost %d, duplicated %d, unknown %d (present %d), failed %d (present %d), ambiguous %d, misplaced %d; replicas equal %v at applied %v",
		f.Ops, f.Attempts, f.Acked, f.Lost, f.Duplicated, f.Unknown, f.UnknownPresent, f.Failed, f.FailedPresent, f.Ambiguous, f.Misplaced, f.ReplicasEqual, f.Applied)
}

func (f *Figures) violate(format string, a ...any) {
	if len(f.Violations) < 50 {
		f.Violations = append(f.Violations, fmt.Sprintf(format, a...))
	}
}

// Quiesce ends every fault (heal the network, resume paused nodes, start
// stopped ones), waits until the replicas converge, then stops every node
// with SIGTERM: the followers first, so no election appends an entry after
// the convergence point, then the leader.
//
// A node that does not exit within StopTimeout of SIGTERM is dumped
// (SIGQUIT) and killed; its state database may then miss its last applies,
// which a restart replays from the Raft log. So Quiesce restarts it and
// goes round again (at most three rounds). HungStops counts them: a hang
// at shutdown is a bug of its own, reported but not a data-safety failure.
func (c *Cluster) Quiesce() {
	c.t.Helper()
	for round := 1; ; round++ {
		c.Heal()
		for i := range c.Nodes {
			if c.Paused(i) {
				c.Resume(i)
			}
			if !c.Running(i) {
				c.StartNode(i)
			}
		}
		c.WaitLeader(60 * time.Second)
		c.WaitConverged(90 * time.Second)
		l := c.Leader()
		hung := make([]bool, len(c.Nodes))
		var wg sync.WaitGroup
		for i := range c.Nodes {
			if i == l {
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); hung[i] = !c.Stop(i) }()
		}
		wg.Wait()
		if l >= 0 {
			hung[l] = !c.Stop(l)
		}
		var ids []string
		for i, h := range hung {
			if h {
				ids = append(ids, c.Nodes[i].ID)
			}
		}
		if len(ids) == 0 {
			return
		}
		c.t.Logf("BUG: %v did not exit within %v of SIGTERM (goroutine dumps in their logs); restarting them so the check reads fully applied state (round %d)", ids, StopTimeout, round)
		if round == 3 {
			c.t.Fatalf("clustertest: nodes still hang at shutdown after %d rounds", round)
		}
	}
}

// nodeState is what the checker reads from one stopped node.
type nodeState struct {
	applied uint64
	digest  []byte
	// found maps X-Test-Id → user address → copies in that user's INBOX.
	found      map[string]map[string]int
	violations []string
}

// readNode opens node i's state database (the node must be stopped) and
// reads the digest, the applied index, every INBOX of c.Users and the
// per-mailbox invariants.
func (c *Cluster) readNode(i int) (*nodeState, error) {
	db, err := storage.Open(filepath.Join(c.Nodes[i].DataDir, "state"), storage.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st := &nodeState{found: map[string]map[string]int{}}
	if st.applied, _, err = db.Applied(); err != nil {
		return nil, err
	}
	if st.digest, err = db.Digest(); err != nil {
		return nil, err
	}
	snap := db.Snapshot()
	defer snap.Close()
	id := c.Nodes[i].ID
	bad := func(format string, a ...any) {
		if len(st.violations) < 20 {
			st.violations = append(st.violations, id+": "+fmt.Sprintf(format, a...))
		}
	}
	for _, email := range c.Users {
		u, err := snap.UserByEmail(email)
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", email, err)
		}
		mbs, err := snap.Mailboxes(u.Id)
		if err != nil {
			return nil, err
		}
		for _, mb := range mbs {
			var last uint32
			var count uint32
			var size uint64
			err := snap.Messages(mb.Id, 0, 0, func(m *storagepb.Message) error {
				if m.Uid == 0 || m.Uid <= last {
					bad("%s %s: UID %d after %d: not strictly increasing", email, mb.Name, m.Uid, last)
				}
				last = m.Uid
				count++
				size += m.Size
				if m.Modseq > mb.HighestModseq {
					bad("%s %s: UID %d has MODSEQ %d > HIGHESTMODSEQ %d", email, mb.Name, m.Uid, m.Modseq, mb.HighestModseq)
				}
				if mb.Name != "INBOX" {
					return nil
				}
				blob, err := snap.Blob(m.Blob)
				if err != nil {
					bad("%s INBOX UID %d: blob %s: %v", email, m.Uid, hex.EncodeToString(m.Blob), err)
					return nil
				}
				tid := testID(blob)
				if tid == "" {
					bad("%s INBOX UID %d: no X-Test-Id", email, m.Uid)
					return nil
				}
				if st.found[tid] == nil {
					st.found[tid] = map[string]int{}
				}
				st.found[tid][email]++
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("messages of %s %s: %w", email, mb.Name, err)
			}
			if last > 0 && mb.UidNext <= last {
				bad("%s %s: UIDNEXT %d not above the highest UID %d", email, mb.Name, mb.UidNext, last)
			}
			if mb.Messages != count {
				bad("%s %s: MESSAGES %d, but %d message rows", email, mb.Name, mb.Messages, count)
			}
			if mb.Size != size {
				bad("%s %s: size %d, but the messages add up to %d", email, mb.Name, mb.Size, size)
			}
		}
	}
	return st, nil
}

// testID returns the X-Test-Id header field of a stored message.
func testID(msg []byte) string {
	hdr := msg
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		hdr = msg[:i]
	}
	for _, line := range strings.Split(string(hdr), "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "X-Test-Id") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Check reads every stopped node and compares it with the history.
func (c *Cluster) Check(ops []*Op) (*Figures, error) {
	f := &Figures{ReplicasEqual: true}
	states := make([]*nodeState, len(c.Nodes))
	for i := range c.Nodes {
		if c.Running(i) {
			return nil, fmt.Errorf("clustertest: check: %s still runs; Quiesce first", c.Nodes[i].ID)
		}
		st, err := c.readNode(i)
		if err != nil {
			return nil, fmt.Errorf("clustertest: check %s: %w", c.Nodes[i].ID, err)
		}
		states[i] = st
		f.Applied = append(f.Applied, st.applied)
		f.Digests = append(f.Digests, hex.EncodeToString(st.digest)[:16])
		for _, v := range st.violations {
			f.violate("invariant: %s", v)
		}
	}
	for i := 1; i < len(states); i++ {
		if !bytes.Equal(states[i].digest, states[0].digest) || states[i].applied != states[0].applied {
			f.ReplicasEqual = false
		}
	}
	if !f.ReplicasEqual {
		f.violate("replicas differ: applied %v, digests %v", f.Applied, f.Digests)
	}

	sent := map[string]*Op{}
	f.Ops = len(ops)
	for _, op := range ops {
		sent[op.TestID] = op
		f.Attempts += len(op.Attempts)
		ambiguous := false
		for _, a := range op.Attempts {
			ambiguous = ambiguous || a.Ambiguous()
		}
		if ambiguous {
			f.Ambiguous++
		}
		// copies on each node, in the recipient's INBOX; max over nodes.
		lost, dup, present := false, false, false
		for i, st := range states {
			n := st.found[op.TestID][op.Rcpt]
			switch {
			case n == 0:
				lost = true
			case n > 1:
				dup = true
				f.violate("%s: %d copies of %s on %s", op.Outcome, n, op.TestID, c.Nodes[i].ID)
			}
			present = present || n > 0
		}
		if dup {
			f.Duplicated++
			if len(f.DuplicatedIDs) < 10 {
				f.DuplicatedIDs = append(f.DuplicatedIDs, op.TestID)
			}
		}
		switch op.Outcome {
		case OutcomeOK:
			f.Acked++
			if lost {
				f.Lost++
				if len(f.LostIDs) < 10 {
					f.LostIDs = append(f.LostIDs, op.TestID)
				}
			}
		case OutcomeFail:
			f.Failed++
			if present {
				f.FailedPresent++
				if !ambiguous {
					f.violate("%s bounced with %d but is stored", op.TestID, op.Attempts[len(op.Attempts)-1].Code)
				}
			}
		default:
			f.Unknown++
			if present {
				f.UnknownPresent++
			}
		}
	}
	for _, st := range states {
		for tid, byUser := range st.found {
			op := sent[tid]
			for u := range byUser {
				if op == nil || u != op.Rcpt {
					f.Misplaced++
					f.violate("%s found in %s's INBOX; sent to %v", tid, u, func() string {
						if op == nil {
							return "nobody"
						}
						return op.Rcpt
					}())
				}
			}
		}
	}
	if f.Lost > 0 {
		f.violate("lost %d acknowledged messages, e.g. %v", f.Lost, f.LostIDs)
	}
	sort.Strings(f.Violations)
	return f, nil
}
