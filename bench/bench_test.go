package bench

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/continuum-mail/continuum/node/nodetest"
)

// TestRunAgainstCluster drives every workload against an in-process
// 3-node cluster and checks that the operations happened: the messages
// are in the mailboxes, the fetches saw them.
func TestRunAgainstCluster(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{Protocols: true, NoSync: true})
	m := c.Nodes[0].Mail()
	ctx := c.Ctx(time.Minute)
	if err := m.AddDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	const pw = "bench password 1"
	for i := 1; i <= 2; i++ {
		if _, err := m.AddUser(ctx, fmt.Sprintf("bench%d@example.test", i), pw, 0); err != nil {
			t.Fatal(err)
		}
	}
	cfg0 := c.Cfgs[0]
	var progress bytes.Buffer
	// A loaded machine can cost the cluster its leader for a moment: a
	// session that cannot start then ("cluster unavailable") is retried,
	// and an operation turned away with that answer is counted but allowed
	// (a real client retries it). Any other error fails the test.
	unavailable := func(e string) bool {
		return strings.Contains(strings.ToLower(e), "unavailable") || strings.Contains(e, "outcome unknown")
	}
	run := func(cfg Config) *Result {
		t.Helper()
		cfg.Progress = &progress
		var r *Result
		var err error
		for try := 0; ; try++ {
			if r, err = Run(ctx, cfg); err == nil || try == 10 || !unavailable(err.Error()) {
				break
			}
			time.Sleep(time.Second)
		}
		if err != nil {
			t.Fatalf("%s: %v", cfg.Workload(), err)
		}
		for _, e := range r.ErrorList {
			if !unavailable(e) {
				t.Fatalf("%s: %d errors: %v", r.Workload, r.Errors, r.ErrorList)
			}
		}
		if r.Ops > 0 && (r.P50 <= 0 || r.P50 > r.P99 || r.P99 > r.Max) {
			t.Errorf("%s: percentiles p50 %v p99 %v max %v", r.Workload, r.P50, r.P99, r.Max)
		}
		return r
	}

	lm := run(Config{Protocol: LMTP, Server: cfg0.LMTPAddr, Sessions: 4, Count: 20, Users: 2})
	sm := run(Config{Protocol: SMTP, Server: c.Cfgs[1].SMTPAddr, Sessions: 2, Count: 6, Users: 2, Body: BodyText, Size: 2048})
	if lm.Ops+lm.Errors != 20 || sm.Ops+sm.Errors != 6 {
		t.Fatalf("ops: lmtp %d+%d errors (want 20), smtp %d+%d (want 6)", lm.Ops, lm.Errors, sm.Ops, sm.Errors)
	}
	if lm.Bytes < lm.Ops*9<<10 {
		t.Errorf("lmtp moved %d bytes for %d messages of 10 KiB", lm.Bytes, lm.Ops)
	}
	// The messages over the two users (each session keeps to its users,
	// so the split depends on which sessions were faster): every one
	// acknowledged is in, none beyond the 26 sent.
	counts := make([]int64, 2)
	acked := lm.Ops + sm.Ops
	c.Eventually(60*time.Second, "messages delivered", func() bool {
		for i := range counts {
			r, err := Run(ctx, Config{Protocol: IMAP, Op: OpFetchFlags, Server: cfg0.IMAPAddr, Count: 1, Password: pw, User: fmt.Sprintf("bench%d@example.test", i+1)})
			if err != nil || r.Ops != 1 {
				return false
			}
			counts[i] = r.Items
		}
		return counts[0]+counts[1] >= acked && counts[0]+counts[1] <= 26
	})
	fh := run(Config{Protocol: IMAP, Op: OpFetchHeaders, Server: c.Cfgs[2].IMAPAddr, Sessions: 2, Count: 4, User: "bench1@example.test", Password: pw})
	if fh.Items != fh.Ops*counts[0] || fh.Ops == 0 || fh.Bytes == 0 {
		t.Errorf("fetch-headers: %d messages in %d fetches, %d bytes, want %d each and some", fh.Items, fh.Ops, fh.Bytes, counts[0])
	}
	mx := run(Config{Protocol: IMAP, Op: OpMixed, Server: c.Cfgs[1].IMAPAddr, Sessions: 2, Users: 2, Count: 20, Password: pw})
	if mx.Ops+mx.Errors != 20 || mx.Ops == 0 || mx.Bytes == 0 {
		t.Errorf("mixed: %d ops %d errors %d bytes appended, want 20 and some", mx.Ops, mx.Errors, mx.Bytes)
	}
	lg := run(Config{Protocol: IMAP, Op: OpLogin, Server: cfg0.IMAPAddr, Sessions: 2, Count: 6, Users: 2, Password: pw})
	if lg.Ops+lg.Errors != 6 || lg.Ops == 0 {
		t.Errorf("login: %d ops %d errors, want 6", lg.Ops, lg.Errors)
	}
	id := run(Config{Protocol: IMAP, Op: OpIdle, Server: c.Cfgs[1].IMAPAddr, Deliver: cfg0.LMTPAddr, Sessions: 2, Count: 4, Users: 2, Password: pw})
	if id.Ops+id.Errors != 4 || id.Items != id.Ops || id.Ops == 0 {
		t.Errorf("idle: %d ops %d errors %d notices, want 4", id.Ops, id.Errors, id.Items)
	}
	if !strings.Contains(progress.String(), fmt.Sprintf("lmtp: %d ops, %d errors", lm.Ops, lm.Errors)) {
		t.Errorf("progress lines: %q", progress.String())
	}

	// A wrong password fails the run at once, with the server's answer.
	if _, err := Run(ctx, Config{Protocol: IMAP, Op: OpFetchFlags, Server: cfg0.IMAPAddr, Count: 1, Password: "wrong"}); err == nil || !strings.Contains(err.Error(), "LOGIN") {
		t.Errorf("wrong password: %v", err)
	}
	// An unknown recipient is an error per operation, counted.
	r, err := Run(ctx, Config{Protocol: LMTP, Server: cfg0.LMTPAddr, Count: 3, User: "nobody@example.test"})
	if err != nil || r.Errors != 3 || r.Ops != 0 || !strings.Contains(r.ErrorList[0], "RCPT") {
		t.Errorf("unknown recipient: %v %+v", err, r)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Server: "h:1", Count: 1}, "no protocol"},
		{Config{Protocol: "pop3", Server: "h:1", Count: 1}, `protocol "pop3"`},
		{Config{Protocol: LMTP, Count: 1}, "no server"},
		{Config{Protocol: LMTP, Server: "localhost", Count: 1}, "HOST:PORT"},
		{Config{Protocol: LMTP, Server: "h:1"}, "would not end"},
		{Config{Protocol: LMTP, Server: "h:1", Count: 1, Sessions: -1}, "sessions -1"},
		{Config{Protocol: LMTP, Server: "h:1", Count: 1, Op: OpLogin}, "--op is for imap"},
		{Config{Protocol: IMAP, Server: "h:1", Count: 1, Op: "search", Password: "x"}, `op "search"`},
		{Config{Protocol: IMAP, Server: "h:1", Count: 1}, "password"},
		{Config{Protocol: IMAP, Server: "h:1", Count: 1, Op: OpIdle, Password: "x"}, "--deliver"},
		{Config{Protocol: LMTP, Server: "h:1", Count: 1, Body: "zeros"}, `body "zeros"`},
		{Config{Protocol: LMTP, Server: "h:1", Count: 1, Body: BodyCorpus}, "directory"},
		{Config{Protocol: LMTP, Server: "h:1", Count: 1, Body: BodyCorpus, CorpusDir: t.TempDir()}, "no messages"},
		{Config{Protocol: LMTP, Server: "h:1", Count: 1, Size: 100}, "at least 512"},
		{Config{Protocol: LMTP, Server: "h:1", Count: 1, User: "a%s@x"}, "%d"},
	} {
		_, err := Run(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.cfg, err, tc.want)
		}
	}
}

