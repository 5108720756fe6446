package loginguard

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func quick(self string, max int, clk *clock) Config {
	return Config{Self: self, Delay: time.Microsecond, MaxDelay: time.Microsecond, Max: max, Window: time.Minute, Now: clk.now}
}

func try(g *Guard, addr string, out Outcome) (checked bool, err error) {
	err = g.Attempt(context.Background(), addr, func() Outcome { checked = true; return out })
	return checked, err
}

// TestParallelAttemptsAreCountedBeforeTheCheck: 50 attempts from one
// address start at once; only Max of them get to a password check, because
// each counts as a failure from its start.
func TestParallelAttemptsAreCountedBeforeTheCheck(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	g := New(quick("n1", 5, clk))
	var checked atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.Attempt(context.Background(), "192.0.2.1", func() Outcome {
				checked.Add(1)
				<-release // every admitted check is still running
				return Wrong
			})
		}()
	}
	// Wait until the 45 refusals are in, then let the checks finish.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, refused := g.Stats(); refused == 45 {
			break
		}
		if time.Now().After(deadline) {
			_, refused := g.Stats()
			t.Fatalf("%d attempts refused after 10 s, want 45", refused)
		}
	}
	close(release)
	wg.Wait()
	if got := checked.Load(); got != 5 {
		t.Fatalf("%d parallel attempts reached the password check, want 5", got)
	}
	// Another address is not affected.
	if ok, err := try(g, "192.0.2.2", Wrong); !ok || err != nil {
		t.Fatalf("an unrelated address: checked %v, %v", ok, err)
	}
	// A success forgets the address's failures.
	g.settle("192.0.2.1", Success)
	for i := 0; i < 5; i++ {
		if ok, _ := try(g, "192.0.2.1", Wrong); !ok {
			t.Fatalf("attempt %d after a success refused", i+1)
		}
	}
	if ok, err := try(g, "192.0.2.1", Success); ok || err != ErrThrottled {
		t.Fatalf("a sixth attempt in the window: checked %v, %v; want refused", ok, err)
	}
	// The window passes: allowed again.
	clk.add(2 * time.Minute)
	if ok, err := try(g, "192.0.2.1", Success); !ok || err != nil {
		t.Fatalf("after the window: checked %v, %v", ok, err)
	}
}

// TestAbandonedAttemptsDoNotCount: attempts the cluster could not judge
// (Unknown) are taken back, so a burst of reconnects during an election is
// not locked out; wrong passwords still are.
func TestAbandonedAttemptsDoNotCount(t *testing.T) {
	g := New(quick("n1", 3, &clock{t: time.Unix(1e9, 0)}))
	for i := 0; i < 10; i++ {
		if ok, _ := try(g, "10.0.0.1", Unknown); !ok {
			t.Fatalf("attempt %d refused although every earlier one was abandoned", i+1)
		}
	}
	for i := 0; i < 3; i++ {
		if ok, _ := try(g, "10.0.0.1", Wrong); !ok {
			t.Fatalf("wrong password %d refused before the limit", i+1)
		}
	}
	if ok, _ := try(g, "10.0.0.1", Success); ok {
		t.Fatal("a 4th attempt after 3 wrong passwords was let through")
	}
	// A context that ends while waiting for a slot takes the attempt back.
	g2 := New(Config{Self: "n1", Max: 1, Slots: 1, Delay: time.Microsecond})
	hold := make(chan struct{})
	go g2.Attempt(context.Background(), "10.0.0.9", func() Outcome { <-hold; return Success })
	for g2.checks.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g2.Attempt(ctx, "10.0.0.2", func() Outcome { return Success }); err != context.Canceled {
		t.Fatalf("attempt with an ended context: %v", err)
	}
	if n := g2.Failures("10.0.0.2"); n != 0 {
		t.Fatalf("an attempt that never ran left %d failures", n)
	}
	close(hold)
}

// bus delivers messages between guards on demand, the latest per origin
// and address (as if earlier datagrams had been lost).
type bus struct {
	mu     sync.Mutex
	guards []*Guard
	queue  map[string][]byte // name → latest message (a later one replaces)
	order  []string
	from   map[string]int
}

func (b *bus) sender(i int) func([]byte) {
	return func(msg []byte) {
		var m message
		json.Unmarshal(msg[1:], &m)
		b.mu.Lock()
		defer b.mu.Unlock()
		key := m.Addr + "@" + b.guards[i].cfg.Self
		if _, ok := b.queue[key]; !ok {
			b.order = append(b.order, key)
		}
		b.queue[key] = append([]byte(nil), msg...)
		b.from[key] = i
	}
}

func (b *bus) flush() {
	b.mu.Lock()
	q, order, from := b.queue, b.order, b.from
	b.queue, b.order, b.from = map[string][]byte{}, nil, map[string]int{}
	b.mu.Unlock()
	for _, k := range order {
		for j, g := range b.guards {
			if j != from[k] {
				g.Receive(q[k])
			}
		}
	}
}

