package imapd_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/nodetest"
)

// TestSameUIDsEverywhere: UIDVALIDITY and UIDs of a mailbox are the same
// on all three nodes (assigned in apply, from the log).
func TestSameUIDsEverywhere(t *testing.T) {
	e := newEnv(t, nil)
	for i := 0; i < 5; i++ {
		e.deliver(i%3, alice, testMessage(fmt.Sprintf("u%d", i), "s", "b"))
	}
	// An APPEND through node 3 and a MOVE through node 2 as well.
	c3 := login(t, e.addrs[2], alice)
	c3.ok("APPEND Archive {14+}\r\nSubject: x\r\n\r\n")
	c2 := login(t, e.addrs[1], alice)
	c2.ok("SELECT INBOX")
	c2.ok("MOVE 2 Archive")
	e.waitAll()

	type view struct{ validity, uids string }
	var views []map[string]view
	for i := range e.addrs {
		c := login(t, e.addrs[i], alice)
		m := map[string]view{}
		for _, box := range []string{"INBOX", "Archive"} {
			sel := c.ok("EXAMINE %s", box)
			f := c.ok("UID FETCH 1:* (UID)")
			m[box] = view{respCode(sel, "UIDVALIDITY"), strings.Join(f, "|")}
		}
		views = append(views, m)
	}
	for i := 1; i < len(views); i++ {
		for box, v := range views[0] {
			if views[i][box] != v {
				t.Errorf("node %d %s = %+v, node 1 = %+v", i+1, box, views[i][box], v)
			}
		}
	}
	if v := views[0]["INBOX"]; v.validity == "" || strings.Count(v.uids, "UID") != 4 {
		t.Errorf("INBOX view %+v", v)
	}
	if v := views[0]["Archive"]; strings.Count(v.uids, "UID") != 2 {
		t.Errorf("Archive view %+v", v)
	}
}

// TestReadYourWritesOnFollower: a write through a follower is visible to
// the same session at once and to a SELECT on the other follower.
func TestReadYourWritesOnFollower(t *testing.T) {
	e := newEnv(t, nil)
	l := e.c.Leader()
	var followers []int
	for i := range e.addrs {
		if i != l {
			followers = append(followers, i)
		}
	}
	a := login(t, e.addrs[followers[0]], alice)
	b := login(t, e.addrs[followers[1]], alice)
	for i := 1; i <= 20; i++ {
		msg := fmt.Sprintf("Subject: ryw %d\r\n\r\nx\r\n", i)
		a.ok("APPEND INBOX {%d+}\r\n%s", len(msg), msg)
		sel := a.ok("SELECT INBOX")
		if find(sel, fmt.Sprintf("* %d EXISTS", i)) == "" {
			t.Fatalf("after APPEND %d on follower: %q", i, sel)
		}
		// The other follower, after its read-index wait, sees it too.
		sel = b.ok("EXAMINE INBOX")
		if find(sel, fmt.Sprintf("* %d EXISTS", i)) == "" {
			t.Fatalf("other follower after APPEND %d: %q", i, sel)
		}
		a.ok(`STORE %d +FLAGS (\Flagged)`, i)
		if f := b.ok("FETCH %d (FLAGS)", i); !strings.Contains(f[0], `\Flagged`) {
			// NOOP is a read-index point too.
			b.ok("NOOP")
			if f := b.ok("FETCH %d (FLAGS)", i); !strings.Contains(f[0], `\Flagged`) {
				t.Fatalf("flag not visible on other follower after NOOP: %q", f)
			}
		}
	}
}

// TestIdleEverywhere: a message delivered through node 1 is announced to
// an IDLE client on node 3; so are flag changes and expunges made through
// node 2. Reports the delivery→EXISTS latency distribution.
func TestIdleEverywhere(t *testing.T) {
	e := newEnv(t, nil)
	n := 50
	if testing.Short() {
		n = 10
	}
	idler := login(t, e.addrs[2], alice)
	idler.ok("SELECT INBOX")
	idler.send("i1 IDLE\r\n")
	if l := idler.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE = %q", l)
	}
	var lat []time.Duration
	for i := 1; i <= n; i++ {
		start := time.Now()
		e.deliver(0, alice, testMessage(fmt.Sprintf("idle%d", i), "idle", "b"))
		want := fmt.Sprintf("* %d EXISTS", i)
		for {
			l, err := idler.readLine(5 * time.Second)
			if err != nil {
				t.Fatalf("delivery %d not announced within 5s: %v", i, err)
			}
			if l == want {
				break
			}
			// The idler is an IMAP4rev1 session: RECENT follows EXISTS.
			if !strings.Contains(l, "EXISTS") && !strings.HasSuffix(l, " RECENT") {
				t.Fatalf("unexpected %q", l)
			}
		}
		// Measured from the start of Deliver, which returns after commit
		// and apply on node 1: the latency a sender's 250 → client sees.
		lat = append(lat, time.Since(start))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) time.Duration { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	t.Logf("delivery (node 1) → EXISTS (IDLE on node 3), %d deliveries: p50 %v p90 %v p99 %v max %v", n, p(0.5), p(0.9), p(0.99), lat[len(lat)-1])
	if p(0.99) > time.Second {
		t.Errorf("p99 %v > 1s", p(0.99))
	}

	// Flag change and expunge through node 2.
	w := login(t, e.addrs[1], alice)
	w.ok("SELECT INBOX")
	w.ok(`STORE 3 +FLAGS (\Flagged)`)
	l := idler.line()
	for strings.HasSuffix(l, " RECENT") {
		l = idler.line()
	}
	// Message 3 arrived while the rev1 idler had INBOX selected: \Recent.
	if l != `* 3 FETCH (UID 3 FLAGS (\Flagged \Recent))` {
		t.Errorf("flag change announced as %q", l)
	}
	w.ok(`STORE 5 +FLAGS.SILENT (\Deleted)`)
	if l := idler.line(); !strings.Contains(l, `\Deleted`) {
		t.Errorf("deleted flag announced as %q", l)
	}
	w.ok("EXPUNGE")
	if l := idler.line(); l != "* 5 EXPUNGE" {
		t.Errorf("expunge announced as %q", l)
	}
	idler.send("DONE\r\n")
	if _, done := idler.until("i1"); !strings.HasPrefix(done, "OK") {
		t.Errorf("IDLE done = %q", done)
	}
	// The idler's numbering now matches the other session's.
	a := idler.ok("FETCH 1:* (UID)")
	b := w.ok("FETCH 1:* (UID)")
	if !slices.Equal(a, b) || len(a) != n-1 {
		t.Errorf("views differ after IDLE: %d vs %d lines", len(a), len(b))
	}
}

