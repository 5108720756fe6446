package clustertest

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Flag operations of the IMAP flag clients: one message's \Flagged.
const (
	flagAdd    = "+flagged"
	flagRemove = "-flagged"
	flagRead   = "read"
)

// flagOp is one flag operation as its client saw it: invoke, return,
// outcome. A write's outcome is ok (tagged OK), fail (refused before it was
// proposed: the node said it is cut off) or unknown (any other NO, a
// timeout, a dropped connection: it may or may not take effect, at any
// time after its invoke). A read is a writable SELECT (the read-index
// wait) then UID FETCH (FLAGS); its interval spans both.
type flagOp struct {
	Client  int       `json:"client"`
	Node    int       `json:"node"`
	UID     uint32    `json:"uid"`
	Kind    string    `json:"kind"`
	Call    time.Time `json:"call"`
	Return  time.Time `json:"return"`
	Outcome string    `json:"outcome"`
	Flagged bool      `json:"flagged,omitempty"` // what a read saw
	// ReadOnly: the read's SELECT was answered read-only (no leader
	// reachable): the local replica, which may lag by design. Such reads
	// are not part of the linearizability check.
	ReadOnly bool   `json:"read_only,omitempty"`
	Err      string `json:"err,omitempty"`
}

// flagClients are IMAP clients storing and reading \Flagged on UIDs
// 1..uids of the user's INBOX at random nodes.
type flagClients struct {
	c    *Cluster
	user string
	uids int

	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	ops  []*flagOp
}

func (fc *flagClients) stopped() bool {
	select {
	case <-fc.stop:
		return true
	default:
		return false
	}
}

func (fc *flagClients) add(op *flagOp) {
	fc.mu.Lock()
	fc.ops = append(fc.ops, op)
	fc.mu.Unlock()
}

// selectWritable SELECTs INBOX and reports whether the node answered
// writable (non-empty PERMANENTFLAGS: it did the read-index wait).
func selectWritable(cl *imapclient.Client) (bool, error) {
	sd, err := cl.Select("INBOX", nil).Wait()
	if err != nil {
		return false, err
	}
	return len(sd.PermanentFlags) > 0, nil
}

// readFlag is one read: SELECT, then UID FETCH uid (FLAGS).
func readFlag(cl *imapclient.Client, op *flagOp) {
	op.Kind, op.Call = flagRead, time.Now()
	err := within(cl, 15*time.Second, func() error {
		w, err := selectWritable(cl)
		if err != nil {
			return err
		}
		op.ReadOnly = !w
		msgs, err := cl.Fetch(imap.UIDSetNum(imap.UID(op.UID)), &imap.FetchOptions{UID: true, Flags: true}).Collect()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if uint32(m.UID) == op.UID {
				for _, f := range m.Flags {
					op.Flagged = op.Flagged || f == imap.FlagFlagged
				}
				return nil
			}
		}
		return fmt.Errorf("UID FETCH %d (FLAGS) returned no message %d", op.UID, op.UID)
	})
	op.Return = time.Now()
	op.Outcome = OutcomeOK
	if err != nil {
		// A read that did not answer constrains nothing.
		op.Outcome, op.Err = OutcomeFail, err.Error()
	}
}

