package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/propose"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/peerpb"
	"github.com/continuum-mail/continuum/storage/raftlog"
)

// Integrity: how a node finds silent damage to its own replica and what it
// does then (node/doc.go, "Integrity").
//
//   - Damage Pebble reports while running (any read, a compaction, the
//     scrub) quarantines the node: it writes QUARANTINE in its data
//     directory, turns unready and stops in order, exiting non-zero. It
//     never answers from damaged data: the read that met the damage failed.
//   - The scrub reads every block of the state and log tables at
//     cfg.ScrubRate, first right after start, then every cfg.ScrubInterval.
//   - The consistency check: the leader proposes a ConsistencyCheck entry
//     (every cfg.CheckInterval, and on `continuum cluster check`); every
//     replica digests its state as of that index (raftfsm Options.OnCheck)
//     in the background at cfg.CheckRate, then compares with the other
//     voters' digests (Peer.Info). A replica that disagrees with two or
//     more others that agree with each other quarantines itself.
//   - A quarantined node refuses to start until `continuum node rebuild`
//     moves its damaged state aside; it then rejoins as a wiped node and
//     installs the leader's snapshot (node/cluster/DESIGN.md, F10).

// QuarantineFile, in a node's data directory, holds why the node was
// quarantined. While it exists the node refuses to start.
const QuarantineFile = "QUARANTINE"

// ErrQuarantined is wrapped by the error of a start refused, or a run
// stopped, because this node's replica is damaged or disagrees with the
// others.
var ErrQuarantined = errors.New("node: quarantined")

// keepChecks is how many consistency check results a node remembers.
const keepChecks = 8

// checkCompareFor bounds how long a replica waits for the others' digests
// of one check.
const checkCompareFor = 10 * time.Minute

type integrity struct {
	mu     sync.Mutex
	checks []*peerpb.CheckDigest // newest first
	// cancelDigest stops the digest in progress: one at a time, a newer
	// check supersedes it (a node replaying many checks after a long
	// absence digests only the last).
	cancelDigest context.CancelFunc
	scrubDone    time.Time
	scrubBytes   int64
	scrubErr     string
	mismatches   uint64 // checks this node saw disagree, itself or others

	quarantine atomic.Pointer[string]
	once       sync.Once
	wg         sync.WaitGroup // digest, compare and scrub goroutines
}

