package loginguard

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrThrottled is Attempt's answer when the address has failed too often.
var ErrThrottled = errors.New("loginguard: too many failed logins from this address")

// Outcome is what a password check found.
type Outcome int

const (
	// Success: the password was right.
	Success Outcome = iota
	// Wrong: the password (or user) was wrong; the attempt stays counted.
	Wrong
	// Unknown: the check could not be made (the cluster could not confirm
	// the credentials); the attempt is taken back, so a burst of
	// reconnects during an election does not lock an address out.
	Unknown
)

// Config configures a Guard. Zero values are production defaults.
type Config struct {
	// Self is this node's ID: the origin of the counts it gossips.
	Self string
	// Delay is the wait before answering the first failure from an
	// address; it doubles with each further failure up to MaxDelay.
	// Defaults 1 s and 16 s.
	Delay, MaxDelay time.Duration
	// Max failures from one address within Window (since its last
	// failure), summed over the cluster, make every attempt from it fail
	// without a check. Defaults 10 and 15 minutes.
	Max    int
	Window time.Duration
	// Slots bounds the password checks in flight on this node. Default 8.
	Slots int
	// MaxAddrs bounds the addresses remembered; over it, expired entries
	// are dropped, then new addresses are counted locally only until
	// room returns. Default 100,000.
	MaxAddrs int
	// Send, when set, sends msg to every other node (best effort: one
	// gossip datagram each; a later count repeats a lost one).
	Send func(msg []byte)
	// Now is the clock; nil means time.Now (tests).
	Now func() time.Time
}

// Guard is one node's login admission. Safe for concurrent use.
type Guard struct {
	cfg   Config
	slots chan struct{}

	mu    sync.Mutex
	addrs map[string]*entry

	checks, refused atomic.Int64
	// inFlight counts checks running; peak is its high-water mark.
	inFlight, peak atomic.Int64
}

// entry is what this node knows of one address: its own count and the
// latest count each other node gossiped, each with when it last moved
// (this node's clock, so no cross-site clock comparison is needed).
type entry struct {
	own    count
	remote map[string]count
}

type count struct {
	n    int
	last time.Time
}

