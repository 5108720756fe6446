package clustertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/continuum-mail/continuum/proto/adminpb"
)

// largeBoundBytes is the memory bound the large-message scenario asserts:
// every node's peak resident set (VmHWM, which counts every page the
// process ever had resident) stays under its idle RSS plus this.
const largeBoundBytes = 256 << 20

const mib = 1 << 20

// bigMessage is a multipart message with an attachment of about size
// bytes of random base64 (incompressible beyond base64's 3/4).
func bigMessage(id string, size int, seed uint64) []byte {
	var b bytes.Buffer
	b.Grow(size + 1024)
	fmt.Fprintf(&b, "From: sender@remote.test\r\nTo: big@example.test\r\nSubject: big %s\r\nMessage-Id: <%s@remote.test>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"+
		"--b1\r\nContent-Type: text/plain\r\n\r\nSee attachment %s.\r\n--b1\r\nContent-Type: application/octet-stream\r\n"+
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"big.bin\"\r\n\r\n", id, id, id)
	r := rand.New(rand.NewPCG(seed, 1))
	raw := make([]byte, 57)
	line := make([]byte, 78)
	for b.Len() < size {
		for i := range raw {
			raw[i] = byte(r.Uint32())
		}
		base64.StdEncoding.Encode(line, raw)
		line[76], line[77] = '\r', '\n'
		b.Write(line)
	}
	b.WriteString("--b1--\r\n")
	return b.Bytes()
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestLargeMessagesProcesses (issue 19) with real `continuum serve`
// processes: N messages of MB MB each (incompressible) through a follower,
// one after another, while 8 senders deliver 10 KiB messages to every node.
// Asserted: every big message gets 250, no small sender ever gets a 4xx
// (or a failed connection), the Raft term is unchanged on every node,
// each big message is stored exactly once on every node (same SHA-256),
// the replicas converge, and every node's peak RSS (VmHWM from
// /proc/PID/status) stays below its idle RSS + 256 MB. Reported: idle,
// peak and after RSS of each node, per-message times, the small senders'
// p50/p99. Default N=2, MB=25 (make test); CONTINUUM_LARGE_FULL=1 is the
// issue's 20 × 45 MB (make test-large); CONTINUUM_LARGE_N, CONTINUUM_LARGE_MB
// and CONTINUUM_LARGE_PROFILE (local, lan, wan; default lan) override.
// Then FETCH BODY.PEEK[] of the last big message from the third node: its
// SHA-256 is the stored one, the node's RSS rise under the same bound.
func TestLargeMessagesProcesses(t *testing.T) {
	n, mb := 2, 25
	if os.Getenv("CONTINUUM_LARGE_FULL") != "" {
		n, mb = 20, 45
	}
	n, mb = envInt("CONTINUUM_LARGE_N", n), envInt("CONTINUUM_LARGE_MB", mb)
	// lan by default: in "local" (200 ms leader lease) the leader stepped
	// down in 2 of 4 runs on the shared 2-core machine at load 16-32 (see
	// docs/notes/large-messages.md); the profile is the variable to study,
	// not a tolerance of the assertions.
	profile := os.Getenv("CONTINUUM_LARGE_PROFILE")
	if profile == "" {
		profile = "lan"
	}
	c := Start(t, Options{Users: []string{"big", "small"}, IMAP: true, ExtraArgs: []string{"--raft-profile", profile}})
	l := c.WaitLeader(30 * time.Second)
	f := (l + 1) % len(c.Nodes)
	terms := func() []uint64 {
		var out []uint64
		for i := range c.Nodes {
			in, err := c.Info(i)
			if err != nil {
				t.Fatalf("info of %s: %v", c.Nodes[i].ID, err)
			}
			out = append(out, in.Term)
		}
		return out
	}
	termsBefore := terms()

	// Idle: after start-up and setup, before any load.
	time.Sleep(2 * time.Second)
	idle := make([]Memory, len(c.Nodes))
	for i := range c.Nodes {
		m, err := c.Mem(i)
		if err != nil {
			t.Fatal(err)
		}
		idle[i] = m
	}
	// Sample every node's RSS until the end. At each new peak (16 MB
	// steps) read the node's Go memory from /metrics, and with
	// CONTINUUM_LARGE_PPROF=DIR also save its heap profile there: the
	// attribution of the peak (Go heap in use, freed but not returned,
	// and the rest: Pebble's caches and memtables, cgo-allocated).
	peak := make([]int64, len(c.Nodes))
	peakGo := make([]GoMemory, len(c.Nodes))
	peakGoRSS := make([]int64, len(c.Nodes))
	pprofDir := os.Getenv("CONTINUUM_LARGE_PPROF")
	var peakMu sync.Mutex
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			for i := range c.Nodes {
				if m, err := c.Mem(i); err == nil {
					peakMu.Lock()
					peak[i] = max(peak[i], m.RSS)
					again := m.RSS > peakGoRSS[i]+16*mib
					peakMu.Unlock()
					if again {
						if g, err := c.GoMem(i); err == nil {
							peakMu.Lock()
							peakGo[i], peakGoRSS[i] = g, m.RSS
							peakMu.Unlock()
						}
						if pprofDir != "" {
							if b, err := c.Loopback(i, "/debug/pprof/heap"); err == nil {
								os.WriteFile(filepath.Join(pprofDir, fmt.Sprintf("heap-%s-%03dMB.pb.gz", c.Nodes[i].ID, m.RSS>>20)), b, 0o644)
							} else {
								t.Logf("heap profile: %v", err)
							}
						}
					}
				}
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	// 8 small senders, to every node in turn, until the big ones are done.
	var smallMu sync.Mutex
	var smallLat []time.Duration
	var smallFail []string
	var smallWG sync.WaitGroup
	var stopSmall atomic.Bool
	var small []byte
	for len(small) < 10<<10 {
		small = append(small, strings.Repeat("abcdefghijklm", 6)+"\r\n"...)
	}
	for s := range 8 {
		smallWG.Add(1)
		go func() {
			defer smallWG.Done()
			for k := 0; !stopSmall.Load(); k++ {
				node := (s + k) % len(c.Nodes)
				msg := fmt.Appendf(nil, "From: s%d@remote.test\r\nTo: %s\r\nSubject: small %d-%d\r\nMessage-Id: <small-%d-%d@remote.test>\r\n\r\n%s\r\n",
					s, c.Users[1], s, k, s, k, small)
				start := time.Now()
				code, text, err := c.Send(node, fmt.Sprintf("s%d@remote.test", s), []string{c.Users[1]}, msg, 30*time.Second, 60*time.Second)
				lat := time.Since(start)
				smallMu.Lock()
				if err != nil || code != 250 {
					smallFail = append(smallFail, fmt.Sprintf("via %s: %d %s %v", c.Nodes[node].ID, code, text, err))
				} else {
					smallLat = append(smallLat, lat)
				}
				smallMu.Unlock()
			}
		}()
	}

	// The big ones, one after another, through the follower.
	seed := uint64(time.Now().UnixNano())
	var bigTimes []time.Duration
	var bigFail []string
	ids := make([]string, n)
	sizes := make([]int, n)
	for k := range n {
		ids[k] = fmt.Sprintf("big-%x-%d", seed, k)
		msg := bigMessage(ids[k], mb*mib, seed+uint64(k))
		sizes[k] = len(msg)
		var took time.Duration
		for attempt := 1; ; attempt++ {
			start := time.Now()
			code, text, err := c.Send(f, "sender@remote.test", []string{c.Users[0]}, msg, 30*time.Second, 5*time.Minute)
			took = time.Since(start)
			if err == nil && code == 250 {
				break
			}
			// Retried as an MTA would (so the figures are still taken),
			// and a failure of the test.
			bigFail = append(bigFail, fmt.Sprintf("big message %d attempt %d (%d bytes) through follower %s: %d %s %v after %v",
				k, attempt, len(msg), c.Nodes[f].ID, code, text, err, took.Round(time.Millisecond)))
			t.Log(bigFail[len(bigFail)-1])
			if attempt == 3 {
				stopSmall.Store(true)
				t.Fatalf("big message %d: 3 attempts failed", k)
			}
		}
		bigTimes = append(bigTimes, took)
		t.Logf("big message %d: %.1f MB through %s: 250 after %v", k, float64(len(msg))/1e6, c.Nodes[f].ID, took.Round(time.Millisecond))
	}
	stopSmall.Store(true)
	smallWG.Wait()
	c.WaitConverged(2 * time.Minute)

	// After: the load is over and the replicas agree; give the runtime a
	// few seconds to return freed memory.
	time.Sleep(5 * time.Second)
	close(stopSampling)
	<-sampled
	termsAfter := terms()
	if !slices.Equal(termsBefore, termsAfter) {
		t.Errorf("Raft term changed during the transfers: %v → %v (an election)", termsBefore, termsAfter)
	}
	if len(bigFail) > 0 {
		t.Errorf("%d big-message attempts failed (retried), first: %s", len(bigFail), bigFail[0])
	}
	if len(smallFail) > 0 {
		t.Errorf("%d small deliveries failed (of %d), first: %s", len(smallFail), len(smallFail)+len(smallLat), smallFail[0])
	}

	// Each big message stored exactly once on every node, the same bytes.
	var lastUID uint32
	var lastSHA string
	for k, id := range ids {
		var shas []string
		for i := range c.Nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			res, err := c.Admin(i).ArchiveSearch(ctx, &adminpb.ArchiveSearchRequest{Query: id + "@remote.test", User: c.Users[0]})
			cancel()
			if err != nil {
				t.Fatalf("archive search for %s on %s: %v", id, c.Nodes[i].ID, err)
			}
			if len(res.Hits) != 1 {
				t.Fatalf("big message %d on %s: %d copies in %s's mailboxes, want 1", k, c.Nodes[i].ID, len(res.Hits), c.Users[0])
			}
			h := res.Hits[0]
			if h.Size < uint64(sizes[k]) {
				t.Errorf("big message %d on %s: %d bytes stored, %d sent", k, c.Nodes[i].ID, h.Size, sizes[k])
			}
			shas = append(shas, h.Sha256)
			lastUID, lastSHA = h.Uid, h.Sha256
		}
		if len(slices.Compact(slices.Clone(shas))) != 1 {
			t.Errorf("big message %d: different SHA-256 on the nodes: %v", k, shas)
		}
	}

	third := 3 - l - f
	if len(c.Nodes) == 3 {
		fetchBig(t, c, third, lastUID, lastSHA)
	}

	slices.Sort(bigTimes)
	slices.Sort(smallLat)
	pct := func(p float64) time.Duration {
		if len(smallLat) == 0 {
			return 0
		}
		return smallLat[min(len(smallLat)-1, int(p*float64(len(smallLat))))]
	}
	t.Logf("profile %s: %d × %d MB through follower %s: 250 each; per message min %v median %v max %v; terms %v before and after",
		profile, n, mb, c.Nodes[f].ID, bigTimes[0].Round(time.Millisecond), bigTimes[len(bigTimes)/2].Round(time.Millisecond),
		bigTimes[len(bigTimes)-1].Round(time.Millisecond), termsBefore)
	t.Logf("small senders (8 × 10 KiB, all nodes): %d acked, %d failed; latency p50 %v p99 %v max %v",
		len(smallLat), len(smallFail), pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond), pct(1).Round(time.Millisecond))
	for i := range c.Nodes {
		after, err := c.Mem(i)
		if err != nil {
			t.Fatal(err)
		}
		role := "follower"
		if i == l {
			role = "leader"
		}
		if i == f {
			role += ", the big messages' entry point"
		}
		t.Logf("RSS of %s (%s): idle %.0f MB; peak sampled %.0f MB (+%.0f), VmHWM %.0f MB (+%.0f); after %.0f MB (+%.0f)",
			c.Nodes[i].ID, role, mbOf(idle[i].RSS), mbOf(peak[i]), mbOf(peak[i]-idle[i].RSS), mbOf(after.HWM), mbOf(after.HWM-idle[i].RSS),
			mbOf(after.RSS), mbOf(after.RSS-idle[i].RSS))
		g := peakGo[i]
		t.Logf("  %s at its last sampled peak (RSS %.0f MB): Go heap in use %.0f MB, freed not returned %.0f MB, Go runtime other %.0f MB; not Go (RSS − Go's mapped − released) %.0f MB, of which Pebble reports block caches %.0f MB, memtables %.0f MB",
			c.Nodes[i].ID, mbOf(peakGoRSS[i]), mbOf(g.HeapInuse), mbOf(g.HeapIdle-g.HeapReleased), mbOf(g.Sys-g.HeapInuse-g.HeapIdle),
			mbOf(peakGoRSS[i]-(g.Sys-g.HeapReleased)), mbOf(g.PebbleCache), mbOf(g.PebbleMemtables))
		if after.HWM-idle[i].RSS >= largeBoundBytes {
			t.Errorf("%s: peak RSS (VmHWM) %.0f MB is %.0f MB above idle (%.0f MB): bound %d MB", c.Nodes[i].ID,
				mbOf(after.HWM), mbOf(after.HWM-idle[i].RSS), mbOf(idle[i].RSS), largeBoundBytes>>20)
		}
		if after.RSS-idle[i].RSS >= largeBoundBytes {
			t.Errorf("%s: RSS after %.0f MB is %.0f MB above idle: bound %d MB", c.Nodes[i].ID, mbOf(after.RSS), mbOf(after.RSS-idle[i].RSS), largeBoundBytes>>20)
		}
	}
}

