package imapd_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
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
// write, sending it whole or the end of each flush one byte per segment;
// a 204 KB APPEND, FETCH of it byte-exact, SEARCH, STORE, 50 NOOPs, and
// the responses must have arrived compressed.
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
// changes flags through node 3, syncs again, and checks the Maildir; then
// adds messages and a flag in the Maildir and syncs them up. mbsync uses
// COMPRESS=DEFLATE when offered (and ends each command with
// Z_PARTIAL_FLUSH): its protocol log (-Dn) must show COMPRESS DEFLATE
// accepted on every run.
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
		out, err := exec.CommandContext(ctx, mbsync, "-Dn", "-c", conf, "-a").CombinedOutput()
		if err != nil {
			t.Fatalf("mbsync: %v\n%s\n...\n%s", err, out[:min(len(out), 5000)], out[max(0, len(out)-2000):])
		}
		t.Logf("mbsync of %d messages took %v", n, time.Since(start))
		// isync's protocol log: ">>> 3 COMPRESS DEFLATE" then "3 OK ...".
		var tag string
		for _, l := range strings.Split(string(out), "\n") {
			if i := strings.Index(l, ">>> "); i >= 0 && strings.HasSuffix(strings.TrimSpace(l), " COMPRESS DEFLATE") {
				tag = strings.Fields(l[i+4:])[0]
			} else if tag != "" && strings.HasPrefix(l, tag+" ") {
				if !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("mbsync's COMPRESS DEFLATE answered %q", l)
				}
				t.Logf("mbsync: %q; compressed from here on", l)
				return
			}
		}
		t.Fatalf("mbsync did not switch on COMPRESS DEFLATE (tag %q); its log begins:\n%s", tag, out[:min(len(out), 3000)])
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

	// The other way: two new messages (one of 600 KB, half of it
	// incompressible) and a flag set in the Maildir go up through the
	// compressed stream; node 3 must see them.
	rnd := make([]byte, 225<<10)
	rand.New(rand.NewSource(7)).Read(rnd)
	bigBody := strings.Repeat("a compressible line from the maildir\r\n", 8000) + base64.StdEncoding.EncodeToString(rnd)
	local := map[string]string{
		"up-small": testMessage("up1", "from the maildir", "written locally"),
		"up-big":   testMessage("up2", "big from the maildir", bigBody),
	}
	for name, msg := range local {
		if err := os.WriteFile(filepath.Join(maildir, "INBOX", "new", "1700000000."+name+".local"), []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A message still in new/ (unseen, unflagged) moved to cur/ with F.
	unseen := files("new")
	sort.Strings(unseen)
	var flagged string
	for _, name := range unseen {
		if strings.HasPrefix(name, "1700000000.") {
			continue // the two just written
		}
		base, _, _ := strings.Cut(name, ":2,")
		flagged = base + ":2,F"
		if err := os.Rename(filepath.Join(maildir, "INBOX", "new", name), filepath.Join(maildir, "INBOX", "cur", flagged)); err != nil {
			t.Fatal(err)
		}
		break
	}
	if flagged == "" {
		t.Fatalf("no unseen message in the Maildir to flag (new/ %d, cur/ %d)", len(unseen), len(files("cur")))
	}
	run(writeConf(port))
	c.ok("NOOP")
	for _, subj := range []string{"from the maildir", "big from the maildir"} {
		u := c.ok("UID SEARCH SUBJECT %q", subj)
		if len(u) != 1 || len(strings.Fields(u[0])) < 3 {
			t.Fatalf("after the upward sync, SEARCH SUBJECT %q at node 3 = %q", subj, u)
		}
	}
	uids := strings.Fields(c.ok("UID SEARCH SUBJECT %q", "big from the maildir")[0])
	// mbsync adds an X-TUID header line (its own tracking) on upload.
	u := c.ok("UID FETCH %s BODY.PEEK[]", uids[len(uids)-1])
	re := regexp.MustCompile(`(?m)^X-TUID: [^\r\n]*\r\n`)
	if len(u) != 1 || !strings.HasSuffix(re.ReplaceAllString(u[0], ""), local["up-big"]+")") {
		t.Errorf("the 600 KB message synced up is not byte-exact at node 3 (less mbsync's X-TUID line; %d lines, X-TUID found %v)", len(u), len(u) == 1 && re.MatchString(u[0]))
	}
	if u := c.ok("UID SEARCH FLAGGED"); len(u) != 1 || len(strings.Fields(u[0]))-2 != 11 {
		t.Errorf("after flagging one message in the Maildir: UID SEARCH FLAGGED at node 3 = %q, want 11 UIDs", u)
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
