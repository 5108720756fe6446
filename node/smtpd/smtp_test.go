package smtpd_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSMTP runs the docs/TESTPLAN.md §4 SMTP/LMTP rows, the follower delivery,
// dedupe and real-client checks against one 3-node cluster. The exchanges
// are scripts (script_test.go, testdata/script/*.txt), each refusal with a
// check that nothing was stored and no Raft entry proposed; what stays in
// Go needs timing, concurrency or an external program.
func TestSMTP(t *testing.T) {
	f := startFixture(t)
	c := f.c
	fol := f.follower(t)
	smtpAddr := c.Cfgs[fol].SMTPAddr
	lmtpAddr := c.Cfgs[fol].LMTPAddr

	t.Run("Scripts", func(t *testing.T) { runScripts(t, f) })

	// docs/TESTPLAN.md §4: slow client → 421 4.4.2 after the timeout.
	t.Run("SlowClient", func(t *testing.T) {
		cl := greet(t, smtpAddr)
		start := time.Now()
		go func() {
			for _, b := range []byte("EHLO slow") {
				if _, err := cl.conn.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(time.Second) // the fault being injected: a slow client
			}
		}()
		cl.expect(421, "4.4.2")
		if d := time.Since(start); d < testTimeout || d > testTimeout+2*time.Second {
			t.Fatalf("timed out after %v, want about %v", d, testTimeout)
		}
		cl.expectClosed()
	})

	// docs/TESTPLAN.md §4: too many connections from one address → 421 4.7.0.
	t.Run("ConnectionsPerAddress", func(t *testing.T) {
		var held []*client
		for i := 0; i < testMaxConns; i++ {
			held = append(held, greet(t, smtpAddr))
		}
		cl := dial(t, smtpAddr)
		cl.expect(421, "4.7.0")
		cl.expectClosed()
		// Closing one frees a slot.
		held[0].cmd("QUIT", 221, "")
		c.Eventually(5*time.Second, "a free connection slot", func() bool {
			cl := dial(t, smtpAddr)
			code, _, _ := cl.reply()
			cl.conn.Close()
			return code == 220
		})
		for _, h := range held[1:] {
			h.conn.Close()
		}
	})

	// Issue 9: LMTP has its own limits, no per-address cap by default (the
	// fixture caps SMTP at 20 per address): 256 concurrent sessions from
	// one address are all greeted 220, and all deliver.
	t.Run("LMTP256FromOneAddress", func(t *testing.T) {
		const sessions = 256
		many := f.users["lmtpmany"]
		start := time.Now()
		var greeted, delivered atomic.Int32
		var all, ready sync.WaitGroup
		ready.Add(sessions)
		release := make(chan struct{})
		errs := make(chan error, sessions)
		for i := range sessions {
			all.Add(1)
			go func() {
				defer all.Done()
				conn, err := net.DialTimeout("tcp", lmtpAddr, 10*time.Second)
				if err != nil {
					ready.Done()
					errs <- err
					return
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(60 * time.Second))
				cl := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
				code, lines, err := cl.reply()
				if code == 220 {
					greeted.Add(1)
				}
				ready.Done()
				if err != nil || code != 220 {
					errs <- fmt.Errorf("session %d greeted %d %q: %v", i, code, lines, err)
					return
				}
				<-release // every session is open before any delivers
				for _, step := range []struct {
					send string
					want int
				}{
					{"LHLO client.test\r\n", 250}, {"MAIL FROM:<s@remote.test>\r\n", 250},
					{"RCPT TO:<lmtpmany@example.test>\r\n", 250}, {"DATA\r\n", 354},
					{message(fmt.Sprintf("lmtp256-%d", i), 2000) + ".\r\n", 250},
				} {
					if _, err := io.WriteString(conn, step.send); err != nil {
						errs <- fmt.Errorf("session %d: %v", i, err)
						return
					}
					if code, lines, err := cl.reply(); err != nil || code != step.want {
						errs <- fmt.Errorf("session %d: %q: %d %q %v", i, strings.Fields(step.send)[0], code, lines, err)
						return
					}
				}
				delivered.Add(1)
				io.WriteString(conn, "QUIT\r\n")
			}()
		}
		ready.Wait()
		close(release)
		all.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		t.Logf("%d concurrent LMTP sessions from one address: %d greeted 220, %d delivered, in %v", sessions, greeted.Load(), delivered.Load(), time.Since(start).Round(time.Millisecond))
		if greeted.Load() != sessions || delivered.Load() != sessions {
			t.Fatalf("greeted %d, delivered %d, want %d each", greeted.Load(), delivered.Load(), sessions)
		}
		f.waitCount(t, many, sessions)
	})

	// docs/TESTPLAN.md §6: real clients through a follower.
	t.Run("PythonSmtplib", func(t *testing.T) {
		py := needTool(t, "python3")
		host, port, _ := net.SplitHostPort(smtpAddr)
		out, err := exec.Command(py, "testdata/send_with_smtplib.py", host, port).CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		f.storedEverywhere(t, "py", "X-Test-Id: python-1", "with ESMTPS")
	})

	t.Run("Swaks", func(t *testing.T) {
		swaks := needTool(t, "swaks")
		out, err := exec.Command(swaks, "--server", smtpAddr, "--helo", "swaks.test",
			"--from", "swaks@remote.test", "--to", "swaks@example.test",
			"--header", "X-Test-Id: swaks-1", "--body", "hello from swaks", "--timeout", "20").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "<-  250 2.0.0 OK") {
			t.Fatalf("swaks transcript has no 250 after DATA:\n%s", out)
		}
		f.storedEverywhere(t, "swaks", "X-Test-Id: swaks-1")
	})
}

// storedEverywhere waits until the user holds one message on every node
// and checks that each node's copy contains every one of want.
func (f *fixture) storedEverywhere(t *testing.T, user string, want ...string) {
	t.Helper()
	f.waitCount(t, f.users[user], 1)
	for i, n := range f.c.Nodes {
		m := messages(t, n, f.users[user])[0]
		for _, w := range want {
			if !bytes.Contains(m, []byte(w)) {
				t.Fatalf("node %d: %s's message lacks %q: %q", i, user, w, m[:min(300, len(m))])
			}
		}
	}
}
