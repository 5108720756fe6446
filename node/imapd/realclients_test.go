package imapd_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/mail"
)

// TestPythonImaplib runs Python's imaplib (login, select, fetch, store,
// copy, move, expunge, append, search) against each node.
func TestPythonImaplib(t *testing.T) {
	py := needTool(t, "python3")
	e := newEnv(t, nil)
	for i, addr := range e.addrs {
		host, port, _ := net.SplitHostPort(addr)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		out, err := exec.CommandContext(ctx, py, "testdata/imaplib_check.py", host, port, alice, password, fmt.Sprintf("n%d", i+1)).CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "ok n") {
			t.Fatalf("imaplib against node %d: %v\n%s", i+1, err, out)
		}
	}
}

// TestPythonImaplibCompress runs Python's imaplib with COMPRESS=DEFLATE
// (testdata/imaplib_compress.py: zlib under imaplib's reads and writes)
// against each node: the client sync-flushes or partial-flushes after each
// write, sending it whole or one byte per segment; a 300 KB APPEND, FETCH
// of it byte-exact, SEARCH, STORE, 50 NOOPs, and the responses must have
// arrived compressed.
func TestPythonImaplibCompress(t *testing.T) {
	py := needTool(t, "python3")
	e := newEnv(t, nil)
	runs := []struct {
		node       int
		flush, how string
	}{
		{0, "sync", "whole"}, {1, "sync", "bytewise"}, {2, "partial", "whole"}, {0, "partial", "bytewise"},
	}
	for i, r := range runs {
		host, port, _ := net.SplitHostPort(e.addrs[r.node])
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		tag := fmt.Sprintf("n%d%s%s", r.node+1, r.flush, r.how)
		out, err := exec.CommandContext(ctx, py, "testdata/imaplib_compress.py", host, port, alice, password, r.flush, r.how, tag).CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "ok "+tag) {
			t.Fatalf("run %d (node %d, %s flush, %s): %v\n%s", i, r.node+1, r.flush, r.how, err, out)
		}
		t.Logf("%s", strings.TrimSpace(string(out)))
	}
}

// TestCurlFetch fetches a message over imap:// with curl.
func TestCurlFetch(t *testing.T) {
	curl := needTool(t, "curl")
	e := newEnv(t, nil)
	msg := testMessage("curl", "for curl", "fetched by curl")
	e.deliver(0, alice, msg)
	e.waitAll()
	url := fmt.Sprintf("imap://%s/INBOX;UID=1", e.addrs[2])
	out, err := exec.Command(curl, "-sS", "--max-time", "30", "--user", alice+":"+password, url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	if string(out) != msg {
		t.Errorf("curl got %q, want %q", out, msg)
	}
}

// TestMbsync syncs a mailbox from node 1 into a local Maildir with mbsync,
// changes flags through node 3, syncs again, and checks the Maildir.
func TestMbsync(t *testing.T) {
	mbsync := needTool(t, "mbsync")
	e := newEnv(t, nil)
	n := 1000
	if testing.Short() {
		n = 100
	}
	deliverMany(t, e, alice, n)
	e.waitAll()

	dir := t.TempDir()
	maildir := filepath.Join(dir, "mail") + "/"
	if err := os.MkdirAll(maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.addrs[0])
	writeConf := func(port string) string {
		conf := filepath.Join(dir, "mbsyncrc")
		os.WriteFile(conf, []byte(fmt.Sprintf(`IMAPAccount test
Host %s
Port %s
User %s
Pass "%s"
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path %s
Inbox %sINBOX

Channel sync
Far :remote:
Near :local:
Patterns INBOX
Create Near
Sync All
Expunge Both
SyncState *
`, host, port, alice, password, maildir, maildir)), 0o600)
		return conf
	}
	run := func(conf string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		start := time.Now()
		out, err := exec.CommandContext(ctx, mbsync, "-c", conf, "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s", err, out)
		}
		t.Logf("mbsync of %d messages took %v", n, time.Since(start))
	}
	run(writeConf(port))
	files := func(sub string) []string {
		ents, _ := os.ReadDir(filepath.Join(maildir, "INBOX", sub))
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	if got := len(files("cur")) + len(files("new")); got != n {
		t.Fatalf("first sync: %d messages in Maildir, want %d", got, n)
	}

	// Flag changes and an expunge through node 3; the second sync (against
	// node 1 again, a different node than the writes) must carry them.
	c := login(t, e.addrs[2], alice)
	c.ok("SELECT INBOX")
	c.ok(`STORE 1:10 +FLAGS.SILENT (\Seen \Flagged)`)
	c.ok(`STORE 11 +FLAGS.SILENT (\Deleted)`)
	c.ok("EXPUNGE")
	run(writeConf(port))
	var seenFlagged, total int
	for _, sub := range []string{"cur", "new"} {
		for _, name := range files(sub) {
			total++
			if i := strings.LastIndex(name, ":2,"); i >= 0 && strings.Contains(name[i:], "F") && strings.Contains(name[i:], "S") {
				seenFlagged++
			}
		}
	}
	if total != n-1 || seenFlagged != 10 {
		t.Errorf("second sync: %d messages (want %d), %d seen+flagged (want 10)", total, n-1, seenFlagged)
	}
}

// deliverMany delivers n distinct messages to rcpt concurrently.
func deliverMany(t testing.TB, e *env, rcpt string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				msg := []byte(testMessage(fmt.Sprintf("bulk%d", i), fmt.Sprintf("bulk %d", i), "bulk body"))
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				d, err := e.c.Nodes[i%len(e.c.Nodes)].Mail().Deliver(ctx, mail.Envelope{From: "bulk@remote.test", To: []string{rcpt}}, msg, msg)
				cancel()
				if err == nil {
					err = d[0].Err
				}
				if err != nil {
					t.Errorf("deliver %d: %v", i, err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
}
