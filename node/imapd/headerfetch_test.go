package imapd_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/mail"
)

// TestFetchHeaderFieldsOnly: a FETCH whose only body sections are top-level
// header sections reads the stored header block (node/mail HeaderBlock)
// instead of the message; the answers are those of the whole-message path
// (a FETCH that also asks for BODY[TEXT] takes that one).
func TestFetchHeaderFieldsOnly(t *testing.T) {
	e := newEnv(t, nil)
	msg := testMessage("hdr1", "header block", "the body\r\nsecond line")
	hdr := msg[:strings.Index(msg, "\r\n\r\n")+4]
	e.deliver(0, alice, msg)
	e.waitAll()
	c := login(t, e.addrs[1], alice)
	c.ok("SELECT INBOX")

	fields := "Subject: header block\r\nMessage-ID: <hdr1@remote.test>\r\n\r\n"
	notFields := strings.Replace(hdr, "Subject: header block\r\n", "", 1)
	for _, tc := range []struct{ cmd, want string }{
		{"BODY.PEEK[HEADER]", fmt.Sprintf("BODY[HEADER] {%d}\n%s", len(hdr), hdr)},
		{"BODY.PEEK[HEADER.FIELDS (Subject Message-ID)]", fmt.Sprintf("BODY[HEADER.FIELDS (\"Subject\" \"Message-ID\")] {%d}\n%s", len(fields), fields)},
		{"BODY.PEEK[HEADER.FIELDS.NOT (Subject)]", fmt.Sprintf("BODY[HEADER.FIELDS.NOT (\"Subject\")] {%d}\n%s", len(notFields), notFields)},
		{"BODY.PEEK[HEADER]<6.9>", "BODY[HEADER]<6> {9}\n" + hdr[6:15]},
		{"BODY.PEEK[HEADER.FIELDS (subject MESSAGE-id)]", fmt.Sprintf("BODY[HEADER.FIELDS (\"subject\" \"MESSAGE-id\")] {%d}\n%s", len(fields), fields)},
	} {
		only := c.ok("FETCH 1 (%s)", tc.cmd)
		mixed := c.ok("FETCH 1 (%s BODY.PEEK[TEXT])", tc.cmd)
		if len(only) != 1 || !strings.Contains(only[0], tc.want) {
			t.Errorf("FETCH 1 (%s) = %q, want %q in it", tc.cmd, only, tc.want)
		}
		if len(mixed) != 1 || !strings.Contains(mixed[0], tc.want) || !strings.Contains(mixed[0], "the body") {
			t.Errorf("FETCH 1 (%s BODY.PEEK[TEXT]) = %q, want %q in it", tc.cmd, mixed, tc.want)
		}
	}
	// Two header sections for two messages: each item keeps its own name
	// and bytes (the item names are built once per command).
	msg2 := testMessage("hdr2", "second block", "body two")
	e.deliver(0, alice, msg2)
	e.waitAll()
	c.ok("NOOP")
	two := c.ok("FETCH 1:2 (UID BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[HEADER.FIELDS (Message-ID)])")
	if len(two) != 2 {
		t.Fatalf("FETCH 1:2 = %q", two)
	}
	for i, id := range []string{"hdr1", "hdr2"} {
		subj := []string{"header block", "second block"}[i]
		wantSubj := fmt.Sprintf("BODY[HEADER.FIELDS (\"Subject\")] {%d}\nSubject: %s\r\n\r\n", len("Subject: "+subj+"\r\n\r\n"), subj)
		wantID := fmt.Sprintf("BODY[HEADER.FIELDS (\"Message-ID\")] {%d}\nMessage-ID: <%s@remote.test>\r\n\r\n", len("Message-ID: <"+id+"@remote.test>\r\n\r\n"), id)
		if !strings.Contains(two[i], wantSubj) || !strings.Contains(two[i], wantID) {
			t.Errorf("FETCH 1:2 line %d = %q, want %q and %q", i+1, two[i], wantSubj, wantID)
		}
	}
	if l := c.ok("FETCH 1 (FLAGS)"); !strings.Contains(l[0], "FLAGS ()") {
		t.Errorf("PEEK of header sections set flags: %q", l)
	}
	// Without PEEK the header sections set \Seen, on this path too.
	if l := c.ok("FETCH 1 (BODY[HEADER.FIELDS (Subject)])"); !strings.Contains(l[0], `\Seen`) || !strings.Contains(l[0], "Subject: header block") {
		t.Errorf("FETCH BODY[HEADER.FIELDS (Subject)] = %q", l)
	}
}

// BenchmarkFetchHeaderFields: FETCH 1:* of five header fields, and of
// FLAGS, over a mailbox of 10,000 messages (CONTINUUM_BENCH_MESSAGES
// overrides) at a follower, through the raw client (docs/notes/read-path.md).
func BenchmarkFetchHeaderFields(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("CONTINUUM_BENCH_MESSAGES")); err == nil {
		n = v
	}
	e := newEnv(b, nil)
	fillRetrying(b, e, alice, n)
	e.waitAll()
	c := login(b, e.addrs[1], alice)
	if sel := c.ok("SELECT INBOX"); find(sel, fmt.Sprintf("* %d EXISTS", n)) == "" {
		b.Fatalf("SELECT = %q", sel)
	}
	for _, tc := range []struct{ name, items string }{
		{"header-fields", "BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID)]"},
		{"flags", "FLAGS"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if u := c.ok("FETCH 1:* (%s)", tc.items); len(u) != n {
					b.Fatalf("%d FETCH lines", len(u))
				}
			}
		})
	}
}

// fillRetrying delivers n distinct messages to rcpt through all nodes, 32 at
// a time, retrying a temporary failure (a shared machine's load can cost
// an election; retries are deduplicated by the delivery's dedupe key).
func fillRetrying(b *testing.B, e *env, rcpt string, n int) {
	b.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	var failed atomic.Int64
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				msg := []byte(testMessage(fmt.Sprintf("bulk%d", i), fmt.Sprintf("bulk %d", i), "bulk body"))
				var err error
				for try := 0; try < 10; try++ {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					var d []mail.Delivery
					d, err = e.c.Nodes[(i+try)%len(e.c.Nodes)].Mail().Deliver(ctx, mail.Envelope{From: "bulk@remote.test", To: []string{rcpt}}, msg, msg)
					cancel()
					if err == nil {
						err = d[0].Err
					}
					if err == nil || !mail.IsTemporary(err) {
						break
					}
					time.Sleep(200 * time.Millisecond)
				}
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d deliveries failed", f, n)
	}
}