// fetchBig fetches BODY.PEEK[] of the big user's INBOX message uid from
// node i over IMAP, reading the literal as it arrives: the time to its
// first byte and to its end, its SHA-256, and node i's RSS before and its
// peak (sampled every 20 ms) during the fetch.
func fetchBig(t *testing.T, c *Cluster, i int, uid uint32, wantSHA string) {
	cl, err := c.DialIMAP(i, c.Users[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	before, err := c.Mem(i)
	if err != nil {
		t.Fatal(err)
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if m, err := c.Mem(i); err == nil && m.RSS > peak.Load() {
				peak.Store(m.RSS)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	sec := &imap.FetchItemBodySection{Peek: true}
	start := time.Now()
	cmd := cl.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}})
	var first time.Duration
	var n int64
	h := sha256.New()
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			if b, ok := item.(imapclient.FetchItemDataBodySection); ok {
				buf := make([]byte, 64<<10)
				for {
					k, err := b.Literal.Read(buf)
					if k > 0 && n == 0 {
						first = time.Since(start)
					}
					n += int64(k)
					h.Write(buf[:k])
					if err == io.EOF {
						break
					}
					if err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	all := time.Since(start)
	close(stop)
	<-sampled
	if n == 0 {
		t.Fatal("FETCH BODY[]: no literal")
	}
	rise := peak.Load() - before.RSS
	t.Logf("FETCH BODY.PEEK[] of a %.1f MB message from %s: first byte after %v, all after %v (%.0f MB/s); RSS before %.0f MB, peak during %.0f MB (+%.0f); sha256 %x",
		float64(n)/1e6, c.Nodes[i].ID, first.Round(time.Millisecond), all.Round(time.Millisecond), float64(n)/1e6/all.Seconds(),
		mbOf(before.RSS), mbOf(peak.Load()), mbOf(rise), h.Sum(nil)[:8])
	if got := fmt.Sprintf("%x", h.Sum(nil)); got != wantSHA {
		t.Errorf("FETCH BODY[]: SHA-256 %s, stored %s", got, wantSHA)
	}
	if rise >= largeBoundBytes {
		t.Errorf("FETCH of a big message raised %s's RSS by %.0f MB: bound %d MB", c.Nodes[i].ID, mbOf(rise), largeBoundBytes>>20)
	}
}

func mbOf(b int64) float64 { return float64(b) / float64(mib) }