// TestCutOffNodeReadOnly: a node without a leader serves SELECT from its
// local replica read-only and refuses writes with NO [UNAVAILABLE]; after
// the heal it writes again.
func TestCutOffNodeReadOnly(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(0, alice, testMessage("c1", "before cut", "b"))
	e.waitAll()
	l := e.c.Leader()
	iso := (l + 1) % 3
	id := e.c.Cfgs[iso].ID
	var others []string
	for _, cfg := range e.c.Cfgs {
		others = append(others, cfg.ID)
	}
	e.c.Net.Isolate(id, others...)
	eventually(t, 20*time.Second, "isolated node cut off", func() bool { return e.c.Nodes[iso].Mail().CutOff() })

	c := login(t, e.addrs[iso], alice)
	sel := c.ok("SELECT INBOX")
	if find(sel, "* 1 EXISTS") == "" || find(sel, "[PERMANENTFLAGS ()]") == "" {
		t.Errorf("SELECT on cut-off node = %q", sel)
	}
	if f := c.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)])"); !strings.Contains(f[0], "before cut") {
		t.Errorf("FETCH = %q", f)
	}
	c.expect("NO [UNAVAILABLE]", `STORE 1 +FLAGS (\Seen)`)
	c.expect("NO [UNAVAILABLE]", "EXPUNGE")
	c.expect("NO [UNAVAILABLE]", "MOVE 1 Trash")
	c.expect("NO [UNAVAILABLE]", "COPY 1 Trash")
	c.expect("NO [UNAVAILABLE]", "CREATE NewBox")
	// A non-PEEK fetch cannot set \Seen here; it still serves the data.
	if f := c.ok("FETCH 1 (BODY[TEXT])"); strings.Contains(f[0], `\Seen`) {
		t.Errorf("FETCH on read-only set \\Seen: %q", f)
	}
	c.send("a900 APPEND INBOX {5}\r\n")
	if l := c.line(); strings.HasPrefix(l, "+") {
		c.send("hello\r\n")
		_, done := c.until("a900")
		if !strings.HasPrefix(done, "NO [UNAVAILABLE]") {
			t.Errorf("APPEND = %q", done)
		}
	} else if !strings.HasPrefix(l, "a900 NO [UNAVAILABLE]") {
		t.Errorf("APPEND = %q", l)
	}
	ex := c.ok("EXAMINE INBOX")
	_ = ex
	st := c.ok("STATUS INBOX (MESSAGES)")
	if !strings.Contains(st[0], "MESSAGES 1") {
		t.Errorf("STATUS = %q", st)
	}
	// No local change happened.
	snap := e.c.Nodes[iso].Mail().View()
	mb, err := snap.Mailbox(e.users[alice], "INBOX")
	snap.Close()
	if err != nil || mb.Messages != 1 {
		t.Errorf("INBOX on isolated node: %v %v", mb, err)
	}

	e.c.Net.HealAll()
	eventually(t, 30*time.Second, "healed node has a leader", func() bool { return !e.c.Nodes[iso].Mail().CutOff() })
	c2 := login(t, e.addrs[iso], alice)
	c2.ok("SELECT INBOX")
	eventually(t, 30*time.Second, "write succeeds after heal", func() bool {
		_, done := c2.do(`STORE 1 +FLAGS (\Flagged)`)
		return strings.HasPrefix(done, "OK")
	})
}

// TestNodeServesIMAP: the node's own listener (node.startIMAP, wired in
// startProtocols) serves IMAP on every node.
func TestNodeServesIMAP(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{NoSync: true, Protocols: true})
	ctx := c.Ctx(30 * time.Second)
	if err := c.Nodes[0].Mail().AddDomain(ctx, domain, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Nodes[0].Mail().AddUser(ctx, alice, password, 0); err != nil {
		t.Fatal(err)
	}
	l := c.WaitLeader(10 * time.Second)
	c.WaitApplied(c.Nodes[l].FSM().AppliedIndex(), 10*time.Second)
	for i := range c.Nodes {
		cl := login(t, c.Cfgs[i].IMAPAddr, alice)
		if sel := cl.ok("SELECT INBOX"); find(sel, "* 0 EXISTS") == "" {
			t.Errorf("node %d: SELECT = %q", i+1, sel)
		}
	}
}
