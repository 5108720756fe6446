package smtpd_test

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/nodetest"
)

// TestLargeMessages is docs/TESTPLAN.md F16 in process: big incompressible
// messages through a follower, one after another, while 8 senders deliver
// 10 KiB messages at every node. Every big message must be acknowledged
// 250 and stored once on every node, the Raft term must not move (no
// election), and no small sender may get a 4xx. It logs the small
// senders' p99, heap and RSS figures, and FETCH BODY[] of a big message
// (first byte, total, peak heap).
//
// After those, one more through the follower by LMTP and one by IMAP
// APPEND, with the same checks.
//
// make test runs 3 messages of 45 MB in the local profile;
// make test-large runs 20 in each profile (CONTINUUM_LARGE_N,
// CONTINUUM_LARGE_PROFILES, CONTINUUM_LARGE_MB override).
func TestLargeMessages(t *testing.T) {
	n, mb := envInt("CONTINUUM_LARGE_N", 3), envInt("CONTINUUM_LARGE_MB", 45)
	profiles := strings.Fields(strings.ReplaceAll(os.Getenv("CONTINUUM_LARGE_PROFILES"), ",", " "))
	if len(profiles) == 0 {
		profiles = []string{"local"}
	}
	if testing.Short() {
		n = 1
	}
	for _, p := range profiles {
		t.Run(p, func(t *testing.T) { largeMessages(t, p, n, mb<<20) })
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// memSampler records the process's peak heap in use and RSS.
type memSampler struct {
	stop     chan struct{}
	done     chan struct{}
	peakHeap atomic.Uint64
	peakRSS  atomic.Uint64
}

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// procStatus returns a field of /proc/self/status in bytes (VmRSS, VmHWM).
func procStatus(field string) uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func startSampler() *memSampler {
	m := &memSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			if h := heapInUse(); h > m.peakHeap.Load() {
				m.peakHeap.Store(h)
			}
			if r := procStatus("VmRSS"); r > m.peakRSS.Load() {
				m.peakRSS.Store(r)
			}
			select {
			case <-m.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return m
}

func (m *memSampler) Stop() { close(m.stop); <-m.done }

const mib = 1 << 20

// writeBigMessage writes a multipart message with an attachment of size
// bytes of random base64 (incompressible beyond base64's 3/4), generated
// as it is written so the client holds none of it.
func writeBigMessage(w io.Writer, id string, size int, seed uint64) {
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "From: sender@remote.test\r\nTo: big@example.test\r\nSubject: big %s\r\nX-Test-Id: %s\r\n"+
		"Message-Id: <%s@remote.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain\r\n\r\nSee attachment.\r\n--b1\r\nContent-Type: application/octet-stream\r\n"+
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n\r\n", id, id, id)
	r := rand.New(rand.NewPCG(seed, 1))
	raw := make([]byte, 57)
	line := make([]byte, 78)
	for written := 0; written < size; written += 78 {
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		base64.StdEncoding.Encode(line, raw)
		line[76], line[77] = '\r', '\n'
		bw.Write(line)
	}
	bw.WriteString("--b1--\r\n")
	bw.Flush()
}

func largeMessages(t *testing.T, profile string, n, size int) {
	c := nodetest.Start(t, nodetest.Options{Protocols: true, Configure: func(i int, cfg *config.Config) {
		cfg.RaftProfile = profile
		cfg.MaxMessageBytes = 50 << 20
		cfg.ApplyTimeout = config.Duration{Duration: 10 * time.Second}
	}})
	ctx := c.Ctx(60 * time.Second)
	l := c.WaitLeader(10 * time.Second)
	if err := c.Nodes[l].Mail().AddDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"big", "small"} {
		if _, err := c.Nodes[l].Mail().AddUser(ctx, u+"@example.test", "secret-password", 0); err != nil {
			t.Fatal(err)
		}
	}
	c.WaitConverged(20 * time.Second)
	runtime.GC()
	idleHeap, idleRSS := heapInUse(), procStatus("VmRSS")
	l = c.WaitLeader(10 * time.Second)
	term := c.Nodes[l].Raft().Term()
	follower := (l + 1) % len(c.Nodes)

	// 8 small senders, at every node, until the big ones are done.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lat []time.Duration
	var small4xx, smallOK atomic.Int64
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := smallClient(t, c.Cfgs[i%len(c.Cfgs)].SMTPAddr)
			defer cl.Close()
			body := message("", 10<<10)
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("small-%s-%d-%d", profile, i, k)
				start := time.Now()
				code, err := cl.send(id, strings.Replace(body, "X-Test-Id: \r\n", "X-Test-Id: "+id+"\r\n", 1))
				d := time.Since(start)
				if err != nil {
					t.Errorf("small sender %d: %v", i, err)
					return
				}
				if code >= 400 && code < 500 {
					small4xx.Add(1)
					t.Errorf("small sender %d got %d", i, code)
					continue
				}
				smallOK.Add(1)
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		}()
	}

	mem := startSampler()
	big := dial(t, c.Cfgs[follower].SMTPAddr)
	big.expect(220, "")
	big.cmd("EHLO big.test", 250, "")
	var bigTimes []time.Duration
	for k := 0; k < n; k++ {
		id := fmt.Sprintf("big-%s-%d", profile, k)
		start := time.Now()
		big.conn.SetDeadline(start.Add(5 * time.Minute))
		big.cmd("MAIL FROM:<sender@remote.test> SIZE="+strconv.Itoa(size+4096), 250, "")
		big.cmd("RCPT TO:<big@example.test>", 250, "")
		big.cmd("DATA", 354, "")
		writeBigMessage(big.conn, id, size, uint64(k)+1)
		big.send(".\r\n")
		big.expect(250, "")
		bigTimes = append(bigTimes, time.Since(start))
	}
	// One more of the same size through the follower by LMTP, and one by
	// IMAP APPEND: the same chunked path from their own front ends.
	start := time.Now()
	lm := dial(t, c.Cfgs[follower].LMTPAddr)
	lm.conn.SetDeadline(start.Add(5 * time.Minute))
	lm.expect(220, "")
	lm.cmd("LHLO big.test", 250, "")
	lm.cmd("MAIL FROM:<sender@remote.test> SIZE="+strconv.Itoa(size+4096), 250, "")
	lm.cmd("RCPT TO:<big@example.test>", 250, "")
	lm.cmd("DATA", 354, "")
	writeBigMessage(lm.conn, fmt.Sprintf("big-%s-lmtp", profile), size, uint64(n)+1)
	lm.send(".\r\n")
	lm.expect(250, "")
	lm.conn.Close()
	lmtpTime := time.Since(start)
	start = time.Now()
	appendBig(t, c.Cfgs[follower].IMAPAddr, fmt.Sprintf("big-%s-append", profile), size, uint64(n)+2)
	appendTime := time.Since(start)
	close(stop)
	wg.Wait()
	mem.Stop()
	runtime.GC()
	afterHeap, afterRSS := heapInUse(), procStatus("VmRSS")

	if got := c.Nodes[c.WaitLeader(10*time.Second)].Raft().Term(); got != term {
		t.Errorf("term moved from %d to %d during the big messages: an election", term, got)
	}
	c.WaitConverged(60 * time.Second)
	var bigID uint64
	users, _ := c.Nodes[0].Mail().Users()
	for _, u := range users {
		if u.Email == "big@example.test" {
			bigID = u.Id
		}
	}
	for i, nd := range c.Nodes {
		if got := count(t, nd, bigID); got != uint32(n+2) {
			t.Errorf("node %d holds %d big messages, want %d (%d by SMTP, 1 by LMTP, 1 by APPEND)", i, got, n+2, n)
		}
	}
	if small4xx.Load() > 0 {
		t.Errorf("%d small deliveries got a 4xx", small4xx.Load())
	}
	slices.Sort(lat)
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(q*float64(len(lat))))]
	}
	slices.Sort(bigTimes)
	t.Logf("profile %s: %d × %d MB through follower n%d: 250 each, per message min %v median %v max %v; term %d unchanged",
		profile, n, size/mib, follower+1, bigTimes[0].Round(time.Millisecond), bigTimes[len(bigTimes)/2].Round(time.Millisecond),
		bigTimes[len(bigTimes)-1].Round(time.Millisecond), term)
	t.Logf("profile %s: one more of %d MB through n%d by LMTP: 250 after %v; by IMAP APPEND: OK after %v",
		profile, size/mib, follower+1, lmtpTime.Round(time.Millisecond), appendTime.Round(time.Millisecond))
	t.Logf("profile %s: small senders: %d × 10 KiB acked, 0 4xx; latency p50 %v p99 %v max %v", profile, smallOK.Load(),
		p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), p(1).Round(time.Millisecond))
	t.Logf("profile %s: memory of the test process (3 nodes + clients, in process): idle heap %d MB, RSS %d MB; "+
		"peak during: heap %d MB (+%d), RSS %d MB (+%d); after GC: heap %d MB, RSS %d MB",
		profile, idleHeap/mib, idleRSS/mib, mem.peakHeap.Load()/mib, (mem.peakHeap.Load()-min(idleHeap, mem.peakHeap.Load()))/mib,
		mem.peakRSS.Load()/mib, (mem.peakRSS.Load()-min(idleRSS, mem.peakRSS.Load()))/mib, afterHeap/mib, afterRSS/mib)

	fetchBig(t, c.Cfgs[follower].IMAPAddr, size)
}

