package smtpd_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	netmail "net/mail"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/nodetest"
)

// TestPostfixRelayFailover is docs/TESTPLAN.md §6 / issue 3 "Real clients": a real
// Postfix (the Debian package, in a private instance this test configures)
// relays 100 messages for example.test to the cluster with two nodes as an
// ordered next-hop list; the first next hop is stopped once about half the
// messages are stored. Postfix must fail over to the second next hop,
// retry whatever was in flight, and every message must be stored exactly
// once on every surviving node (the dedupe table absorbs retries of
// messages committed before the node died).
func TestPostfixRelayFailover(t *testing.T) {
	needPostfix(t)

	const total = 100
	f := startFixture(t)
	c := f.c
	uid := f.users["user"]
	// Next hops in order: node 1 (index 0, the bootstrap node and usually
	// the leader, so stopping it also forces an election), then node 2.
	first, second := 0, 1
	pf := newPostfix(t, c, []string{c.Cfgs[first].SMTPAddr, c.Cfgs[second].SMTPAddr})
	pf.start()

	// Inject in one burst in the background: Postfix then runs several
	// deliveries to node 1 at once, so some are in flight (some past the
	// end of DATA) when it stops.
	injected := make(chan error, 1)
	go func() { injected <- pf.inject(total, 0) }()

	// Stop the first next hop once about half are stored, as seen on the
	// node that is neither next hop.
	watch := c.Nodes[2]
	deadline := time.Now().Add(60 * time.Second)
	var atStop uint32
	for {
		if n := count(t, watch, uid); n >= total/2 {
			atStop = n
			break
		}
		select {
		case err := <-injected:
			if err != nil {
				t.Fatalf("injecting into postfix: %v", err)
			}
			injected <- nil
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d messages stored after 60s before the stop", count(t, watch, uid), total)
		}
		time.Sleep(5 * time.Millisecond)
	}
	stopAt := time.Now()
	wasLeader := c.Leader() == first
	c.StopNode(first)
	t.Logf("stopped node %s (first next hop, leader=%v) with %d of %d stored", c.Cfgs[first].ID, wasLeader, atStop, total)
	if atStop >= total {
		t.Fatalf("all %d messages were stored before the stop: nothing was left to fail over", atStop)
	}
	if err := <-injected; err != nil {
		t.Fatalf("injecting into postfix: %v", err)
	}

	// Postfix's queue drains and every survivor holds all messages.
	var queued int
	var counts []uint32
	deadline = time.Now().Add(120 * time.Second)
	for {
		queued = pf.queued()
		counts = f.counts(t, uid)
		done := queued == 0
		for _, n := range counts {
			done = done && n >= total
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 120s: %d messages still in the postfix queue, INBOX counts on survivors %v (want %d)", queued, counts, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	drained := time.Since(stopAt)
	c.WaitConverged(20 * time.Second)

	// What Postfix says it did. Its relay= field does not tell which node
	// acked: Postfix 3.7 logs a reused connection with the first next
	// hop's port even when it leads to the second. The stored copies' own
	// Received lines say which node took each message in.
	log := pf.log()
	sentIDs := map[string]int{} // postfix queue ID → status=sent lines
	for _, m := range regexp.MustCompile(`(\w+): to=<user@example\.test>, relay=[^,]*, .*status=sent `).FindAllStringSubmatch(log, -1) {
		sentIDs[m[1]]++
	}
	sent := 0
	for _, k := range sentIDs {
		sent += k
	}
	// Attempts whose outcome Postfix cannot know, so it sends the message
	// again: the connection was cut after the end of DATA (only the stop
	// of node 1 does that), or a node said 451 at the end of DATA (an
	// outcome lost in the election).
	cutAfterData := map[string]bool{}
	for _, m := range regexp.MustCompile(`(\w+): lost connection with .* while sending end of data`).FindAllStringSubmatch(log, -1) {
		cutAfterData[m[1]] = true
	}
	unknownOutcome := len(regexp.MustCompile(`\w+: host .* said: 451 .*in reply to end of DATA command`).FindAllString(log, -1))
	deferred := strings.Count(log, "status=deferred")

	nodeOfHost := map[string]string{} // hostname in Received → node ID
	for _, cfg := range c.Cfgs {
		nodeOfHost[cfg.Hostname] = cfg.ID
	}
	byRE := regexp.MustCompile(`\bby (\S+) \(Continuum\)`)
	queueIDRE := regexp.MustCompile(`\(Postfix\) with \S+ id (\w+)`)
	n1, n2 := c.Cfgs[first].ID, c.Cfgs[second].ID

	// Every stored message on every survivor, by X-Test-Id; and, from the
	// first survivor's copies (replicated, so the same everywhere), which
	// node took each message in.
	storedBy := map[string]int{} // node ID → messages it took in
	dedupeHits := -1
	for i, n := range c.Nodes {
		if n == nil {
			continue
		}
		seen := map[string]int{}
		stored := 0
		checkOrigin := dedupeHits < 0
		if checkOrigin {
			dedupeHits = 0
		}
		for _, raw := range messages(t, n, uid) {
			stored++
			m, err := netmail.ReadMessage(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("node %s: unparseable stored message: %v", c.Cfgs[i].ID, err)
			}
			id := m.Header.Get("X-Test-Id")
			seen[id]++
			if !checkOrigin {
				continue
			}
			var by, qid string
			for _, r := range m.Header["Received"] {
				if sm := byRE.FindStringSubmatch(r); sm != nil && by == "" {
					by = nodeOfHost[sm[1]]
				}
				if sm := queueIDRE.FindStringSubmatch(r); sm != nil {
					qid = sm[1]
				}
			}
			storedBy[by]++
			switch {
			case by != n1 && by != n2:
				t.Errorf("%s: taken in by %q, which is not a next hop", id, by)
			case qid == "" || sentIDs[qid] != 1:
				t.Errorf("%s: postfix queue ID %q has %d status=sent lines, want 1", id, qid, sentIDs[qid])
			case by == n1 && cutAfterData[qid]:
				// Node 1 stored it, then died before its 250 reached
				// Postfix, which sent it again after the stop, so to
				// node 2: that 250 came from the dedupe table.
				dedupeHits++
			}
		}
		missing, dup, unknown := 0, 0, 0
		for k := 0; k < total; k++ {
			switch seen[testID(k)] {
			case 0:
				missing++
			case 1:
			default:
				dup += seen[testID(k)] - 1
			}
			delete(seen, testID(k))
		}
		for _, v := range seen {
			unknown += v
		}
		t.Logf("node %s: stored %d, distinct ids %d, missing %d, duplicated %d, unknown %d",
			c.Cfgs[i].ID, stored, total-missing, missing, dup, unknown)
		if stored != total || missing != 0 || dup != 0 || unknown != 0 {
			t.Errorf("node %s: want %d messages each exactly once; stored %d, missing %d, duplicated %d, unknown %d",
				c.Cfgs[i].ID, total, stored, missing, dup, unknown)
		}
	}
	t.Logf("postfix: %d acked with status=sent, %d deferrals, %d cut after the end of DATA by the stop, "+
		"%d answered 451 at the end of DATA; taken in by %s %d, by %s %d; %d sent again after the stop "+
		"though %s had stored them (answered 250 from the dedupe table); queue drained %.1fs after the stop",
		sent, deferred, len(cutAfterData), unknownOutcome, n1, storedBy[n1], n2, storedBy[n2], dedupeHits, n1, drained.Seconds())
	if sent != total || len(sentIDs) != total {
		t.Errorf("postfix logged %d status=sent deliveries for %d queue IDs, want %d", sent, len(sentIDs), total)
	}
	if storedBy[n2] == 0 {
		t.Errorf("nothing went to the second next hop (%s): the failover was not exercised", c.Cfgs[second].SMTPAddr)
	}
}

func testID(k int) string { return fmt.Sprintf("postfix-%03d", k) }

// needPostfix requires the Debian postfix package and root (Postfix's
// master runs as root and drops to the postfix user).
func needPostfix(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("postfix"); err != nil {
		if _, err := os.Stat("/usr/sbin/postfix"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("postfix not installed (.ci/run installs the Debian package)")
			}
			t.Skip("postfix not installed (apt-get install postfix)")
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("a private Postfix instance must be started as root (CI runs as root)")
	}
}

// postfixBin finds one of Postfix's commands (in /usr/sbin, which may not
// be on a non-root PATH).
func postfixBin(t *testing.T, name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found", name)
	}
	return p
}

// postfixInstance is a private Postfix: its own config, queue and data
// directories under one directory, nothing shared with a system instance.
type postfixInstance struct {
	t       *testing.T
	dir     string // kept on failure
	conf    string
	queue   string
	maillog string
	smtpd   string // injection listener
	master  *os.Process
	exited  chan error
	output  lockedOutput // master's stdout and stderr
}

// newPostfix writes the instance's main.cf, master.cf and transport map:
// all mail for example.test goes to hops, in order.
func newPostfix(t *testing.T, c *nodetest.Cluster, hops []string) *postfixInstance {
	t.Helper()
	// Not t.TempDir: that is removed even when the test fails, and the
	// postfix user must be able to reach the queue (TempDir's parent is
	// 0700). Removed on success (unless KEEP_POSTFIX is set), kept with the
	// log on failure.
	dir, err := os.MkdirTemp("", "continuum-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &postfixInstance{
		t:       t,
		dir:     dir,
		conf:    filepath.Join(dir, "etc"),
		queue:   filepath.Join(dir, "spool"),
		maillog: filepath.Join(dir, "maillog"),
		smtpd:   nodetest.FreeAddr(t),
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			c.DumpLogs()
			os.CopyFS(filepath.Join(dir, "node-logs"), os.DirFS(filepath.Join(c.Dir, "logs")))
			if out := p.output.String(); out != "" {
				t.Logf("postfix master's output:\n%s", out)
			}
			t.Logf("postfix instance and log kept in %s (maillog: %s, node logs: %s)", dir, p.maillog, filepath.Join(dir, "node-logs"))
			if b, err := os.ReadFile(p.maillog); err == nil {
				lines := strings.Split(strings.TrimSpace(string(b)), "\n")
				t.Logf("last lines of the postfix log:\n%s", strings.Join(lines[max(0, len(lines)-40):], "\n"))
			}
			return
		}
		if os.Getenv("KEEP_POSTFIX") != "" {
			t.Logf("KEEP_POSTFIX: postfix instance and log kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	for _, d := range []string{p.conf, p.queue} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	var nexthops []string
	for _, h := range hops {
		host, port, _ := net.SplitHostPort(h)
		nexthops = append(nexthops, fmt.Sprintf("[%s]:%s", host, port))
	}
	transport := "example.test smtp:" + strings.Join(nexthops, ", ") + "\n"
	if err := os.WriteFile(filepath.Join(p.conf, "transport"), []byte(transport), 0o644); err != nil {
		t.Fatal(err)
	}

	host, port, _ := net.SplitHostPort(p.smtpd)
	// The services this relay needs, none chrooted; postlog writes
	// maillog_file (Postfix ≥ 3.4).
	master := fmt.Sprintf(`%s:%s inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, host, port)
	if err := os.WriteFile(filepath.Join(p.conf, "master.cf"), []byte(master), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "main.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	settings := []string{
		"compatibility_level=3.6",
		"queue_directory=" + p.queue,
		"data_directory=" + filepath.Join(dir, "data"),
		"maillog_file=" + p.maillog,
		"maillog_file_prefixes=" + dir,
		"myhostname=relay.postfix.test",
		"mydomain=postfix.test",
		"myorigin=postfix.test",
		"inet_interfaces=loopback-only",
		"inet_protocols=ipv4",
		"mynetworks=127.0.0.0/8",
		// Nothing is delivered locally: example.test is relayed, every
		// other domain refused.
		"mydestination=",
		"local_recipient_maps=",
		"local_transport=error:no local delivery",
		"alias_maps=",
		"alias_database=",
		"relay_domains=example.test",
		"relay_recipient_maps=",
		"default_transport=error:only example.test is relayed",
		"transport_maps=texthash:" + filepath.Join(p.conf, "transport"),
		"smtpd_relay_restrictions=permit_mynetworks, reject_unauth_destination",
		"smtpd_peername_lookup=no",
		"smtp_dns_support_level=disabled",
		"smtp_host_lookup=native",
		"smtp_tls_security_level=none",
		"smtpd_tls_security_level=none",
		// Retry fast.
		"minimal_backoff_time=1s",
		"maximal_backoff_time=2s",
		"queue_run_delay=1s",
		"smtp_connect_timeout=2s",
		"maximal_queue_lifetime=1h",
		"bounce_queue_lifetime=1h",
		"delay_warning_time=0",
	}
	args := append([]string{"-c", p.conf, "-e"}, settings...)
	if out, err := exec.Command(postfixBin(t, "postconf"), args...).CombinedOutput(); err != nil {
		t.Fatalf("postconf: %v\n%s", err, out)
	}
	if out, err := exec.Command(postfixBin(t, "postconf"), "-d", "mail_version").CombinedOutput(); err == nil {
		v := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "mail_version ="))
		if !versionAtLeast(v, 3, 5) {
			t.Fatalf("postfix %s: a next-hop list needs postfix ≥ 3.5", v)
		}
		t.Logf("postfix %s in %s, injection at %s, next hops %s", v, dir, p.smtpd, strings.Join(nexthops, ", "))
	}
	return p
}

func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// lockedOutput is a bytes.Buffer safe for a child's two output pipes.
type lockedOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedOutput) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedOutput) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// postfix runs the postfix command on this instance.
func (p *postfixInstance) postfix(args ...string) ([]byte, error) {
	return exec.Command(postfixBin(p.t, "postfix"), append([]string{"-c", p.conf}, args...)...).CombinedOutput()
}

// start checks the instance (post-install creates the queue directories)
// and runs its master daemon in the foreground as a child of the test
// process, which is what `postfix start` does minus the detaching: a test
// binary killed by -timeout or a signal runs no cleanup, and the parent
// death signal then takes Postfix down with it instead of leaving a master
// running on a deleted queue.
func (p *postfixInstance) start() {
	t := p.t
	t.Helper()
	if out, err := p.postfix("check"); err != nil {
		t.Fatalf("postfix check: %v\n%s", err, out)
	}
	master := "/usr/lib/postfix/sbin/master"
	if out, err := exec.Command(postfixBin(t, "postconf"), "-c", p.conf, "-h", "daemon_directory").Output(); err == nil {
		master = filepath.Join(strings.TrimSpace(string(out)), "master")
	}
	started := make(chan error, 1)
	p.exited = make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that forked exits, not the
		// process: keep this goroutine on its thread until master exits.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		cmd := exec.Command(master, "-c", p.conf)
		cmd.Stdout, cmd.Stderr = &p.output, &p.output
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		p.master = cmd.Process
		started <- nil
		p.exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		t.Fatalf("start %s: %v", master, err)
	}
	// Ready when its smtpd answers.
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", p.smtpd, time.Second)
		if err == nil {
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			line, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if strings.HasPrefix(line, "220") {
				return
			}
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("postfix master exited: %v\n%s", err, p.output.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix smtpd at %s not answering: %v", p.smtpd, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop stops the master daemon it started (SIGTERM, as `postfix stop`
// sends; it stops its children) and waits for it.
func (p *postfixInstance) stop() {
	if p.master == nil {
		return
	}
	p.master.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.t.Logf("postfix master did not stop in 10s: killed")
		p.master.Kill()
		<-p.exited
	}
	p.master = nil
}

// inject submits n messages to the instance's smtpd, one SMTP session,
// pausing between messages.
func (p *postfixInstance) inject(n int, pause time.Duration) error {
	cl, err := smtp.Dial(p.smtpd)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Hello("injector.test"); err != nil {
		return err
	}
	for k := 0; k < n; k++ {
		if err := cl.Mail("sender@remote.test"); err != nil {
			return fmt.Errorf("message %d: MAIL: %w", k, err)
		}
		if err := cl.Rcpt("user@example.test"); err != nil {
			return fmt.Errorf("message %d: RCPT: %w", k, err)
		}
		w, err := cl.Data()
		if err != nil {
			return fmt.Errorf("message %d: DATA: %w", k, err)
		}
		if _, err := w.Write([]byte(message(testID(k), 2048))); err != nil {
			return fmt.Errorf("message %d: %w", k, err)
		}
		if err := w.Close(); err != nil {
			return fmt.Errorf("message %d: end of DATA: %w", k, err)
		}
		time.Sleep(pause)
	}
	return cl.Quit()
}

// queued is the number of messages in the instance's queue.
func (p *postfixInstance) queued() int {
	out, err := exec.Command(postfixBin(p.t, "postqueue"), "-c", p.conf, "-j").CombinedOutput()
	if err != nil {
		p.t.Fatalf("postqueue -j: %v\n%s", err, out)
	}
	n := 0
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}

// log is the instance's maillog so far.
func (p *postfixInstance) log() string {
	b, _ := os.ReadFile(p.maillog)
	return string(b)
}
