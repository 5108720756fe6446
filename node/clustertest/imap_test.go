package clustertest

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func newRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0xf7+stream)) }

// sample is a mailbox size an IMAP client learned at a time.
type sample struct {
	at time.Time
	n  uint32
}

// idler is an IMAP client in IDLE on INBOX, recording every EXISTS.
type idler struct {
	c    *Cluster
	user string

	mu      sync.Mutex
	node    int
	since   time.Time // connected (SELECT answered) at
	samples []sample
	cl      *imapclient.Client
	idle    *imapclient.IdleCommand
}

func (id *idler) record(n uint32) {
	id.mu.Lock()
	id.samples = append(id.samples, sample{time.Now(), n})
	id.mu.Unlock()
}

func (id *idler) max() uint32 {
	id.mu.Lock()
	defer id.mu.Unlock()
	var m uint32
	for _, s := range id.samples {
		m = max(m, s.n)
	}
	return m
}

// connect logs in on node i, SELECTs INBOX (recording its EXISTS) and
// starts IDLE. It returns the SELECT's data.
func (id *idler) connect(i int) (*imap.SelectData, error) {
	cl, err := id.c.DialIMAP(i, id.user, &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				id.record(*d.NumMessages)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	var sd *imap.SelectData
	if err := within(cl, 20*time.Second, func() (err error) { sd, err = cl.Select("INBOX", nil).Wait(); return err }); err != nil {
		cl.Close()
		return nil, fmt.Errorf("select: %w", err)
	}
	id.mu.Lock()
	id.node, id.since, id.cl = i, time.Now(), cl
	id.samples = append(id.samples, sample{time.Now(), sd.NumMessages})
	id.mu.Unlock()
	idle, err := cl.Idle()
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("idle: %w", err)
	}
	id.mu.Lock()
	id.idle = idle
	id.mu.Unlock()
	return sd, nil
}

// stop ends IDLE and returns a fresh SELECT's EXISTS on the same session.
func (id *idler) stop() (uint32, error) {
	id.mu.Lock()
	cl, idle := id.cl, id.idle
	id.mu.Unlock()
	defer cl.Close()
	var n uint32
	err := within(cl, 20*time.Second, func() error {
		if err := idle.Close(); err != nil {
			return err
		}
		if err := idle.Wait(); err != nil {
			return err
		}
		sd, err := cl.Select("INBOX", nil).Wait()
		if err != nil {
			return err
		}
		n = sd.NumMessages
		return nil
	})
	return n, err
}

// ackTimes returns when each acknowledged op to user was acknowledged,
// sorted.
func ackTimes(ops []*Op, user string) []time.Time {
	var ts []time.Time
	for _, op := range ops {
		if op.Outcome == OutcomeOK && op.Rcpt == user {
			ts = append(ts, op.Attempts[len(op.Attempts)-1].End)
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	return ts
}

// all is the sequence set 1:*.
var all = imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}

// testIDs fetches every message's X-Test-Id in the selected mailbox.
func testIDs(cl *imapclient.Client) (map[string]int, error) {
	ids := map[string]int{}
	sec := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"X-Test-Id"}, Peek: true}
	msgs, err := cl.Fetch(all, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		b := m.FindBodySection(sec)
		tid := testID(append(append([]byte(nil), b...), "\r\n\r\n"...))
		if tid == "" {
			tid = strings.TrimSpace(string(b))
		}
		ids[tid]++
	}
	return ids, nil
}