// smallSender is one SMTP session that sends message after message.
type smallSender struct {
	conn net.Conn
	r    *bufio.Reader
}

func smallClient(t *testing.T, addr string) *smallSender {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &smallSender{conn: conn, r: bufio.NewReader(conn)}
	if code, err := s.reply(); err != nil || code != 220 {
		t.Fatalf("greeting %d %v", code, err)
	}
	fmt.Fprintf(conn, "EHLO small.test\r\n")
	if code, err := s.reply(); err != nil || code != 250 {
		t.Fatalf("EHLO %d %v", code, err)
	}
	return s
}

func (s *smallSender) Close() { s.conn.Close() }

func (s *smallSender) reply() (int, error) {
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return 0, err
		}
		if len(line) >= 4 && line[3] == '-' {
			continue
		}
		return strconv.Atoi(line[:3])
	}
}

// send delivers one message (pipelined envelope) and returns the reply
// code of DATA's end, or of the first command that failed.
func (s *smallSender) send(id, msg string) (int, error) {
	fmt.Fprintf(s.conn, "MAIL FROM:<small@remote.test>\r\nRCPT TO:<small@example.test>\r\nDATA\r\n")
	for _, want := range []int{250, 250, 354} {
		code, err := s.reply()
		if err != nil {
			return 0, err
		}
		if code != want {
			fmt.Fprintf(s.conn, "RSET\r\n")
			s.reply()
			return code, nil
		}
	}
	fmt.Fprintf(s.conn, "%s.\r\n", msg)
	return s.reply()
}