// New returns a Guard.
func New(cfg Config) *Guard {
	if cfg.Delay <= 0 {
		cfg.Delay = time.Second
	}
	if cfg.MaxDelay <= 0 {
		cfg.MaxDelay = 16 * time.Second
	}
	if cfg.MaxDelay < cfg.Delay {
		cfg.MaxDelay = cfg.Delay
	}
	if cfg.Max <= 0 {
		cfg.Max = 10
	}
	if cfg.Window <= 0 {
		cfg.Window = 15 * time.Minute
	}
	if cfg.Slots <= 0 {
		cfg.Slots = 8
	}
	if cfg.MaxAddrs <= 0 {
		cfg.MaxAddrs = 100_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Guard{cfg: cfg, slots: make(chan struct{}, cfg.Slots), addrs: map[string]*entry{}}
}

// Attempt admits one login from addr: it refuses it (ErrThrottled, after
// the failure delay) when the address has failed too often in the
// cluster; otherwise it counts the attempt as a failure, waits for a
// check slot, runs check, and settles the count by its outcome. A wrong
// password is answered after the failure delay. Attempt returns nil when
// check ran (whatever it found), ErrThrottled, or ctx's error when ctx
// ended while waiting for a slot (the attempt is then taken back).
func (g *Guard) Attempt(ctx context.Context, addr string, check func() Outcome) error {
	if !g.begin(addr) {
		g.refused.Add(1)
		g.wait(ctx, g.delay(addr))
		return ErrThrottled
	}
	select {
	case g.slots <- struct{}{}:
	case <-ctx.Done():
		g.settle(addr, Unknown)
		return ctx.Err()
	}
	g.checks.Add(1)
	if n := g.inFlight.Add(1); n > g.peak.Load() {
		g.raisePeak(n)
	}
	out := check()
	g.inFlight.Add(-1)
	<-g.slots
	g.settle(addr, out)
	if out == Wrong {
		g.wait(ctx, g.delay(addr))
	}
	return nil
}

// Stats counts, since start, the password checks run and the attempts
// refused unchecked.
func (g *Guard) Stats() (checks, refused int64) { return g.checks.Load(), g.refused.Load() }

// PeakInFlight is the most password checks that ran at once.
func (g *Guard) PeakInFlight() int64 { return g.peak.Load() }

func (g *Guard) raisePeak(n int64) {
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// Failures is the number of failures from addr within the window, summed
// over what this node knows of the cluster.
func (g *Guard) Failures(addr string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.totalLocked(addr, g.cfg.Now())
}

func (g *Guard) wait(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// begin counts an attempt from addr; false when addr is at the limit, in
// which case the refused attempt is counted too (it keeps the address
// blocked for a further window, as before).
func (g *Guard) begin(addr string) bool {
	now := g.cfg.Now()
	g.mu.Lock()
	total := g.totalLocked(addr, now)
	e := g.entryLocked(addr, now)
	if e == nil { // full: count nothing, but still refuse at the limit
		g.mu.Unlock()
		return total < g.cfg.Max
	}
	if now.Sub(e.own.last) > g.cfg.Window {
		e.own = count{}
	}
	e.own.n = min(e.own.n+1, maxCount)
	e.own.last = now
	n := e.own.n
	g.mu.Unlock()
	g.gossip(message{Origin: g.cfg.Self, Addr: addr, N: n})
	return total < g.cfg.Max
}

// settle corrects begin's count by the check's outcome.
func (g *Guard) settle(addr string, out Outcome) {
	switch out {
	case Wrong:
		return
	case Success:
		// The user behind the address has shown the password: forget its
		// failures everywhere (a guesser who knows one password can thus
		// reset the count; per-account counting would close that).
		g.mu.Lock()
		delete(g.addrs, addr)
		g.mu.Unlock()
		g.gossip(message{Origin: g.cfg.Self, Addr: addr, Reset: true})
	default:
		g.mu.Lock()
		e := g.addrs[addr]
		if e == nil || e.own.n == 0 {
			g.mu.Unlock()
			return
		}
		e.own.n--
		n := e.own.n
		g.mu.Unlock()
		g.gossip(message{Origin: g.cfg.Self, Addr: addr, N: n})
	}
}

// delay is the wait before answering a failure from addr.
func (g *Guard) delay(addr string) time.Duration {
	n := max(g.Failures(addr), 1)
	d := g.cfg.Delay
	for i := 1; i < n && d < g.cfg.MaxDelay; i++ {
		d *= 2
	}
	return min(d, g.cfg.MaxDelay)
}

func (g *Guard) totalLocked(addr string, now time.Time) int {
	e := g.addrs[addr]
	if e == nil {
		return 0
	}
	total := 0
	if now.Sub(e.own.last) <= g.cfg.Window {
		total += e.own.n
	}
	for _, c := range e.remote {
		if now.Sub(c.last) <= g.cfg.Window {
			total += c.n
		}
	}
	return total
}

// entryLocked returns addr's entry, creating it; nil when the table is
// full even after dropping expired entries.
func (g *Guard) entryLocked(addr string, now time.Time) *entry {
	if e := g.addrs[addr]; e != nil {
		return e
	}
	if len(g.addrs) >= g.cfg.MaxAddrs {
		g.expireLocked(now)
		if len(g.addrs) >= g.cfg.MaxAddrs {
			return nil
		}
	}
	e := &entry{}
	g.addrs[addr] = e
	return e
}

func (g *Guard) expireLocked(now time.Time) {
	for a, e := range g.addrs {
		live := now.Sub(e.own.last) <= g.cfg.Window
		for o, c := range e.remote {
			if now.Sub(c.last) > g.cfg.Window {
				delete(e.remote, o)
			} else {
				live = true
			}
		}
		if !live {
			delete(g.addrs, a)
		}
	}
}

// maxCount caps every count, own or heard: enough to stay over any sane
// Max, small enough that sums cannot overflow.
const maxCount = 1 << 20

// message is one gossiped count: origin's count for addr, or a reset
// (a success at origin). Absolute, so a lost or repeated message does no
// harm and a newer one replaces an older one.
type message struct {
	Origin string `json:"o"`
	Addr   string `json:"a"`
	N      int    `json:"n,omitempty"`
	Reset  bool   `json:"r,omitempty"`
}

// kind is the first byte of a loginguard gossip message, so the pool's
// user messages can carry other kinds later.
const kind = 'L'

func (g *Guard) gossip(m message) {
	if g.cfg.Send == nil {
		return
	}
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	g.cfg.Send(append([]byte{kind}, b...))
}

// Receive takes a gossip message from another node. Messages that are
// not loginguard's, malformed, or this node's own are ignored.
func (g *Guard) Receive(b []byte) {
	if len(b) < 2 || b[0] != kind || len(b) > 512 {
		return
	}
	var m message
	if err := json.Unmarshal(b[1:], &m); err != nil {
		return
	}
	if m.Origin == "" || m.Origin == g.cfg.Self || len(m.Origin) > 128 ||
		m.Addr == "" || len(m.Addr) > 64 || m.N < 0 {
		return
	}
	now := g.cfg.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if m.Reset {
		delete(g.addrs, m.Addr)
		return
	}
	e := g.addrs[m.Addr]
	if e == nil {
		if m.N == 0 {
			return
		}
		if e = g.entryLocked(m.Addr, now); e == nil {
			return
		}
	}
	if e.remote == nil {
		e.remote = map[string]count{}
	}
	if m.N == 0 {
		delete(e.remote, m.Origin)
		return
	}
	if len(e.remote) >= 64 { // more origins than any cluster has nodes
		if _, ok := e.remote[m.Origin]; !ok {
			return
		}
	}
	e.remote[m.Origin] = count{n: min(m.N, maxCount), last: now}
}
