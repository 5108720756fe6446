package imapd_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkLargeMailbox: SELECT and UID FETCH 1:* (FLAGS) on a mailbox of
// 100,000 messages (CONTINUUM_BENCH_MESSAGES overrides), built by
// delivering concurrently through all three nodes.
func BenchmarkLargeMailbox(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CONTINUUM_BENCH_MESSAGES")); err == nil {
		n = v
	}
	e := newEnv(b, nil)
	start := time.Now()
	deliverMany(b, e, alice, n)
	e.waitAll()
	b.Logf("built a %d-message mailbox in %v", n, time.Since(start))
	c := login(b, e.addrs[1], alice)

	b.Run("select", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			u := c.ok("SELECT INBOX")
			if find(u, fmt.Sprintf("* %d EXISTS", n)) == "" {
				b.Fatalf("SELECT = %q", u)
			}
		}
	})
	b.Run("uid-fetch-flags", func(b *testing.B) {
		c.ok("SELECT INBOX")
		for i := 0; i < b.N; i++ {
			if u := c.ok("UID FETCH 1:* (FLAGS)"); len(u) != n {
				b.Fatalf("%d FETCH lines", len(u))
			}
		}
	})
}

// BenchmarkFetchBody50K: FETCH BODY[] of a 50 KiB message; reports p99.
func BenchmarkFetchBody50K(b *testing.B) {
	e := newEnv(b, nil)
	body := strings.Repeat(strings.Repeat("x", 76)+"\r\n", 50<<10/78)
	msg := testMessage("big", "50k", body)
	e.deliver(0, alice, msg)
	e.waitAll()
	c := login(b, e.addrs[1], alice)
	c.ok("SELECT INBOX")
	c.ok("FETCH 1 BODY[]") // sets \Seen once; later fetches are reads only
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		u := c.ok("FETCH 1 BODY[]")
		lat = append(lat, time.Since(t0))
		if len(u) != 1 || len(u[0]) < len(msg) {
			b.Fatalf("FETCH = %d lines", len(u))
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
}

// BenchmarkIdleConnections: memory per idle IMAP connection (logged in,
// INBOX selected, in IDLE) on one node, 2,000 connections. Client and
// server share the process, so the figure includes the client's sockets:
// an upper bound for the server's cost.
func BenchmarkIdleConnections(b *testing.B) {
	const conns = 2000
	e := newEnv(b, nil)
	e.deliver(0, alice, testMessage("idle", "idle", "x"))
	e.waitAll()
	for i := 0; i < b.N; i++ {
		runtime.GC()
		rss0 := rssBytes()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		clients := make([]*client, 0, conns)
		for j := 0; j < conns; j++ {
			c := login(b, e.addrs[0], alice)
			c.ok("SELECT INBOX")
			c.send("i IDLE\r\n")
			if l := c.line(); !strings.HasPrefix(l, "+") {
				b.Fatalf("IDLE = %q", l)
			}
			clients = append(clients, c)
		}
		runtime.GC()
		rss1 := rssBytes()
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		b.ReportMetric(float64(rss1-rss0)/conns/1024, "RSS-KiB/conn")
		b.ReportMetric(float64((ms1.HeapInuse+ms1.StackInuse)-(ms0.HeapInuse+ms0.StackInuse))/conns/1024, "heap+stack-KiB/conn")
		// Every one of them still hears a delivery.
		e.deliver(1, alice, testMessage(fmt.Sprintf("wake%d", i), "wake", "x"))
		for _, c := range clients {
			if l := c.line(); !strings.HasSuffix(l, "EXISTS") {
				b.Fatalf("idler got %q", l)
			}
			c.conn.Close()
		}
	}
}

func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range bytes.Split(data, []byte("\n")) {
		if f := bytes.Fields(l); len(f) >= 2 && string(f[0]) == "VmRSS:" {
			kb, _ := strconv.ParseInt(string(f[1]), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkImaplibLatency runs Python's imaplib (100 APPENDs of 10 KiB, then
// 100 STOREs, one command at a time) against the leader and a follower and
// reports the p50 of each. One script run per b.N iteration; run with
// -benchtime=1x.
func BenchmarkImaplibLatency(b *testing.B) {
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("python3 not installed")
	}
	e := newEnv(b, nil)
	for _, name := range []string{"leader", "follower"} {
		b.Run(name, func(b *testing.B) {
			leader := e.c.WaitLeader(10 * time.Second)
			node := leader
			if name == "follower" {
				node = (leader + 1) % len(e.addrs)
			}
			defer func() {
				if l := e.c.WaitLeader(10 * time.Second); l != leader {
					b.Logf("leadership moved from node %d to %d during the run: figures mix roles", leader+1, l+1)
				}
			}()
			host, port, _ := net.SplitHostPort(e.addrs[node])
			var app, sto []float64
			for i := 0; i < b.N; i++ {
				// The script `continuum bench compare` runs too (package bench).
				out, err := exec.Command(py, "../../bench/imaplib_latency.py", host, port, alice, password, "100", "10240", "INBOX").Output()
				if err != nil {
					b.Fatalf("imaplib: %v\n%s", err, out)
				}
				var r struct {
					Append []float64 `json:"append_ms"`
					Store  []float64 `json:"store_ms"`
				}
				if err := json.Unmarshal(out, &r); err != nil || len(r.Append) == 0 || len(r.Store) == 0 {
					b.Fatalf("output %q: %v", out, err)
				}
				a, s := median(r.Append), median(r.Store)
				app, sto = append(app, a), append(sto, s)
			}
			sort.Float64s(app)
			sort.Float64s(sto)
			b.ReportMetric(app[len(app)/2], "append-p50-ms")
			b.ReportMetric(sto[len(sto)/2], "store-p50-ms")
		})
	}
}

func median(v []float64) float64 {
	v = append([]float64(nil), v...)
	sort.Float64s(v)
	return v[len(v)/2]
}