// bigIMAP is a raw IMAP connection logged in as the big user: the tests
// below read literals as bytes, which a client library would buffer.
type bigIMAP struct {
	t    *testing.T
	what string
	conn net.Conn
	r    *bufio.Reader
}

// loginBig dials addr, reads the greeting and logs in as the big user.
func loginBig(t *testing.T, addr, what string) *bigIMAP {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Minute))
	c := &bigIMAP{t: t, what: what, conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	c.line()
	fmt.Fprintf(conn, "a LOGIN big@example.test secret-password\r\n")
	if s := c.until("a"); !strings.HasPrefix(s, "a OK") {
		t.Fatalf("%s: login: %q", what, s)
	}
	return c
}

func (c *bigIMAP) line() string {
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("%s: %v", c.what, err)
	}
	return s
}

// until reads lines up to the tagged reply to tag and returns it.
func (c *bigIMAP) until(tag string) string {
	for {
		if s := c.line(); strings.HasPrefix(s, tag+" ") {
			return s
		}
	}
}

// fetchBig fetches BODY.PEEK[] of the first big message over IMAP and
// logs the time to the literal's first byte, the total time and the peak
// heap while it streams.
func fetchBig(t *testing.T, addr string, size int) {
	c := loginBig(t, addr, "FETCH")
	defer c.conn.Close()
	fmt.Fprintf(c.conn, "b SELECT INBOX\r\n")
	c.until("b")
	runtime.GC()
	before := heapInUse()
	mem := startSampler()
	start := time.Now()
	fmt.Fprintf(c.conn, "c FETCH 1 BODY.PEEK[]\r\n")
	head := c.line()
	i := strings.LastIndexByte(head, '{')
	if i < 0 {
		t.Fatalf("FETCH: %q", head)
	}
	n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(head[i+1:]), "}"))
	if _, err := c.r.Peek(1); err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	got, err := io.Copy(io.Discard, io.LimitReader(c.r, int64(n)))
	if err != nil || got != int64(n) || n < size {
		t.Fatalf("FETCH literal of %d bytes (announced %d, message ≥ %d): %v", got, n, size, err)
	}
	if s := c.until("c"); !strings.HasPrefix(s, "c OK") {
		t.Fatalf("FETCH: %q", s)
	}
	total := time.Since(start)
	mem.Stop()
	t.Logf("FETCH BODY.PEEK[] of a %d MB message: first byte %v, all %v (%.0f MB/s); peak heap +%d MB over %d MB before",
		n/mib, first.Round(time.Millisecond), total.Round(time.Millisecond), float64(n)/mib/total.Seconds(),
		(mem.peakHeap.Load()-min(before, mem.peakHeap.Load()))/mib, before/mib)
}

// appendBig APPENDs a big message (writeBigMessage's, as one synchronising
// literal) to the big user's INBOX over IMAP and fails the test unless the
// server answers OK with an APPENDUID.
func appendBig(t *testing.T, addr, id string, size int, seed uint64) {
	var n countWriter
	writeBigMessage(&n, id, size, seed)
	c := loginBig(t, addr, "APPEND "+id)
	defer c.conn.Close()
	fmt.Fprintf(c.conn, "b APPEND INBOX {%d}\r\n", int64(n))
	if s := c.line(); !strings.HasPrefix(s, "+") {
		t.Fatalf("APPEND of %d bytes: %q, want a continuation", int64(n), s)
	}
	writeBigMessage(c.conn, id, size, seed)
	fmt.Fprintf(c.conn, "\r\n")
	if s := c.until("b"); !strings.HasPrefix(s, "b OK") || !strings.Contains(s, "APPENDUID") {
		t.Fatalf("APPEND of %d bytes: %q, want OK [APPENDUID ...]", int64(n), s)
	}
}

// countWriter counts the bytes written to it.
type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
