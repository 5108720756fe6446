package node_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

var indexVocab = strings.Fields(`meeting budget quarterly Straße STRASSE café résumé ÉCOLE
	σίσυφος 日本語 Привет password passport alpha gamma archive ﬁnance Ångström`)

func indexMessage(r *rand.Rand, n int) []byte {
	w := func(k int) string {
		ws := make([]string, k)
		for i := range ws {
			ws[i] = indexVocab[r.IntN(len(indexVocab))]
		}
		return strings.Join(ws, " ")
	}
	raw := make([]byte, 1024)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	return []byte(fmt.Sprintf("From: s@remote.test\r\nTo: alice@example.test\r\nSubject: %s\r\nMessage-ID: <%d.%x@remote.test>\r\nX-Test-Id: %d\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n"+
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n",
		mime.BEncoding.Encode("utf-8", w(3)), n, r.Uint64(), n, w(30), base64.StdEncoding.EncodeToString(raw)))
}

// textSearch runs TEXT q over the user's INBOX on one node the way IMAP
// SEARCH does (node/mail.TextSearch), through the index or scanning.
func textSearch(t *testing.T, svc *mail.Service, userID uint64, q string, scanOnly bool) []uint32 {
	t.Helper()
	snap := svc.View()
	defer snap.Close()
	box, err := snap.Mailbox(userID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var uids []uint32
	if err := snap.Messages(box.Id, 1, 0, func(m *storagepb.Message) error { uids = append(uids, m.Uid); return nil }); err != nil {
		t.Fatal(err)
	}
	ts, err := svc.TextSearch(box.Id, box.UidValidity, scanOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	f := mail.FoldText(q)
	pos, err := ts.Narrow(uids, []string{f})
	if err != nil {
		t.Fatal(err)
	}
	var out []uint32
	for _, p := range pos {
		m, err := snap.Message(box.Id, uids[p])
		if err != nil {
			t.Fatal(err)
		}
		d, err := ts.Doc(snap, m)
		if err != nil {
			t.Fatal(err)
		}
		if d.MatchText(f) {
			out = append(out, m.Uid)
		}
	}
	slices.Sort(out)
	return out
}

func compareSearches(t *testing.T, r *rand.Rand, svc *mail.Service, userID uint64, what string) {
	t.Helper()
	for range 40 {
		w := []rune(indexVocab[r.IntN(len(indexVocab))])
		i := r.IntN(len(w))
		q := string(w[i : i+1+r.IntN(len(w)-i)])
		if want, got := textSearch(t, svc, userID, q, true), textSearch(t, svc, userID, q, false); !slices.Equal(want, got) {
			t.Fatalf("%s: TEXT %q: scan %v, index %v", what, q, want, got)
		}
	}
}

// TestIndexSurvivesStopMidIndexing: a follower stopped while its index is
// rebuilding (and while mail keeps arriving) restarts, catches up from its
// state, and answers exactly as the scan does; then `continuum reindex`
// (the admin RPC's ReindexAndWait) on a live node under delivery load
// leaves it consistent too.
func TestIndexSurvivesStopMidIndexing(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	c := nodetest.Start(t, nodetest.Options{NoSync: true})
	ctx := c.Ctx(60 * time.Second)
	l := c.WaitLeader(10 * time.Second)
	m := c.Nodes[l].Mail()
	if err := m.AddDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	userID, err := m.AddUser(ctx, "alice@example.test", "s3cret-pass", 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var mu sync.Mutex
	deliver := func(k int, via int) {
		var wg sync.WaitGroup
		for range k {
			mu.Lock()
			n++
			msg := indexMessage(r, n)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				svc := c.Nodes[via].Mail()
				d, err := svc.Deliver(ctx, mail.Envelope{From: "s@remote.test", To: []string{"alice@example.test"}}, msg, msg)
				if err == nil {
					err = d[0].Err
				}
				if err != nil {
					t.Errorf("deliver: %v", err)
				}
			}()
		}
		wg.Wait()
	}
	deliver(300, l)
	f := (l + 1) % len(c.Nodes)
	c.WaitApplied(c.Nodes[l].FSM().AppliedIndex(), 10*time.Second)

	// Stop the follower while it rebuilds its index.
	before := c.Nodes[f].Index().Stats().Indexed
	if err := c.Nodes[f].Index().Reindex(); err != nil {
		t.Fatal(err)
	}
	c.Eventually(10*time.Second, "rebuild under way", func() bool { return c.Nodes[f].Index().Stats().Indexed > before })
	if c.Nodes[f].Index().Applied() != 0 {
		t.Log("the rebuild finished before the stop: this run did not stop it midway")
	}
	c.StopNode(f)
	deliver(50, l)
	c.StartNode(f)
	c.WaitApplied(c.Nodes[l].FSM().AppliedIndex(), 20*time.Second)
	if err := c.Nodes[f].Index().WaitCaughtUp(ctx, c.Nodes[f].FSM().AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	compareSearches(t, r, c.Nodes[f].Mail(), userID, "restarted mid-indexing")

	// Reindex a live node while mail arrives at it, searching meanwhile.
	done := make(chan struct{})
	go func() { defer close(done); deliver(60, f) }()
	target, caughtUp, err := c.Nodes[f].Index().ReindexAndWait(ctx, 60*time.Second)
	if err != nil || !caughtUp {
		t.Fatalf("reindex: caught up %v, err %v (target %d)", caughtUp, err, target)
	}
	<-done
	c.WaitApplied(c.Nodes[l].FSM().AppliedIndex(), 20*time.Second)
	if err := c.Nodes[f].Index().WaitCaughtUp(ctx, c.Nodes[f].FSM().AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	compareSearches(t, r, c.Nodes[f].Mail(), userID, "after live reindex")
	t.Logf("%d messages; follower indexed %d since its restart", n, c.Nodes[f].Index().Stats().Indexed)
}

// TestArchiveSearchIndexAgreesWithScan: `continuum archive search`
// (mail.Service.Search, across users) through the index returns exactly
// what the scanning path returns, on every node, for random substrings of
// the corpus's words (with date bounds and a limit on some), including
// messages delivered after the index caught up (above its watermark) and
// expunged ones; and the indexed path checks fewer messages' text.
func TestArchiveSearchIndexAgreesWithScan(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 5))
	c := nodetest.Start(t, nodetest.Options{NoSync: true})
	ctx := c.Ctx(60 * time.Second)
	l := c.WaitLeader(10 * time.Second)
	m := c.Nodes[l].Mail()
	if err := m.AddDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	users := []string{"alice@example.test", "bob@example.test", "carol@example.test"}
	for _, u := range users {
		if _, err := m.AddUser(ctx, u, "s3cret-pass", 0); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	deliver := func(k int) {
		for range k {
			n++
			msg := indexMessage(r, n)
			to := []string{users[r.IntN(len(users))]}
			if r.IntN(5) == 0 {
				to = users // one blob, three mailboxes
			}
			d, err := m.Deliver(ctx, mail.Envelope{From: "s@remote.test", To: to}, msg, msg)
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range d {
				if x.Err != nil {
					t.Fatal(x.Err)
				}
			}
		}
	}
	deliver(90)
	for _, nd := range c.Nodes {
		c.WaitApplied(c.Nodes[l].FSM().AppliedIndex(), 10*time.Second)
		if err := nd.Index().WaitCaughtUp(ctx, nd.FSM().AppliedIndex()); err != nil {
			t.Fatal(err)
		}
	}
	compare := func(what string, queries int) (scanTotal, indexTotal uint64) {
		for range queries {
			w := []rune(indexVocab[r.IntN(len(indexVocab))])
			i := r.IntN(len(w))
			q := mail.SearchQuery{Query: string(w[i : i+1+r.IntN(len(w)-i)])}
			if r.IntN(4) == 0 {
				q.User = users[r.IntN(len(users))]
			}
			if r.IntN(4) == 0 {
				q.Limit = 1 + r.IntN(20)
			}
			if r.IntN(4) == 0 {
				q.From = time.Now().Add(-time.Hour).Unix()
			}
			for i, nd := range c.Nodes {
				sq := q
				sq.Scan = true
				want, ws, wt := archiveSearch(t, c, nd.Mail(), sq)
				got, gs, gt := archiveSearch(t, c, nd.Mail(), q)
				if !slices.EqualFunc(want, got, sameHit) || wt != gt {
					t.Fatalf("%s: node %d %+v: scan %d hits (truncated %v) %v, index %d hits (truncated %v) %v",
						what, i, q, len(want), wt, hitIDs(want), len(got), gt, hitIDs(got))
				}
				scanTotal, indexTotal = scanTotal+ws, indexTotal+gs
			}
		}
		return
	}
	ws, gs := compare("caught up", 40)
	t.Logf("caught up: text checked for %d messages scanning, %d through the index", ws, gs)
	if gs >= ws {
		t.Errorf("the index path checked %d messages' text, the scan %d: the index was not used", gs, ws)
	}
	// Expunge some, deliver more (some above the watermarks while the
	// indexers catch up): still identical.
	for _, u := range users[:2] {
		id, err := m.Authenticate(ctx, u, "s3cret-pass")
		if err != nil {
			t.Fatal(err)
		}
		box, err := m.Mailbox(id.ID, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		snap := m.View()
		var uids []*commandpb.UIDRange
		snap.Messages(box.Id, 1, 0, func(msg *storagepb.Message) error {
			if r.IntN(3) == 0 {
				uids = append(uids, &commandpb.UIDRange{Start: msg.Uid, Stop: msg.Uid})
			}
			return nil
		})
		snap.Close()
		if _, err := m.Expunge(ctx, id.ID, box.Id, uids); err != nil {
			t.Fatal(err)
		}
	}
	deliver(30)
	c.WaitApplied(c.Nodes[l].FSM().AppliedIndex(), 10*time.Second)
	compare("after expunges and new mail", 30)
}

// archiveSearch runs q, retrying while the cluster has no leader (Search
// waits for a read index first: on this shared machine an election under
// load is not what the test is about).
func archiveSearch(t *testing.T, c *nodetest.Cluster, svc *mail.Service, q mail.SearchQuery) ([]mail.Hit, uint64, bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		hits, scanned, truncated, err := svc.Search(c.Ctx(20*time.Second), q)
		if err == nil {
			return hits, scanned, truncated
		}
		if !errors.Is(err, mail.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("search %+v: %v", q, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sameHit(a, b mail.Hit) bool {
	return a.User == b.User && a.Mailbox == b.Mailbox && a.UID == b.UID && a.Subject == b.Subject && a.Vaulted == b.Vaulted
}

func hitIDs(hs []mail.Hit) []string {
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s/%s/%d", h.User, h.Mailbox, h.UID))
	}
	return out
}