// TestBodies: random bodies are valid MIME of about the asked size with
// unique Message-IDs; corpus messages get a fresh Message-ID in place of
// theirs.
func TestBodies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	b, err := newBodies(BodyRandom, 10<<10, "", "a@example.org")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for range 3 {
		m := b.next(rng, "r@example.test")
		if len(m) > 10<<10 || len(m) < 10<<10-100 {
			t.Errorf("random body of %d bytes, want about 10240", len(m))
		}
		r, err := mail.CreateReader(bytes.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		id := r.Header.Get("Message-Id")
		if id == "" || ids[id] {
			t.Errorf("Message-ID %q empty or repeated", id)
		}
		ids[id] = true
		parts := 0
		for {
			p, err := r.NextPart()
			if err != nil {
				break
			}
			parts++
			if h, ok := p.Header.(*mail.AttachmentHeader); ok {
				if fn, _ := h.Filename(); !strings.HasPrefix(fn, "data") {
					t.Errorf("attachment name %q", fn)
				}
			}
		}
		if parts != 2 {
			t.Errorf("%d parts, want text + attachment", parts)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "1.eml"), []byte("Subject: one\nMessage-ID:\n <old@x>\nFrom: a@x\n\nbody\n"), 0o644)
	b, err = newBodies(BodyCorpus, 0, dir, "a@example.org")
	if err != nil {
		t.Fatal(err)
	}
	m1, m2 := b.next(rng, "r"), b.next(rng, "r")
	if bytes.Contains(m1, []byte("old@x")) || bytes.Equal(m1, m2) || !bytes.Contains(m1, []byte("Subject: one\r\nFrom: a@x\r\n\r\nbody\r\n")) {
		t.Errorf("corpus message:\n%s", m1)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int{"10k": 10240, "10KiB": 10240, "1m": 1 << 20, "4096": 4096, "2kb": 2048} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "k", "-1", "1.5k", "ten", "65m"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q): no error", in)
		}
	}
}
