package clustertest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

var searchVocab = strings.Fields(`meeting budget quarterly Straße STRASSE café résumé ÉCOLE
	σίσυφος 日本語 Привет password passport alpha gamma archive ﬁnance Ångström report invoice`)

func searchMessage(r *rand.Rand, n int) []byte {
	w := func(k int) string {
		ws := make([]string, k)
		for i := range ws {
			ws[i] = searchVocab[r.IntN(len(searchVocab))]
		}
		return strings.Join(ws, " ")
	}
	body := w(40)
	if n%50 == 0 {
		body += " zanzibarite"
	}
	return []byte(fmt.Sprintf("From: s@remote.test\r\nTo: someone@example.test\r\nSubject: =?utf-8?q?%s?=\r\nMessage-ID: <%d.%x@remote.test>\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		strings.ReplaceAll(w(2), " ", "_"), n, r.Uint64(), body))
}

// TestSearchIndexKill9 (issue 14): a node's full-text index survives
// kill -9 of the real process mid-indexing, twice (while following a burst
// of deliveries, and in the middle of a rebuild); after the restart,
// `archive search` through the index answers exactly as the scan on that
// node; then `continuum reindex --wait` (the CLI binary over the TLS admin
// channel) on the live node, with mail arriving, leaves it consistent too.
func TestSearchIndexKill9(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 14))
	c := Start(t, Options{Users: []string{"alice", "bob", "carol"}})
	l := c.WaitLeader(30 * time.Second)
	f := (l + 1) % len(c.Nodes)
	var mu sync.Mutex
	n := 0
	deliver := func(k int, via int) {
		var wg sync.WaitGroup
		next := make(chan int)
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range next {
					mu.Lock()
					n++
					msg := searchMessage(r, n)
					rcpt := c.Users[r.IntN(len(c.Users))]
					mu.Unlock()
					for attempt := 0; ; attempt++ {
						code, text, err := c.Send(via, "s@remote.test", []string{rcpt}, msg, 10*time.Second, 30*time.Second)
						if err == nil && code == 250 {
							break
						}
						if attempt == 5 {
							t.Errorf("deliver via %s: %d %s %v", c.Nodes[via].ID, code, text, err)
							return
						}
						time.Sleep(200 * time.Millisecond)
					}
				}
			}()
		}
		for i := range k {
			next <- i
		}
		close(next)
		wg.Wait()
	}
	metric := func(i int, name string) float64 {
		v, err := c.Metric(i, name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	search := func(i int, q string, scan bool) *adminpb.ArchiveSearchResponse {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		for attempt := 0; ; attempt++ {
			res, err := c.Admin(i).ArchiveSearch(ctx, &adminpb.ArchiveSearchRequest{Query: q, Scan: scan})
			if err == nil {
				return res
			}
			if attempt == 20 {
				t.Fatalf("archive search %q on %s: %v", q, c.Nodes[i].ID, err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	compare := func(what string) {
		t.Helper()
		c.Eventually(60*time.Second, what+": index caught up", func() (bool, string) {
			lag, err := c.Metric(f, "continuum_search_index_lag")
			return err == nil && lag == 0, fmt.Sprintf("lag %v, err %v", lag, err)
		})
		checkedScan, checkedIndex := uint64(0), uint64(0)
		queries := []string{"zanzibarite", "ZANZIBAR", "strasse", "port", "pass", "日本", "Ångström"}
		for range 20 {
			w := []rune(searchVocab[r.IntN(len(searchVocab))])
			i := r.IntN(len(w))
			queries = append(queries, string(w[i:i+1+r.IntN(len(w)-i)]))
		}
		for _, q := range queries {
			want, got := search(f, q, true), search(f, q, false)
			key := func(h *adminpb.ArchiveHit) string { return fmt.Sprintf("%s/%s/%d", h.User, h.Mailbox, h.Uid) }
			var ws, gs []string
			for _, h := range want.Hits {
				ws = append(ws, key(h))
			}
			for _, h := range got.Hits {
				gs = append(gs, key(h))
			}
			if !slices.Equal(ws, gs) || want.Truncated != got.Truncated {
				t.Fatalf("%s: %q on %s: scan %d hits %v, index %d hits %v", what, q, c.Nodes[f].ID, len(ws), ws, len(gs), gs)
			}
			checkedScan += want.Scanned
			checkedIndex += got.Scanned
		}
		// The index must have been used: the whitespace-free queries are
		// answered from its token postings without reading a message.
		if checkedIndex*2 >= checkedScan {
			t.Fatalf("%s: the index path checked %d messages, the scan %d: index not used", what, checkedIndex, checkedScan)
		}
		t.Logf("%s: %d queries identical; messages checked: scan %d, index %d", what, len(queries), checkedScan, checkedIndex)
	}

	deliver(150, l)
	c.WaitConverged(60 * time.Second)
	compare("built")

	// 1. kill -9 while the follower's index is following a burst.
	before := metric(f, "continuum_search_indexed_messages_total")
	done := make(chan struct{})
	go func() { defer close(done); deliver(120, l) }()
	// Kill when the follower has indexed part of the burst and is behind.
	var lag float64
	for {
		v, err1 := c.Metric(f, "continuum_search_indexed_messages_total")
		var err2 error
		lag, err2 = c.Metric(f, "continuum_search_index_lag")
		if err1 == nil && err2 == nil && v > before && lag > 0 {
			break
		}
		select {
		case <-done:
			t.Log("the burst ended before the index was seen behind: killing anyway")
		case <-time.After(5 * time.Millisecond):
			continue
		}
		break
	}
	c.Kill(f)
	t.Logf("killed %s (SIGKILL) while indexing the burst (index lag %v entries at the last sample)", c.Nodes[f].ID, lag)
	<-done
	c.StartNode(f)
	c.WaitConverged(60 * time.Second)
	compare("restarted after kill -9 mid-burst")

	// 2. kill -9 in the middle of a rebuild.
	if _, err := c.Admin(f).Reindex(context.Background(), &adminpb.ReindexRequest{}); err != nil {
		t.Fatal(err)
	}
	c.Eventually(60*time.Second, "the rebuild under way", func() (bool, string) {
		v, err := c.Metric(f, "continuum_search_indexed_messages_total")
		return err == nil && v > 0, ""
	})
	rebuilt := metric(f, "continuum_search_indexed_messages_total")
	c.Kill(f)
	t.Logf("killed %s (SIGKILL) %v messages into a rebuild of %d", c.Nodes[f].ID, rebuilt, n)
	deliver(40, l)
	c.StartNode(f)
	c.WaitConverged(60 * time.Second)
	compare("restarted after kill -9 mid-rebuild")

	// 3. continuum reindex --wait on the live node, mail arriving at it.
	done = make(chan struct{})
	go func() { defer close(done); deliver(60, f) }()
	caFile, _ := identity.CAFiles(c.TLSDir)
	cert, key := identity.AdminFiles(c.TLSDir, "test")
	out, err := exec.Command(c.Bin, "reindex", "--server", c.Nodes[f].Addr(PortAdmin), "--wait", "90s",
		"--ca", caFile, "--cert", cert, "--key", key).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "rebuilt up to log index") {
		t.Fatalf("continuum reindex: %v: %s", err, out)
	}
	t.Logf("continuum reindex: %s", strings.TrimSpace(string(out)))
	<-done
	c.WaitConverged(60 * time.Second)
	compare("after continuum reindex on the live node")
}
