package node_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
)

// BenchmarkReplicatedDeliver: 64 concurrent proposers deliver 4 KiB messages
// through a 3-node cluster over loopback TCP, every entry fsync'd on a
// quorum. Proposers are spread over all three nodes (followers forward).
// Two sub-benchmarks in one run (the machine is shared, so compare them
// side by side): mTLS on every Raft and peer connection (the default) and
// plaintext (insecure-dev).
func BenchmarkReplicatedDeliver(b *testing.B) {
	b.Run("mTLS", func(b *testing.B) { benchDeliver(b, nodetest.Options{}, false) })
	b.Run("plaintext", func(b *testing.B) { benchDeliver(b, nodetest.Options{Insecure: true}, false) })
}

// BenchmarkJournalCost is BenchmarkReplicatedDeliver with the archive
// journal on and off, the two alternating within one run (-count N) so
// that a shared machine's load falls on both alike.
func BenchmarkJournalCost(b *testing.B) {
	b.Run("journal=on", func(b *testing.B) { benchDeliver(b, nodetest.Options{}, false) })
	b.Run("journal=off", func(b *testing.B) { benchDeliver(b, nodetest.Options{NoJournal: true}, false) })
}

// BenchmarkReplicatedDeliverDuringCheck is BenchmarkReplicatedDeliver while
// consistency checks run back to back (each replica digests its whole state
// at consistency-check-rate): the check's cost on delivery.
func BenchmarkReplicatedDeliverDuringCheck(b *testing.B) { benchDeliver(b, nodetest.Options{}, true) }

func benchDeliver(b *testing.B, opts nodetest.Options, checks bool) {
	c := nodetest.Start(b, opts)
	m0 := c.Nodes[0].Mail()
	ctx := context.Background()
	if err := m0.AddDomain(ctx, "example.test", ""); err != nil {
		b.Fatal(err)
	}
	if _, err := m0.AddUser(ctx, "alice@example.test", "correct horse battery", 0); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 4096)
	for i := range body {
		body[i] = 'a' + byte(i%26)
		if i%78 == 77 {
			body[i-1], body[i] = '\r', '\n'
		}
	}
	const proposers = 64
	var next atomic.Int64
	lat := make([][]time.Duration, proposers)
	var failed atomic.Int64
	b.SetBytes(int64(len(body)))
	stop := make(chan struct{})
	var checked, checkErrs atomic.Int64
	var cwg sync.WaitGroup
	if checks {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				idx, _, err := c.Nodes[1].ProposeCheck(ctx, "bench")
				if err != nil {
					// Not what is measured; counted and shown.
					b.Logf("check not proposed: %v", err)
					checkErrs.Add(1)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				// Wait until every replica has its digest of this check.
				for done := 0; done < 3; {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					done = 0
					for _, n := range c.Nodes {
						for _, ch := range n.Info().Checks {
							if ch.Index == idx && (ch.Digest != "" || ch.Error != "") {
								done++
							}
						}
					}
				}
				checked.Add(1)
			}
		}()
	}
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < proposers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := c.Nodes[p%3].Mail()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				msg := append([]byte(fmt.Sprintf("Subject: bench %d\r\nX-Test-Id: %d\r\n\r\n", i, i)), body...)
				t0 := time.Now()
				res, err := svc.Deliver(ctx, mail.Envelope{From: "bench@remote.test", To: []string{"alice@example.test"}}, msg, msg)
				if err != nil || res[0].Err != nil {
					failed.Add(1)
					continue
				}
				lat[p] = append(lat[p], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	close(stop)
	cwg.Wait()
	if checks {
		b.ReportMetric(float64(checked.Load()), "checks")
		b.ReportMetric(float64(checkErrs.Load()), "check-errors")
	}
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d deliveries failed", f)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		b.ReportMetric(float64(len(all))/elapsed.Seconds(), "deliveries/s")
		// CPU of the whole process (three nodes) per delivery: steadier
		// than throughput on a shared machine.
		b.ReportMetric(float64(cpu.Microseconds())/float64(len(all)), "cpu-us/delivery")
		b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// cpuTime is the process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