// TestCountsAreSharedAcrossNodes: 30 wrong passwords spread round-robin
// over three nodes reach the check only Max (10) times in all, and the
// address is then refused on every node; another address is not; a
// success on one node forgets the address everywhere.
func TestCountsAreSharedAcrossNodes(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	b := &bus{queue: map[string][]byte{}, from: map[string]int{}}
	for i, id := range []string{"n1", "n2", "n3"} {
		cfg := quick(id, 10, clk)
		cfg.Send = b.sender(i)
		b.guards = append(b.guards, New(cfg))
	}
	checks := 0
	for i := 0; i < 30; i++ {
		if ok, _ := try(b.guards[i%3], "198.51.100.7", Wrong); ok {
			checks++
		}
		b.flush()
	}
	if checks != 10 {
		t.Fatalf("%d of 30 spread guesses reached the check, want 10 (per node alone it would be 30)", checks)
	}
	for i, g := range b.guards {
		if n := g.Failures("198.51.100.7"); n != 30 {
			t.Errorf("n%d counts %d failures, want 30", i+1, n)
		}
		if ok, err := try(g, "198.51.100.7", Success); ok || err != ErrThrottled {
			t.Errorf("n%d: the right password from the address: checked %v, %v; want throttled", i+1, ok, err)
		}
		if ok, err := try(g, "198.51.100.8", Success); !ok || err != nil {
			t.Errorf("n%d: another address: checked %v, %v", i+1, ok, err)
		}
	}
	b.flush()
	// The window passes everywhere; a success on n2 then forgets the
	// address on n1 and n3 too.
	clk.add(2 * time.Minute)
	for i := 0; i < 4; i++ {
		try(b.guards[0], "198.51.100.7", Wrong)
	}
	b.flush()
	if n := b.guards[2].Failures("198.51.100.7"); n != 4 {
		t.Fatalf("n3 counts %d after the window and 4 new failures on n1, want 4", n)
	}
	if ok, _ := try(b.guards[1], "198.51.100.7", Success); !ok {
		t.Fatal("a success on n2 was refused")
	}
	b.flush()
	for i, g := range b.guards {
		if n := g.Failures("198.51.100.7"); n != 0 {
			t.Errorf("n%d still counts %d failures after a success on n2", i+1, n)
		}
	}
}

// TestReceiveRefusesBadMessages: gossip from other nodes is input.
func TestReceiveRefusesBadMessages(t *testing.T) {
	g := New(quick("n1", 10, &clock{t: time.Unix(1e9, 0)}))
	long := make([]byte, 100)
	for i := range long {
		long[i] = 'a'
	}
	for _, m := range []string{
		"",
		"L",
		"X{\"o\":\"n2\",\"a\":\"1.2.3.4\",\"n\":5}", // another kind
		"L{not json",
		`L{"o":"","a":"1.2.3.4","n":5}`,
		`L{"o":"n1","a":"1.2.3.4","n":5}`, // claims to be this node
		`L{"o":"n2","a":"","n":5}`,
		`L{"o":"n2","a":"1.2.3.4","n":-3}`,
		`L{"o":"n2","a":"` + string(long) + `","n":5}`,
	} {
		g.Receive([]byte(m))
	}
	if n := len(g.addrs); n != 0 {
		t.Fatalf("bad messages created %d entries", n)
	}
	g.Receive([]byte(`L{"o":"n2","a":"1.2.3.4","n":99999999999}`))
	if n := g.Failures("1.2.3.4"); n != maxCount {
		t.Fatalf("a huge count was taken as %d, want the cap %d", n, maxCount)
	}
	// The table is bounded.
	small := New(Config{Self: "n1", MaxAddrs: 3})
	for _, a := range []string{"a", "b", "c", "d", "e"} {
		small.Receive([]byte(`L{"o":"n2","a":"` + a + `","n":1}`))
	}
	if n := len(small.addrs); n != 3 {
		t.Fatalf("%d addresses kept, want the cap 3", n)
	}
}

// TestChecksInFlightAreBounded: 50 attempts from 50 addresses at once run
// at most Slots checks at a time, and all of them run.
func TestChecksInFlightAreBounded(t *testing.T) {
	g := New(Config{Self: "n1", Slots: 3, Delay: time.Microsecond})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.Attempt(context.Background(), "192.0.2."+strconv.Itoa(i), func() Outcome {
				time.Sleep(2 * time.Millisecond)
				return Wrong
			})
		}()
	}
	wg.Wait()
	if checks, _ := g.Stats(); checks != 50 {
		t.Fatalf("%d checks ran, want 50", checks)
	}
	if p := g.PeakInFlight(); p > 3 || p < 1 {
		t.Fatalf("%d checks ran at once, want 1 to 3", p)
	}
}
