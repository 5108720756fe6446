package node_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// imapLogin connects to addr from the local address src, sends one LOGIN
// and returns the tagged reply.
func imapLogin(t *testing.T, src, addr, user, pw string) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(conn)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting from %s: %q, %v", addr, l, err)
	}
	fmt.Fprintf(conn, "a1 LOGIN %q %q\r\n", user, pw)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("LOGIN at %s: %v", addr, err)
		}
		if strings.HasPrefix(l, "a1 ") {
			return strings.TrimSpace(l)
		}
	}
}

// TestLoginThrottleIsClusterWide (issue 10): 30 wrong passwords from one
// address spread round-robin over the three nodes reach a password check
// only max-login-failures (10) times in all, not 10 per node; then the
// right password from that address is refused unchecked on every node,
// while another address logs in everywhere.
func TestLoginThrottleIsClusterWide(t *testing.T) {
	const max = 10
	c := nodetest.Start(t, nodetest.Options{Nodes: 3, Protocols: true, Configure: func(i int, cfg *config.Config) {
		cfg.MaxLoginFailures = max
		cfg.LoginFailureDelay = config.Duration{Duration: 5 * time.Millisecond}
	}})
	l := c.WaitLeader(10 * time.Second)
	c.WaitVoters(3, 20*time.Second)
	ctx := c.Ctx(2 * time.Minute)
	const user, pw = "alice@example.test", "correct horse battery"
	if _, err := c.Admin(l).DomainAdd(ctx, &adminpb.DomainAddRequest{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin(l).UserAdd(ctx, &adminpb.UserAddRequest{Email: user, Password: pw}); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(20 * time.Second)
	checks := func() (n int64) {
		for _, nd := range c.Nodes {
			ch, _ := nd.Logins().Stats()
			n += ch
		}
		return n
	}
	const guesser, other = "127.0.0.1", "127.0.0.2"
	before := checks()
	unavailable := int64(0) // checks that ran but could not be judged (not counted)
	for i := 0; i < 30; i++ {
		got := imapLogin(t, guesser, c.Cfgs[i%3].IMAPAddr, user, fmt.Sprintf("guess %d", i))
		if strings.Contains(got, "UNAVAILABLE") {
			// The node could not confirm credentials (read-index under
			// load): not counted, by design; the guesser tries again.
			t.Logf("guess %d on n%d: %s; again", i, i%3+1, got)
			unavailable++
			i--
			continue
		}
		if !strings.HasPrefix(got, "a1 NO") {
			t.Fatalf("guess %d on n%d: %q, want NO", i, i%3+1, got)
		}
		// A guesser pauses between tries (each wrong answer is delayed
		// anyway); wait for gossip to carry the count to every node.
		c.Eventually(10*time.Second, fmt.Sprintf("every node counts %d failures", i+1), func() bool {
			for _, nd := range c.Nodes {
				if nd.Logins().Failures(guesser) < i+1 {
					return false
				}
			}
			return true
		})
	}
	if got := checks() - before - unavailable; got != max {
		t.Fatalf("%d of 30 guesses spread over 3 nodes reached a password check, want %d (per-node counting gives 30)", got, max)
	}
	before = checks()
	for i := range c.Nodes {
		if got := imapLogin(t, guesser, c.Cfgs[i].IMAPAddr, user, pw); !strings.HasPrefix(got, "a1 NO") {
			t.Errorf("right password from the guesser's address on n%d: %q, want NO (throttled)", i+1, got)
		}
	}
	if got := checks() - before; got != 0 {
		t.Errorf("%d throttled logins reached a password check", got)
	}
	for i := range c.Nodes {
		if got := imapLogin(t, other, c.Cfgs[i].IMAPAddr, user, pw); !strings.HasPrefix(got, "a1 OK") {
			t.Errorf("right password from another address on n%d: %q, want OK", i+1, got)
		}
	}
}

// argonMiB is what one argon2id password check allocates (node/mail).
const argonMiB = 19

// TestLoginFloodBoundsMemory (issue 10): 500 LOGINs at once on one node,
// each from its own address (so neither the throttle nor the per-address
// cap turns any away unchecked: every one costs an argon2 check), with
// the default max-concurrent-logins of 8. Every LOGIN is answered, at
// most 8 checks run at once, and the heap stays under the stated bound
// 3 × (baseline + 8 × 19 MiB) + 64 MiB: the Go GC lets the heap grow to
// about twice what was live at the last collection, plus what is
// allocated while it marks. Unbounded, 500 checks at once would hold
// 500 × 19 MiB = 9.3 GiB.
//
// It runs only with CONTINUUM_LOGIN_FLOOD=N (N LOGINs; make
// test-login-flood runs 500): 500 argon2 checks take about 35 s of CPU,
// minutes on the shared 2-core machine. make test covers the same bound
// at 80 LOGINs through imapd (TestConcurrentLoginsBoundMemory).
func TestLoginFloodBoundsMemory(t *testing.T) {
	logins, err := strconv.Atoi(os.Getenv("CONTINUUM_LOGIN_FLOOD"))
	if err != nil || logins <= 0 {
		t.Skip("set CONTINUUM_LOGIN_FLOOD=500 (make test-login-flood)")
	}
	const slots = 8
	c := nodetest.Start(t, nodetest.Options{Nodes: 1, Protocols: true, NoSync: true, Configure: func(i int, cfg *config.Config) {
		cfg.MaxConcurrentLogins = slots
		cfg.LoginFailureDelay = config.Duration{Duration: time.Millisecond}
	}})
	c.WaitLeader(10 * time.Second)
	ctx := c.Ctx(time.Minute)
	const user, pw = "alice@example.test", "correct horse battery"
	if _, err := c.Admin(0).DomainAdd(ctx, &adminpb.DomainAddRequest{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin(0).UserAdd(ctx, &adminpb.UserAddRequest{Email: user, Password: pw}); err != nil {
		t.Fatal(err)
	}
	addr := c.Cfgs[0].IMAPAddr
	guard := c.Nodes[0].Logins()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapAlloc
	var peak atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	// Every connection is open and has sent its LOGIN before the first
	// answer is read: 500 attempts in flight at once.
	conns := make([]net.Conn, logins)
	readers := make([]*bufio.Reader, logins)
	for i := range conns {
		src := net.IPv4(127, 1, byte(i/250), byte(i%250+1))
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: src}}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Minute))
		r := bufio.NewReader(conn)
		if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
			t.Fatalf("greeting %d: %q, %v", i, l, err)
		}
		p := pw
		if i%2 == 1 {
			p = "wrong"
		}
		fmt.Fprintf(conn, "a1 LOGIN %q %q\r\n", user, p)
		conns[i], readers[i] = conn, r
	}
	start := time.Now()
	var ok, no, unavailable atomic.Int32
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				l, err := readers[i].ReadString('\n')
				if err != nil {
					t.Errorf("LOGIN %d: %v", i, err)
					return
				}
				switch {
				case !strings.HasPrefix(l, "a1 "):
					continue
				case strings.HasPrefix(l, "a1 OK"):
					ok.Add(1)
				case strings.Contains(l, "UNAVAILABLE"):
					unavailable.Add(1)
				default:
					no.Add(1)
				}
				return
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	limit := 3*(baseline+slots*argonMiB<<20) + 64<<20
	checks, refused := guard.Stats()
	t.Logf("%d parallel LOGINs: %d OK, %d NO, %d UNAVAILABLE, answered over %v; %d checks, %d refused unchecked, at most %d at once; heap baseline %d MiB, peak %d MiB, bound %d MiB",
		logins, ok.Load(), no.Load(), unavailable.Load(), time.Since(start).Round(time.Millisecond),
		checks, refused, guard.PeakInFlight(), baseline>>20, peak.Load()>>20, limit>>20)
	if got := ok.Load() + no.Load() + unavailable.Load(); got != int32(logins) {
		t.Errorf("%d of %d LOGINs answered", got, logins)
	}
	if refused != 0 || checks != int64(logins) {
		t.Errorf("%d checks and %d refusals, want %d checks: the flood must cost a check each", checks, refused, logins)
	}
	if no.Load() < int32(logins/2) {
		t.Errorf("%d wrong passwords refused, want %d", no.Load(), logins/2)
	}
	if p := guard.PeakInFlight(); p > slots {
		t.Errorf("%d checks ran at once, over the bound of %d", p, slots)
	}
	if peak.Load() > limit {
		t.Errorf("heap peaked at %d MiB, over the bound of %d MiB", peak.Load()>>20, limit>>20)
	}
}
