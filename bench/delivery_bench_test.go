package bench

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/nodetest"
)

// BenchmarkLMTPDelivery delivers b.N realistic 10 KiB messages (text and a
// random base64 attachment, unique Message-IDs) over LMTP, 32 sessions
// spread over the three nodes of an in-process cluster (mTLS, fsync on),
// one recipient per session. All three nodes and the client run in this
// process, so -cpuprofile shows the whole delivery path:
//
//	go test -run '^$' -bench BenchmarkLMTPDelivery -benchtime 3000x -cpuprofile cpu.out ./bench/
func BenchmarkLMTPDelivery(b *testing.B) {
	for _, body := range []string{BodyRandom, BodyText} {
		b.Run("body="+body, func(b *testing.B) { benchLMTP(b, body) })
	}
}

func benchLMTP(b *testing.B, body string) {
	c := nodetest.Start(b, nodetest.Options{Protocols: true})
	m := c.Nodes[0].Mail()
	ctx := c.Ctx(10 * time.Minute)
	if err := m.AddDomain(ctx, "example.test", ""); err != nil {
		b.Fatal(err)
	}
	const sessions = 32
	for i := 1; i <= sessions; i++ {
		if _, err := m.AddUser(ctx, fmt.Sprintf("bench%d@example.test", i), "bench password 1", 0); err != nil {
			b.Fatal(err)
		}
	}
	var addrs []string
	for _, cfg := range c.Cfgs {
		addrs = append(addrs, cfg.LMTPAddr)
	}
	cfg := Config{Protocol: LMTP, Server: strings.Join(addrs, ","), Sessions: sessions, Users: sessions, Count: b.N, Body: body}
	// Warm up: connections, caches, the first Raft batches.
	if _, err := Run(context.Background(), Config{Protocol: LMTP, Server: cfg.Server, Sessions: sessions, Users: sessions, Count: sessions, Body: body}); err != nil {
		b.Fatal(err)
	}
	cpu0 := cpuTime()
	b.ResetTimer()
	r, err := Run(context.Background(), cfg)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if r.Ops == 0 {
		b.Fatalf("nothing delivered: %v", r.ErrorList)
	}
	// On a loaded shared machine a leader change can turn deliveries away
	// (451, retried by real senders): counted, not fatal.
	b.ReportMetric(float64(r.Errors), "errors")
	b.ReportMetric(r.PerSec, "msgs/s")
	b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
	// CPU of this process (three nodes and the client) per message.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(r.Ops), "cpu-µs/msg")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
