package smtpd_test

import (
	"bufio"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/nodetest"
)

// BenchmarkSMTP: a 3-node cluster on loopback (fsync on), 32 concurrent SMTP
// sessions spread over the three nodes, 10 KiB messages to one recipient,
// each acknowledged with 250 after commit. Reports msgs/s and the accept
// latency (MAIL sent → 250 after DATA) at p50 and p99.
func BenchmarkSMTP(b *testing.B) { benchSMTP(b, 0) }

// BenchmarkSMTPPaced offers 1,000 msgs/s (half the 2,000 msgs/s target) and
// reports the accept latency at that rate.
func BenchmarkSMTPPaced(b *testing.B) { benchSMTP(b, 1000) }

// benchSMTP runs the benchmark; rate > 0 paces the sessions to that many
// messages per second in all.
func benchSMTP(b *testing.B, rate int) {
	const sessions = 32
	c := nodetest.Start(b, nodetest.Options{Protocols: true})
	ctx := c.Ctx(30 * time.Second)
	if err := c.Nodes[0].Mail().AddDomain(ctx, "example.test", ""); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Nodes[0].Mail().AddUser(ctx, "bench@example.test", "secret-password", 0); err != nil {
		b.Fatal(err)
	}
	c.WaitConverged(10 * time.Second)

	type sess struct {
		conn net.Conn
		r    *bufio.Reader
	}
	expect := func(s *sess, want int) error {
		for {
			line, err := s.r.ReadString('\n')
			if err != nil {
				return err
			}
			if len(line) < 4 || line[3] == '-' {
				continue
			}
			if !strings.HasPrefix(line, fmt.Sprint(want)) {
				return fmt.Errorf("got %q, want %d", line, want)
			}
			return nil
		}
	}
	var ss []*sess
	for i := 0; i < sessions; i++ {
		conn, err := net.Dial("tcp", c.Cfgs[i%3].SMTPAddr)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		s := &sess{conn, bufio.NewReader(conn)}
		if err := expect(s, 220); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(conn, "EHLO bench%d.test\r\n", i)
		if err := expect(s, 250); err != nil {
			b.Fatal(err)
		}
		ss = append(ss, s)
	}
	body := strings.Repeat(strings.Repeat("b", 78)+"\r\n", 10<<10/80)

	var next atomic.Int64
	var tickets chan struct{}
	if rate > 0 {
		tickets = make(chan struct{}, sessions)
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(time.Second / time.Duration(rate))
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					select {
					case tickets <- struct{}{}:
					default: // every session busy: the offered load is not met
					}
				}
			}
		}()
	}
	lat := make([][]time.Duration, sessions)
	var wg sync.WaitGroup
	errs := make(chan error, sessions)
	b.ResetTimer()
	start := time.Now()
	for i, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := next.Add(1)
				if n > int64(b.N) {
					return
				}
				if tickets != nil {
					<-tickets
				}
				t0 := time.Now()
				fmt.Fprintf(s.conn, "MAIL FROM:<s%d@remote.test>\r\nRCPT TO:<bench@example.test>\r\nDATA\r\n", i)
				for _, want := range []int{250, 250, 354} {
					if err := expect(s, want); err != nil {
						errs <- err
						return
					}
				}
				fmt.Fprintf(s.conn, "Subject: bench\r\nX-Test-Id: %d\r\n\r\n%s.\r\n", n, body)
				if err := expect(s, 250); err != nil {
					errs <- err
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(0, "ns/op")
}