// TestFaultF12Idle: an IDLE client on every node; deliveries at random
// nodes; the node one client idles on is killed. Every delivery
// acknowledged with 250 is announced (EXISTS reaches it) on the idlers of
// the healthy nodes within a bound; the client of the killed node
// reconnects to another node and after SELECT sees every message
// acknowledged before it (by X-Test-Id), then idles there.
func TestFaultF12Idle(t *testing.T) {
	const announceBound = 10 * time.Second
	var idlers []*idler
	var killed int
	var reconnect struct {
		node    int
		at      time.Time // SELECT sent
		ids     map[string]int
		exists  uint32
		elapsed time.Duration // from the kill to the SELECT's answer
		// readOnly counts SELECTs answered read-only (no leader reachable
		// yet: the local replica, which may lag); staleRO counts the
		// acknowledged messages the last of them lacked.
		readOnly, staleRO int
	}
	runScenario(t, scenario{
		users: 1,
		opts:  Options{IMAP: true},
		faults: func(r *run) {
			user := r.c.Users[0]
			for i := range r.c.Nodes {
				id := &idler{c: r.c, user: user}
				if _, err := id.connect(i); err != nil {
					r.t.Fatalf("idler on %s: %v", r.c.Nodes[i].ID, err)
				}
				idlers = append(idlers, id)
			}
			r.hold(r.between(2*time.Second, 4*time.Second))
			killed = r.rng.IntN(len(r.c.Nodes))
			kill := time.Now()
			r.c.Kill(killed)
			id := idlers[killed]
			select {
			case <-id.cl.Closed():
			case <-time.After(10 * time.Second):
				r.t.Errorf("the IMAP client of killed %s did not notice within 10 s", r.c.Nodes[killed].ID)
				id.cl.Close()
			}
			// Reconnect to another node, as a client with several MX/IMAP
			// addresses would.
			j := (killed + 1 + r.rng.IntN(len(r.c.Nodes)-1)) % len(r.c.Nodes)
			reconnect.node = j
			r.c.Eventually(30*time.Second, "the killed node's client reconnects to "+r.c.Nodes[j].ID, func() (bool, string) {
				cl, err := r.c.DialIMAP(j, user, nil)
				if err != nil {
					return false, err.Error()
				}
				defer cl.Close()
				at := time.Now()
				var sd *imap.SelectData
				var ids map[string]int
				err = within(cl, 20*time.Second, func() (err error) {
					if sd, err = cl.Select("INBOX", nil).Wait(); err != nil {
						return err
					}
					if sd.NumMessages == 0 {
						ids = map[string]int{}
						return nil
					}
					ids, err = testIDs(cl)
					return err
				})
				if err != nil {
					return false, err.Error()
				}
				if len(sd.PermanentFlags) == 0 {
					// Served read-only from the local replica while no
					// leader is reachable (docs/ARCHITECTURE.md §1): it may lag;
					// a client retries until the cluster answers.
					reconnect.readOnly++
					reconnect.staleRO = 0
					for _, op := range r.w.Ops() {
						if op.Outcome == OutcomeOK && op.Rcpt == user && op.Attempts[len(op.Attempts)-1].End.Before(at) && ids[op.TestID] == 0 {
							reconnect.staleRO++
						}
					}
					time.Sleep(200 * time.Millisecond)
					return false, fmt.Sprintf("SELECT read-only, EXISTS %d", sd.NumMessages)
				}
				reconnect.at, reconnect.ids, reconnect.exists, reconnect.elapsed = at, ids, sd.NumMessages, time.Since(kill)
				return true, ""
			})
			if _, err := id.connect(j); err != nil {
				r.t.Fatalf("idler reconnecting to %s: %v", r.c.Nodes[j].ID, err)
			}
			r.hold(r.between(time.Second, 3*time.Second))
			r.c.StartNode(killed)
			r.waitAnswering(killed)
		},
		beforeQuiesce: func(r *run, ops []*Op) {
			acked := uint32(len(ackTimes(ops, r.c.Users[0])))
			for k, id := range idlers {
				r.c.Eventually(30*time.Second, fmt.Sprintf("idler %d announces all %d acknowledged", k, acked), func() (bool, string) {
					m := id.max()
					return m >= acked, fmt.Sprintf("EXISTS %d", m)
				})
				// Nothing else is delivered now: what it was told must be
				// exactly what a fresh SELECT shows.
				n, err := id.stop()
				if err != nil {
					r.t.Errorf("idler %d on %s: final SELECT: %v", k, r.c.Nodes[id.node].ID, err)
					continue
				}
				if m := id.max(); m != n {
					r.t.Errorf("idler %d on %s was told EXISTS %d at most, a fresh SELECT shows %d", k, r.c.Nodes[id.node].ID, m, n)
				}
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			user := r.c.Users[0]
			acks := ackTimes(ops, user)
			for k, id := range idlers {
				if k == killed {
					// It idles on its second node since the reconnect.
					r.t.Logf("idler %d: was on killed %s, reconnected to %s", k, r.c.Nodes[killed].ID, r.c.Nodes[id.node].ID)
				}
				id.mu.Lock()
				samples := append([]sample(nil), id.samples...)
				since := id.since
				id.mu.Unlock()
				var worst time.Duration
				checked := 0
				for i, at := range acks {
					if at.Before(since) {
						continue
					}
					checked++
					var when time.Time
					for _, s := range samples {
						if s.n >= uint32(i+1) && !s.at.Before(since) {
							when = s.at
							break
						}
					}
					if when.IsZero() {
						r.t.Errorf("idler %d on %s: acknowledged delivery %d (at +%v) never announced", k, r.c.Nodes[id.node].ID, i+1, at.Sub(r.c.events.t0).Round(time.Millisecond))
						break
					}
					lat := max(when.Sub(at), 0)
					worst = max(worst, lat)
					if lat > announceBound {
						r.t.Errorf("idler %d on %s: delivery %d announced %v after its 250, want within %v", k, r.c.Nodes[id.node].ID, i+1, lat, announceBound)
						break
					}
				}
				r.t.Logf("idler %d on %s: %d EXISTS updates, %d acknowledged deliveries checked, slowest announced %v after its 250", k, r.c.Nodes[id.node].ID, len(samples), checked, worst.Round(time.Millisecond))
			}
			missing := 0
			var before int
			for _, op := range ops {
				if op.Outcome != OutcomeOK || op.Rcpt != user || !op.Attempts[len(op.Attempts)-1].End.Before(reconnect.at) {
					continue
				}
				before++
				if reconnect.ids[op.TestID] == 0 {
					missing++
					if missing <= 5 {
						r.t.Errorf("after reconnecting to %s, %s (acknowledged before the SELECT) is missing", r.c.Nodes[reconnect.node].ID, op.TestID)
					}
				}
			}
			for tid, n := range reconnect.ids {
				if n > 1 {
					r.t.Errorf("after reconnecting, %s appears %d times", tid, n)
				}
			}
			r.t.Logf("killed %s; its client reconnected to %s: %d read-only SELECTs first (the last lacking %d acknowledged messages), then a writable SELECT %v after the kill: EXISTS %d, of the %d messages acknowledged before it missing %d",
				r.c.Nodes[killed].ID, r.c.Nodes[reconnect.node].ID, reconnect.readOnly, reconnect.staleRO, reconnect.elapsed.Round(time.Millisecond), reconnect.exists, before, missing)
			if missing > 0 {
				r.t.Errorf("%d acknowledged messages missing after the reconnect", missing)
			}
		},
	})
}

// readObs is one SELECT + UID FETCH of a reader.
type readObs struct {
	reader      int
	node        int
	start, end  time.Time
	exists      uint32
	uidNext     uint32
	uidValidity uint32
	readOnly    bool
	fetched     int
	err         string
}

// TestFaultF7ReadersDuringFaults: IMAP readers on random nodes repeatedly
// SELECT INBOX and UID FETCH 1:* (UID FLAGS), moving between nodes, while
// the leader is isolated, killed, and a follower partitioned off.
// Read-your-writes: a writable SELECT (after its read-index wait) started
// after a 250 shows that message (EXISTS counts it); a reader never sees
// EXISTS or UIDNEXT go backwards across writable SELECTs, wherever they
// ran, and UIDVALIDITY never changes. SELECTs answered read-only (no
// leader reachable: the local replica, docs/ARCHITECTURE.md §1) are counted,
// and may lag.
func TestFaultF7ReadersDuringFaults(t *testing.T) {
	const readers = 3
	var mu sync.Mutex
	var obs []readObs
	stop := make(chan struct{})
	var wg sync.WaitGroup
	runScenario(t, scenario{
		users: 1,
		opts:  Options{IMAP: true},
		faults: func(r *run) {
			user := r.c.Users[0]
			for k := 0; k < readers; k++ {
				wg.Add(1)
				go func(k int, seed uint64) {
					defer wg.Done()
					rng := newRand(seed, uint64(k))
					for {
						select {
						case <-stop:
							return
						default:
						}
						node := rng.IntN(len(r.c.Nodes))
						cl, err := r.c.DialIMAP(node, user, nil)
						if err != nil {
							time.Sleep(100 * time.Millisecond)
							continue
						}
						for n := 1 + rng.IntN(4); n > 0; n-- {
							o := readObs{reader: k, node: node, start: time.Now()}
							err := within(cl, 15*time.Second, func() error {
								sd, err := cl.Select("INBOX", nil).Wait()
								if err != nil {
									return err
								}
								o.exists, o.uidNext, o.uidValidity, o.readOnly = sd.NumMessages, uint32(sd.UIDNext), sd.UIDValidity, len(sd.PermanentFlags) == 0
								if sd.NumMessages == 0 {
									return nil
								}
								msgs, err := cl.Fetch(all, &imap.FetchOptions{UID: true, Flags: true}).Collect()
								o.fetched = len(msgs)
								return err
							})
							o.end = time.Now()
							if err != nil {
								o.err = err.Error()
							}
							mu.Lock()
							obs = append(obs, o)
							mu.Unlock()
							if err != nil {
								break
							}
							time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
						}
						cl.Close()
					}
				}(k, r.seed)
			}
			for step := 0; !r.done(); step++ {
				l := r.c.WaitLeader(30 * time.Second)
				r.hold(r.between(500*time.Millisecond, 1500*time.Millisecond))
				switch step % 3 {
				case 0:
					r.t.Logf("+%v isolate leader %s", time.Since(r.c.events.t0).Round(time.Millisecond), r.c.Nodes[l].ID)
					r.c.Isolate(l)
					r.hold(r.between(2*time.Second, 3*time.Second))
					r.c.Heal()
				case 1:
					r.t.Logf("+%v kill leader %s", time.Since(r.c.events.t0).Round(time.Millisecond), r.c.Nodes[l].ID)
					r.c.Kill(l)
					r.hold(r.between(time.Second, 2*time.Second))
					r.c.StartNode(l)
					r.waitAnswering(l)
				case 2:
					f := (l + 1 + r.rng.IntN(len(r.c.Nodes)-1)) % len(r.c.Nodes)
					r.t.Logf("+%v partition follower %s off", time.Since(r.c.events.t0).Round(time.Millisecond), r.c.Nodes[f].ID)
					r.c.Isolate(f)
					r.hold(r.between(2*time.Second, 3*time.Second))
					r.c.Heal()
				}
			}
		},
		beforeQuiesce: func(r *run, ops []*Op) {
			close(stop)
			wg.Wait()
		},
		check: func(r *run, ops []*Op, f *Figures) {
			acks := ackTimes(ops, r.c.Users[0])
			ackedBefore := func(at time.Time) int {
				return sort.Search(len(acks), func(i int) bool { return !acks[i].Before(at) })
			}
			var ok, ro, failed, staleRO, regressRO int
			last := map[int]readObs{}    // reader → last writable observation
			lastAny := map[int]readObs{} // reader → last observation
			for _, o := range obs {
				if o.err != "" {
					failed++
					continue
				}
				if o.readOnly {
					ro++
					if want := ackedBefore(o.start); int(o.exists) < want {
						staleRO++
					}
					if p, seen := lastAny[o.reader]; seen && (o.exists < p.exists || o.uidNext < p.uidNext) {
						regressRO++
					}
					lastAny[o.reader] = o
					continue
				}
				ok++
				if want := ackedBefore(o.start); int(o.exists) < want {
					r.t.Errorf("reader %d: writable SELECT on %s at +%v shows EXISTS %d, but %d deliveries were acknowledged before it", o.reader, r.c.Nodes[o.node].ID, o.start.Sub(r.c.events.t0).Round(time.Millisecond), o.exists, want)
				}
				if o.fetched < int(o.exists) {
					r.t.Errorf("reader %d on %s: UID FETCH 1:* returned %d messages after SELECT said EXISTS %d", o.reader, r.c.Nodes[o.node].ID, o.fetched, o.exists)
				}
				if p, seen := last[o.reader]; seen {
					if o.exists < p.exists || o.uidNext < p.uidNext {
						r.t.Errorf("reader %d went backwards: EXISTS %d UIDNEXT %d on %s at +%v, after EXISTS %d UIDNEXT %d on %s at +%v", o.reader,
							o.exists, o.uidNext, r.c.Nodes[o.node].ID, o.start.Sub(r.c.events.t0).Round(time.Millisecond),
							p.exists, p.uidNext, r.c.Nodes[p.node].ID, p.start.Sub(r.c.events.t0).Round(time.Millisecond))
					}
					if o.uidValidity != p.uidValidity {
						r.t.Errorf("reader %d: UIDVALIDITY %d on %s, was %d on %s", o.reader, o.uidValidity, r.c.Nodes[o.node].ID, p.uidValidity, r.c.Nodes[p.node].ID)
					}
				}
				last[o.reader] = o
				lastAny[o.reader] = o
			}
			r.t.Logf("readers: %d writable SELECT+FETCH checked, %d read-only (%d of them behind an acknowledged delivery, %d below the reader's previous view), %d failed (node down or cut off)", ok, ro, staleRO, regressRO, failed)
			if ok < 20 {
				r.t.Errorf("only %d writable SELECTs: the readers tested nothing", ok)
			}
		},
	})
}