// storeFlag is one write: UID STORE uid +FLAGS.SILENT or -FLAGS.SILENT
// (\Flagged).
func storeFlag(cl *imapclient.Client, op *flagOp) {
	sop := imap.StoreFlagsAdd
	if op.Kind == flagRemove {
		sop = imap.StoreFlagsDel
	}
	op.Call = time.Now()
	err := within(cl, 10*time.Second, func() error {
		_, err := cl.Store(imap.UIDSetNum(imap.UID(op.UID)), &imap.StoreFlags{Op: sop, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect()
		return err
	})
	op.Return = time.Now()
	var ie *imap.Error
	switch {
	case err == nil:
		op.Outcome = OutcomeOK
	case errors.As(err, &ie) && strings.Contains(ie.Text, "cut off"):
		// Refused up front by a node that knows it is cut off
		// (imapd's checkWrite): never proposed.
		op.Outcome, op.Err = OutcomeFail, err.Error()
	default:
		op.Outcome, op.Err = OutcomeUnknown, err.Error()
	}
}

func (fc *flagClients) client(k int, seed uint64) {
	defer fc.wg.Done()
	rng := newRand(seed, 100+uint64(k))
	for !fc.stopped() {
		node := rng.IntN(len(fc.c.Nodes))
		cl, err := fc.c.DialIMAP(node, fc.user, nil)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		var w bool
		if err := within(cl, 15*time.Second, func() (err error) { w, err = selectWritable(cl); return err }); err != nil || !w {
			cl.Close()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for n := 5 + rng.IntN(25); n > 0 && !fc.stopped(); n-- {
			op := &flagOp{Client: k, Node: node, UID: uint32(1 + rng.IntN(fc.uids))}
			switch x := rng.IntN(10); {
			case x < 3:
				op.Kind = flagAdd
				storeFlag(cl, op)
			case x < 6:
				op.Kind = flagRemove
				storeFlag(cl, op)
			default:
				readFlag(cl, op)
			}
			fc.add(op)
			if op.Outcome != OutcomeOK || op.ReadOnly {
				break // reconnect, perhaps elsewhere
			}
			time.Sleep(time.Duration(5+rng.IntN(40)) * time.Millisecond)
		}
		cl.Close()
	}
}

// finalReads reads every UID once more after the faults are healed: a
// writable SELECT on node i, one read per UID. They bound what the unknown
// writes may have done.
func (fc *flagClients) finalReads(t *testing.T, i int) {
	t.Helper()
	fc.c.Eventually(60*time.Second, "final flag reads on "+fc.c.Nodes[i].ID, func() (bool, string) {
		cl, err := fc.c.DialIMAP(i, fc.user, nil)
		if err != nil {
			return false, err.Error()
		}
		defer cl.Close()
		var reads []*flagOp
		for u := 1; u <= fc.uids; u++ {
			op := &flagOp{Client: -1, Node: i, UID: uint32(u)}
			readFlag(cl, op)
			if op.Outcome != OutcomeOK || op.ReadOnly {
				return false, fmt.Sprintf("read %d: %s read-only %v", u, op.Err, op.ReadOnly)
			}
			reads = append(reads, op)
		}
		for _, op := range reads {
			fc.add(op)
		}
		return true, ""
	})
}

// flagModel is the sequential specification of one message's \Flagged:
// the state is whether it is set.
func flagModel() porcupine.Model {
	return porcupine.Model{
		Init: func() any { return false },
		Step: func(state, input, output any) (bool, any) {
			s, in := state.(bool), input.(*flagOp)
			switch in.Kind {
			case flagAdd:
				return true, true
			case flagRemove:
				return true, false
			default:
				return output.(bool) == s, s
			}
		},
		DescribeOperation: func(input, output any) string {
			in := input.(*flagOp)
			what := fmt.Sprintf("c%d@n%d %s", in.Client, in.Node+1, in.Kind)
			if in.Kind == flagRead {
				return fmt.Sprintf("%s -> %v", what, output)
			}
			return what + " " + in.Outcome
		},
		DescribeState: func(state any) string { return fmt.Sprint(state) },
	}
}

// flagHistory turns the operations on uid into porcupine's: failed
// writes and failed or read-only reads leave out (withReadOnly keeps the
// read-only reads), unknown writes return at the end of time.
func flagHistory(ops []*flagOp, uid uint32, t0 time.Time, withReadOnly bool) (h []porcupine.Operation, unknown int) {
	for _, op := range ops {
		if op.UID != uid || op.Outcome == OutcomeFail || (op.ReadOnly && !withReadOnly) {
			continue
		}
		ret := op.Return.Sub(t0).Nanoseconds()
		if op.Outcome == OutcomeUnknown {
			ret = math.MaxInt64
			unknown++
		}
		client := op.Client
		if client < 0 {
			client = 1000 // the final reader
		}
		h = append(h, porcupine.Operation{ClientId: client, Input: op, Call: op.Call.Sub(t0).Nanoseconds(), Output: op.Flagged, Return: ret})
	}
	return h, unknown
}

// checkFlags checks each UID's history; it returns the verdict per UID and
// writes a visualization of each one that is not Ok into dir.
func checkFlags(t *testing.T, ops []*flagOp, uids []uint32, t0 time.Time, withReadOnly bool, dir, name string) map[uint32]porcupine.CheckResult {
	out := map[uint32]porcupine.CheckResult{}
	for _, u := range uids {
		h, _ := flagHistory(ops, u, t0, withReadOnly)
		res, info := porcupine.CheckOperationsVerbose(flagModel(), h, 10*time.Second)
		out[u] = res
		if res != porcupine.Ok && dir != "" {
			p := filepath.Join(dir, fmt.Sprintf("%s-uid%d.html", name, u))
			if err := porcupine.VisualizePath(flagModel(), info, p); err == nil {
				t.Logf("UID %d (%s): %s; porcupine's view of the history: %s", u, name, res, p)
			}
		}
	}
	return out
}

// TestFaultLinearizableFlags: IMAP clients at random nodes UID STORE
// +FLAGS / -FLAGS (\Flagged) on a few UIDs of one INBOX and read them back
// (a writable SELECT, whose read-index wait makes the read current, then UID
// FETCH (FLAGS)), while the leader is killed, a follower partitioned off
// and the leader isolated. Every operation is recorded with invoke and
// return times and an outcome; per UID, porcupine must find the history
// linearizable against a one-flag register, each unknown write free to
// take effect at any time after its invoke or never.
//
// The checker is shown catching the anomaly it exists for: while a
// follower is cut off, a probe sets \Flagged on a UID of its own through
// the majority and then reads it on the follower, which answers from its
// local replica (read-only, no read-index: docs/ARCHITECTURE.md §1 allows it to
// lag); that stale read must make the probe's history not linearizable.
func TestFaultLinearizableFlags(t *testing.T) {
	const uids, clients = 4, 6
	probeUID := uint32(uids + 1)
	var fc *flagClients
	var probe []*flagOp
	var t0 time.Time
	runScenario(t, scenario{
		users:    1,
		opts:     Options{IMAP: true},
		workload: WorkloadOptions{Senders: 2},
		faults: func(r *run) {
			t0 = r.c.events.t0
			user := r.c.Users[0]
			// Flag the UIDs only once they exist: a STORE on a UID not
			// yet delivered does nothing, which the model cannot know.
			r.c.Eventually(30*time.Second, fmt.Sprintf("INBOX holds UIDs 1..%d", probeUID), func() (bool, string) {
				cl, err := r.c.DialIMAP(0, user, nil)
				if err != nil {
					return false, err.Error()
				}
				defer cl.Close()
				var sd *imap.SelectData
				if err := within(cl, 10*time.Second, func() (err error) { sd, err = cl.Select("INBOX", nil).Wait(); return err }); err != nil {
					return false, err.Error()
				}
				return uint32(sd.UIDNext) > probeUID, fmt.Sprintf("UIDNEXT %d", sd.UIDNext)
			})
			fc = &flagClients{c: r.c, user: user, uids: uids, stop: make(chan struct{})}
			for k := 0; k < clients; k++ {
				fc.wg.Add(1)
				go fc.client(k, r.seed)
			}
			for step := 0; !r.done() || step < 3; step++ {
				l := r.c.WaitLeader(30 * time.Second)
				r.hold(r.between(500*time.Millisecond, 1500*time.Millisecond))
				switch step % 3 {
				case 0:
					r.t.Logf("+%v kill leader %s", time.Since(t0).Round(time.Millisecond), r.c.Nodes[l].ID)
					r.c.Kill(l)
					r.hold(r.between(time.Second, 2*time.Second))
					r.c.StartNode(l)
					r.waitAnswering(l)
				case 1:
					f := (l + 1 + r.rng.IntN(len(r.c.Nodes)-1)) % len(r.c.Nodes)
					r.t.Logf("+%v partition follower %s off", time.Since(t0).Round(time.Millisecond), r.c.Nodes[f].ID)
					r.c.Isolate(f)
					if probe == nil {
						probe = stalenessProbe(r, l, f, probeUID)
					}
					r.hold(r.between(2*time.Second, 3*time.Second))
					r.c.Heal()
				case 2:
					r.t.Logf("+%v isolate leader %s", time.Since(t0).Round(time.Millisecond), r.c.Nodes[l].ID)
					r.c.Isolate(l)
					r.hold(r.between(2*time.Second, 3*time.Second))
					r.c.Heal()
				}
			}
		},
		beforeQuiesce: func(r *run, ops []*Op) {
			close(fc.stop)
			fc.wg.Wait()
			// The faults ended healed: read every UID once more.
			fc.finalReads(r.t, r.c.WaitLeader(30*time.Second))
		},
		check: func(r *run, ops []*Op, f *Figures) {
			fc.mu.Lock()
			fops := append([]*flagOp(nil), fc.ops...)
			fc.mu.Unlock()
			sort.Slice(fops, func(i, j int) bool { return fops[i].Call.Before(fops[j].Call) })
			counts := map[string]int{}
			for _, op := range fops {
				k := op.Kind
				if k != flagRead {
					k = "write"
				}
				k += " " + op.Outcome
				if op.ReadOnly {
					k += " read-only"
				}
				counts[k]++
			}
			var list []uint32
			for u := uint32(1); u <= uids; u++ {
				list = append(list, u)
			}
			start := time.Now()
			verdict := checkFlags(r.t, fops, list, t0, false, r.c.Dir, "flags")
			took := time.Since(start)
			for _, u := range list {
				h, unknown := flagHistory(fops, u, t0, false)
				r.t.Logf("UID %d: %d operations (%d unknown writes): %s", u, len(h), unknown, verdict[u])
				if verdict[u] != porcupine.Ok {
					r.t.Errorf("UID %d: the \\Flagged history is %s, want Ok (linearizable)", u, verdict[u])
				}
			}
			r.t.Logf("flag operations: %v; porcupine took %v", counts, took.Round(time.Millisecond))
			if counts["write ok"] < 50 || counts["read ok"] < 50 {
				r.t.Errorf("only %d acknowledged writes and %d linearizable reads: the flag clients tested little", counts["write ok"], counts["read ok"])
			}
			// The checker can fail: the probe's stale read.
			if len(probe) != 2 {
				r.t.Fatalf("the staleness probe did not run (%d operations)", len(probe))
			}
			r.t.Logf("probe: %s on %s ok at +%v; then a read on cut-off %s (read-only %v) saw \\Flagged %v at +%v",
				probe[0].Kind, r.c.Nodes[probe[0].Node].ID, probe[0].Return.Sub(t0).Round(time.Millisecond),
				r.c.Nodes[probe[1].Node].ID, probe[1].ReadOnly, probe[1].Flagged, probe[1].Call.Sub(t0).Round(time.Millisecond))
			if probe[1].Flagged || !probe[1].ReadOnly {
				r.t.Errorf("the cut-off follower's read was not stale (read-only %v, flagged %v): the probe proves nothing", probe[1].ReadOnly, probe[1].Flagged)
			} else if v := checkFlags(r.t, probe, []uint32{probeUID}, t0, true, "", "")[probeUID]; v != porcupine.Illegal {
				r.t.Errorf("porcupine finds the probe's stale read %s, want Illegal: the linearizability checker cannot see a stale read", v)
			} else {
				r.t.Logf("porcupine finds the probe's stale read Illegal, as it must")
			}
		},
	})
}

// stalenessProbe sets \Flagged on uid through node l (on the majority
// side, retrying until a tagged OK) while f is cut off, then reads uid on
// f: f cannot have the write, so it must answer read-only with the flag
// unset. It returns the write and the read.
func stalenessProbe(r *run, l, f int, uid uint32) []*flagOp {
	r.t.Helper()
	user := r.c.Users[0]
	w := &flagOp{Client: 2000, Node: l, UID: uid, Kind: flagAdd}
	r.c.Eventually(20*time.Second, "the probe's write through "+r.c.Nodes[l].ID, func() (bool, string) {
		cl, err := r.c.DialIMAP(l, user, nil)
		if err != nil {
			return false, err.Error()
		}
		defer cl.Close()
		var ok bool
		if err := within(cl, 10*time.Second, func() (err error) { ok, err = selectWritable(cl); return err }); err != nil || !ok {
			return false, fmt.Sprintf("select: %v writable %v", err, ok)
		}
		storeFlag(cl, w)
		return w.Outcome == OutcomeOK, w.Err
	})
	rd := &flagOp{Client: 2001, Node: f, UID: uid}
	r.c.Eventually(20*time.Second, "the probe's read on cut-off "+r.c.Nodes[f].ID, func() (bool, string) {
		cl, err := r.c.DialIMAP(f, user, nil)
		if err != nil {
			return false, err.Error()
		}
		defer cl.Close()
		readFlag(cl, rd)
		return rd.Outcome == OutcomeOK, rd.Err
	})
	return []*flagOp{w, rd}
}