// readQuarantine returns ErrQuarantined with the recorded reason when
// dataDir holds a quarantine file.
func readQuarantine(dataDir string) error {
	b, err := os.ReadFile(filepath.Join(dataDir, QuarantineFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return fmt.Errorf("%w: %s; run `continuum node rebuild --data %s`, then start the node again: it rejoins and copies the leader's state",
		ErrQuarantined, strings.TrimSpace(string(b)), dataDir)
}

// quarantine takes this node out of service for good: it records why in
// the data directory, turns unready, and asks Run to return, so the
// process stops in order and exits non-zero. It does not block.
func (n *Node) quarantine(reason error) {
	n.integ.once.Do(func() {
		msg := reason.Error()
		n.integ.quarantine.Store(&msg)
		body := time.Now().UTC().Format(time.RFC3339) + " " + msg + "\n"
		if err := writeFileSynced(filepath.Join(n.cfg.DataDir, QuarantineFile), []byte(body)); err != nil {
			n.log.Error("cannot record the quarantine", "err", err)
		}
		n.log.Error("quarantined: this node's data is damaged or disagrees with the other replicas; it stops serving and exits",
			"reason", msg, "to heal", "continuum node rebuild --data "+n.cfg.DataDir+", then start it again")
		select {
		case n.fatal <- fmt.Errorf("%w: %v", ErrQuarantined, reason):
		default:
		}
	})
}

// Quarantined returns why the node is quarantined, or "".
func (n *Node) Quarantined() string {
	if p := n.integ.quarantine.Load(); p != nil {
		return *p
	}
	return ""
}

func writeFileSynced(path string, body []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err = f.Write(body); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// startIntegrity starts the scrub and the check schedule.
func (n *Node) startIntegrity() {
	n.integ.wg.Add(3)
	go n.scrubLoop()
	go n.checkLoop()
	go n.retentionLoop()
}

// stopIntegrity waits for the integrity goroutines; n.ctx is cancelled.
// It must return before the stores close.
func (n *Node) stopIntegrity() { n.integ.wg.Wait() }

// scrubLoop scrubs both databases right after start, then every
// ScrubInterval.
func (n *Node) scrubLoop() {
	defer n.integ.wg.Done()
	wait := time.Second
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = n.cfg.ScrubInterval.Duration
		n.scrubPass()
	}
}

func (n *Node) scrubPass() {
	st, err := n.db.Scrub(n.ctx, n.cfg.ScrubRate)
	if n.ctx.Err() != nil {
		return
	}
	bytes := st.Bytes
	if err == nil {
		var ls = st
		ls, err = n.raft.ScrubLog(n.ctx, n.cfg.ScrubRate)
		bytes += ls.Bytes
		if n.ctx.Err() != nil {
			return
		}
		if errors.Is(err, raftlog.ErrCorrupt) {
			n.quarantine(err)
		}
	}
	// A damaged state table already quarantined the node (the storage
	// OnCorruption hook); other errors (I/O) are only reported.
	n.integ.mu.Lock()
	n.integ.scrubDone, n.integ.scrubBytes, n.integ.scrubErr = time.Now(), bytes, ""
	if err != nil {
		n.integ.scrubErr = err.Error()
	}
	n.integ.mu.Unlock()
	if err != nil {
		n.log.Error("scrub found a problem", "err", err)
	} else {
		n.log.Debug("scrub pass clean", "bytes", bytes)
	}
}

// whileLeader calls do every interval, with a context bounded by timeout,
// while this node leads (0: never). The leader-side schedules (consistency
// checks, retention runs) are all this loop; what they propose is judged
// by log time, so which node proposes it changes nothing.
func (n *Node) whileLeader(every, timeout time.Duration, do func(context.Context)) {
	defer n.integ.wg.Done()
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if !n.raft.IsLeader() {
			continue
		}
		ctx, cancel := context.WithTimeout(n.ctx, timeout)
		do(ctx)
		cancel()
	}
}

// checkLoop proposes a consistency check every CheckInterval while this
// node leads.
func (n *Node) checkLoop() {
	n.whileLeader(n.cfg.CheckInterval.Duration, 30*time.Second, func(ctx context.Context) {
		if idx, _, err := n.ProposeCheck(ctx, "schedule"); err != nil {
			n.log.Warn("scheduled consistency check not proposed", "err", err)
		} else {
			n.log.Info("consistency check proposed", "index", idx)
		}
	})
}

// ProposeCheck commits a consistency check entry and returns its index and
// ID. Any node may propose it (it is forwarded to the leader).
func (n *Node) ProposeCheck(ctx context.Context, by string) (index, id uint64, err error) {
	var b [8]byte
	rand.Read(b[:])
	id = binary.BigEndian.Uint64(b[:]) >> 1
	cmd := &commandpb.Command{
		Skippable: true, // a node that predates checks skips them
		Op:        &commandpb.Command_ConsistencyCheck{ConsistencyCheck: &commandpb.ConsistencyCheck{Id: id, RequestedBy: by}},
	}
	res, idx, err := n.propose.Propose(ctx, cmd, propose.Committed)
	if err != nil {
		return 0, 0, err
	}
	if res.GetCode() != commandpb.Code_CODE_OK {
		return 0, 0, fmt.Errorf("node: consistency check refused: %s", res.GetMessage())
	}
	return idx, id, nil
}

// onCheck runs on the apply goroutine right after a check entry is
// committed: it takes a view of exactly that state and digests it in the
// background.
func (n *Node) onCheck(index uint64, c *commandpb.ConsistencyCheck) {
	if n.ctx.Err() != nil {
		return
	}
	snap, sctx := n.db.BackgroundSnapshot(n.ctx)
	ctx, cancel := context.WithCancel(sctx)
	rec := &peerpb.CheckDigest{Index: index, Id: c.GetId(), Verdict: "pending"}
	n.integ.mu.Lock()
	if n.integ.cancelDigest != nil {
		n.integ.cancelDigest()
	}
	n.integ.cancelDigest = cancel
	n.integ.checks = append([]*peerpb.CheckDigest{rec}, n.integ.checks...)
	if len(n.integ.checks) > keepChecks {
		n.integ.checks = n.integ.checks[:keepChecks]
	}
	n.integ.mu.Unlock()
	n.integ.wg.Add(1)
	go func() {
		defer n.integ.wg.Done()
		defer cancel()
		d, err := snap.DigestPaced(ctx, n.cfg.CheckRate)
		snap.Close()
		n.integ.mu.Lock()
		rec.DoneUnixMs = time.Now().UnixMilli()
		if err != nil {
			rec.Error, rec.Verdict = err.Error(), "abandoned"
			if ctx.Err() != nil && n.ctx.Err() == nil {
				rec.Error = "superseded by a newer check, or a snapshot install"
			}
		} else {
			rec.Digest = hex.EncodeToString(d)
		}
		n.integ.mu.Unlock()
		if err != nil {
			if n.ctx.Err() == nil && ctx.Err() == nil {
				n.log.Error("consistency digest failed", "index", index, "err", err)
			}
			return
		}
		n.log.Info("consistency digest", "index", index, "check", c.GetId(), "digest", rec.Digest[:16])
		n.compareCheck(rec)
	}()
}

// checkCopy returns this node's record of the check at index, a copy.
func (n *Node) checkCopy(index uint64) (*peerpb.CheckDigest, bool) {
	n.integ.mu.Lock()
	defer n.integ.mu.Unlock()
	for _, c := range n.integ.checks {
		if c.Index == index {
			return &peerpb.CheckDigest{Index: c.Index, Id: c.Id, Digest: c.Digest, Error: c.Error, DoneUnixMs: c.DoneUnixMs, Verdict: c.Verdict}, true
		}
	}
	return nil, false
}

// compareCheck collects the other voters' digests of the same check until
// each has answered or checkCompareFor has passed, and judges this node's:
// agreeing with any other voter clears it; disagreeing with two or more
// that agree with each other quarantines it.
func (n *Node) compareCheck(rec *peerpb.CheckDigest) {
	deadline := time.Now().Add(checkCompareFor)
	others := map[string]string{} // node ID → digest
	for {
		servers, err := n.raft.Servers()
		want := 0
		if err == nil {
			for _, s := range servers {
				id := string(s.ID)
				if id == n.cfg.ID || s.Suffrage != raft.Voter {
					continue
				}
				want++
				if _, ok := others[id]; ok {
					continue
				}
				ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
				info, err := n.router.Info(ctx, id)
				cancel()
				if err != nil {
					continue
				}
				for _, c := range info.GetChecks() {
					if c.GetIndex() == rec.Index && c.GetDigest() != "" {
						others[id] = c.GetDigest()
					}
				}
			}
		}
		mine := rec.Digest
		agree := 0
		for _, d := range others {
			if d == mine {
				agree++
			}
		}
		verdict := ""
		switch {
		case agree > 0:
			verdict = "agrees"
		case len(others) >= 2 && allSame(others):
			verdict = "disagrees"
		case len(others) >= want && want > 0:
			verdict = "no majority"
		}
		if verdict == "" && time.Now().Before(deadline) {
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if verdict == "" {
			verdict = "unconfirmed"
		}
		n.integ.mu.Lock()
		rec.Verdict = verdict
		if verdict != "agrees" && verdict != "unconfirmed" {
			n.integ.mismatches++
		}
		n.integ.mu.Unlock()
		switch verdict {
		case "agrees":
			if len(others) < want {
				// A disagreeing other judges itself; log what we saw.
				n.log.Debug("consistency check: agrees", "index", rec.Index, "answered", len(others), "of", want)
			}
			for id, d := range others {
				if d != mine {
					n.log.Error("consistency check: a replica disagrees", "index", rec.Index, "node", id, "its_digest", short(d), "majority_digest", short(mine))
				}
			}
		case "disagrees":
			n.quarantine(fmt.Errorf("consistency check %d at log index %d: this replica's state digest %s differs from the %d other voters' %s",
				rec.Id, rec.Index, short(mine), len(others), short(anyOf(others))))
		case "no majority":
			n.log.Error("consistency check: replicas disagree and no majority agrees", "index", rec.Index, "mine", short(mine), "others", others)
		default:
			n.log.Warn("consistency check: no other voter's digest arrived in time", "index", rec.Index, "waited", checkCompareFor)
		}
		return
	}
}

func allSame(m map[string]string) bool {
	first := ""
	for _, d := range m {
		if first == "" {
			first = d
		} else if d != first {
			return false
		}
	}
	return true
}

func anyOf(m map[string]string) string {
	for _, d := range m {
		return d
	}
	return ""
}

func short(d string) string {
	if len(d) > 16 {
		return d[:16]
	}
	return d
}

// integrityInfo fills the integrity fields of this node's Info.
func (n *Node) integrityInfo(in *peerpb.InfoResponse) {
	n.integ.mu.Lock()
	defer n.integ.mu.Unlock()
	for _, c := range n.integ.checks {
		in.Checks = append(in.Checks, &peerpb.CheckDigest{Index: c.Index, Id: c.Id, Digest: c.Digest, Error: c.Error, DoneUnixMs: c.DoneUnixMs, Verdict: c.Verdict})
	}
	in.Quarantine = n.Quarantined()
	if !n.integ.scrubDone.IsZero() {
		in.ScrubDoneUnixMs = n.integ.scrubDone.UnixMilli()
	}
	in.ScrubBytes, in.ScrubError = n.integ.scrubBytes, n.integ.scrubErr
}
