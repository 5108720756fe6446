package imapd_test

import (
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/imapd"
)

// argonMiB is the memory one argon2id check holds (node/mail/password.go).
const argonMiB = 19

// TestConcurrentLoginsBoundMemory: 80 LOGINs at once on one node, with
// MaxConcurrentAuth 4: every one is answered, and the heap stays under
// 3 × (baseline + 4 × 19 MiB) + 64 MiB (the Go GC lets the heap grow to
// twice what was live at the last collection, plus what is allocated while
// it marks). Without the bound, 80 checks at once would hold 1.5 GiB.
func TestConcurrentLoginsBoundMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates argon2 memory 200 times")
	}
	e := newEnv(t, nil)
	const slots, logins = 4, 80
	addr := e.serve(0, func(o *imapd.Options) {
		o.MaxConcurrentAuth = slots
		o.MaxConnsPerIP, o.MaxAuthFailures = 1000, 1000
	})
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseline := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
		}
	}()
	var wg sync.WaitGroup
	var ok, failed atomic.Int32
	start := time.Now()
	for i := 0; i < logins; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, addr)
			pw := password
			if i%2 == 1 {
				pw = "wrong"
			}
			// Answers queue behind 4 checks: wait longer than c.line does.
			c.send("t1 LOGIN %s %q\r\n", alice, pw)
			var st string
			for {
				l, err := c.readLine(2 * time.Minute)
				if err != nil {
					t.Errorf("login: %v", err)
					return
				}
				if strings.HasPrefix(l, "t1 ") {
					st = l
					break
				}
			}
			if strings.Contains(st, "OK") {
				ok.Add(1)
			} else {
				failed.Add(1)
				if i%2 == 0 {
					t.Logf("correct password refused: %s", st)
				}
			}
			c.conn.Close()
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	limit := 3*(baseline+slots*argonMiB<<20) + 64<<20
	t.Logf("%d logins (%d ok, %d refused) in %v; heap baseline %d MiB, peak %d MiB, bound %d MiB",
		logins, ok.Load(), failed.Load(), time.Since(start).Round(time.Millisecond), baseline>>20, peak.Load()>>20, limit>>20)
	if ok.Load() != logins/2 || failed.Load() != logins/2 {
		t.Errorf("%d ok, %d refused; want %d each", ok.Load(), failed.Load(), logins/2)
	}
	if peak.Load() > limit {
		t.Errorf("heap peaked at %d MiB, over the bound of %d MiB", peak.Load()>>20, limit>>20)
	}
}

// TestIMAPConnectionCaps: the connection over the per-address cap, and the
// one over the total cap, get BYE [UNAVAILABLE] and are closed; closing one
// makes room again.
func TestIMAPConnectionCaps(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name         string
		perIP, total int
		open         int
	}{
		{"per address", 3, 100, 3},
		{"in total", 100, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := e.serve(1, func(o *imapd.Options) { o.MaxConnsPerIP, o.MaxConns = tc.perIP, tc.total })
			var open []*client
			for i := 0; i < tc.open; i++ {
				open = append(open, dial(t, addr))
			}
			conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 200)
			n, _ := conn.Read(buf)
			if got := string(buf[:n]); !strings.HasPrefix(got, "* BYE [UNAVAILABLE]") {
				t.Fatalf("connection over the cap got %q, want BYE [UNAVAILABLE]", got)
			}
			open[0].conn.Close()
			// The server notices the close when its session ends.
			deadline := time.Now().Add(5 * time.Second)
			for {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, _ := c.Read(buf)
				c.Close()
				if strings.HasPrefix(string(buf[:n]), "* OK") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no room after a connection closed: %q", buf[:n])
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}
