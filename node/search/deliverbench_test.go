package search_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/proto/commandpb"
)

// BenchmarkIndexDeliveries: what indexing costs per message under a
// delivery stream, as CPU time (getrusage: the process's user + system
// time, so another program on the machine changes it little): N messages
// (CONTINUUM_INDEX_BENCH_N, default 2,000; ~150 words of text and a 4 KiB
// base64 attachment each, unique Message-IDs) to 32 users in turn, one
// Raft entry each, one every 2 ms (500/s), then until the index has caught
// up and flushed its memtable. The same stream with the index closed is
// subtracted (applying, pacing, the state database). Run with -benchtime 1x.
func BenchmarkIndexDeliveries(b *testing.B) {
	n := 2000
	if v := os.Getenv("CONTINUUM_INDEX_BENCH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	const users = 32
	r := rand.New(rand.NewPCG(1, 2))
	if benchWords == nil {
		benchWords = benchVocab(rand.New(rand.NewPCG(3, 4)))
	}
	z := rand.NewZipf(r, 1.1, 2, uint64(len(benchWords)-1))
	cmds := make([]*commandpb.Command, n)
	for i := range cmds {
		cmds[i] = deliverCmd(b, benchMessage(r, z, benchWords, i+1, n, 4096, 1000))
		cmds[i].GetDeliver().Recipients = []*commandpb.Recipient{{Email: fmt.Sprintf("u%d@example.test", i%users)}}
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			b.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	run := func(indexed bool) (time.Duration, int64) {
		h := newHarness(b, b.TempDir())
		h.setup()
		for u := range users {
			h.applyBatch(&commandpb.Command{Op: &commandpb.Command_UserAdd{UserAdd: &commandpb.UserAdd{Email: fmt.Sprintf("u%d@example.test", u), PasswordHash: []byte("$argon2id$x")}}})
		}
		if indexed {
			h.waitIndexed()
		} else {
			h.closeIndex()
		}
		start := cpu()
		tick := time.NewTicker(2 * time.Millisecond)
		for _, c := range cmds {
			<-tick.C
			h.applyBatch(c)
		}
		tick.Stop()
		var size int64
		if indexed {
			h.waitIndexed()
			if err := h.index.Flush(); err != nil {
				b.Fatal(err)
			}
			size = h.index.Stats().DiskBytes
		}
		return cpu() - start, size
	}
	for b.Loop() {
		base, _ := run(false)
		with, size := run(true)
		per := (with - base).Seconds() * 1e6 / float64(n)
		b.Logf("%d messages: CPU %.2f s with the index, %.2f s without: indexing %.0f µs/message; index %.1f MB", n, with.Seconds(), base.Seconds(), per, float64(size)/1e6)
		b.ReportMetric(per, "index-cpu-µs/msg")
		b.ReportMetric(float64(size)/float64(n), "index-bytes/msg")
	}
}
