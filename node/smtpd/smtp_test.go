package smtpd_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSMTP runs the docs/TESTPLAN.md §4 SMTP/LMTP rows, the follower delivery,
// dedupe and real-client checks against one 3-node cluster. Every rejection
// also asserts that nothing was stored.
func TestSMTP(t *testing.T) {
	f := startFixture(t)
	c := f.c
	fol := f.follower(t)
	smtpAddr := c.Cfgs[fol].SMTPAddr
	lmtpAddr := c.Cfgs[fol].LMTPAddr
	user := f.users["user"]

	// nothingStored asserts user's count is still want on every node and
	// that the leader's Raft log did not grow since before.
	nothingStored := func(t *testing.T, userID uint64, want uint32, lastIndex uint64) {
		t.Helper()
		for i, got := range f.counts(t, userID) {
			if got != want {
				t.Fatalf("node %d holds %d messages, want %d", i, got, want)
			}
		}
		if lastIndex != 0 {
			if l := c.Leader(); l >= 0 && c.Nodes[l].Raft().LastIndex() != lastIndex {
				t.Fatalf("Raft log grew from %d to %d: an entry was proposed", lastIndex, c.Nodes[l].Raft().LastIndex())
			}
		}
	}
	lastIndex := func() uint64 {
		l := c.WaitLeader(5 * time.Second)
		return c.Nodes[l].Raft().LastIndex()
	}

	// The exchanges that need no more than commands and replies are
	// scripts (script_test.go, testdata/script): EHLO/LHLO capabilities,
	// AUTH refused, recipient refusals.
	t.Run("Scripts", func(t *testing.T) {
		runScripts(t, map[string]string{"smtp": smtpAddr, "lmtp": lmtpAddr})
	})

	t.Run("DeliverThroughFollower", func(t *testing.T) {
		cl := greet(t, smtpAddr)
		cl.mailTo("sender@remote.test", "user@example.test")
		cl.cmd("DATA", 354, "")
		cl.send(message("follower-1", 1000) + ".\r\n")
		cl.expect(250, "2.0.0")
		cl.cmd("QUIT", 221, "")
		f.waitCount(t, user, 1)
		c.WaitConverged(10 * time.Second)
		for i, n := range c.Nodes {
			msgs := messages(t, n, user)
			if len(msgs) != 1 {
				t.Fatalf("node %d: %d messages", i, len(msgs))
			}
			m := string(msgs[0])
			if !strings.HasPrefix(m, "Return-Path: <sender@remote.test>\r\nReceived: from client.test ([127.0.0.1])\r\n\tby "+c.Cfgs[fol].Hostname+" (Continuum) with ESMTP id ") {
				t.Fatalf("node %d: trace headers: %q", i, m[:min(len(m), 300)])
			}
			if !strings.Contains(m, "\tfor <user@example.test>;\r\n") || !strings.HasSuffix(m, message("follower-1", 1000)) {
				t.Fatalf("node %d: stored message differs: %q", i, m[:min(len(m), 400)])
			}
		}
	})

	t.Run("Chunking", func(t *testing.T) {
		before := count(t, c.Nodes[fol], user)
		cl := greet(t, smtpAddr)
		cl.mailTo("sender@remote.test", "user@example.test")
		msg := message("bdat-1", 3000)
		half := len(msg) / 2
		cl.send(fmt.Sprintf("BDAT %d\r\n%s", half, msg[:half]))
		cl.expect(250, "2.0.0")
		cl.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg)-half, msg[half:]))
		cl.expect(250, "2.0.0")
		f.waitCount(t, user, before+1)
	})

	// docs/TESTPLAN.md §4: bare LF or bare CR anywhere in DATA → 521 5.5.2, close,
	// nothing from the session stored.
	t.Run("SmugglingAndBareLineEndings", func(t *testing.T) {
		smuggled := "MAIL FROM:<evil@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
		for name, data := range map[string]string{
			"LF.LF":       "Subject: a\r\n\r\nbody\n.\n" + smuggled,
			"LF.CRLF":     "Subject: a\r\n\r\nbody\n.\r\n" + smuggled,
			"CRLF.LF":     "Subject: a\r\n\r\nbody\r\n.\n" + smuggled,
			"CR.CR":       "Subject: a\r\n\r\nbody\r.\r" + smuggled,
			"bareLFInHdr": "Subject: a\nX: b\r\n\r\nbody\r\n",
			"bareCR":      "Subject: a\r\n\r\nbo\rdy\r\n",
		} {
			t.Run(name, func(t *testing.T) {
				idx := lastIndex()
				bob, u := count(t, c.Nodes[fol], f.users["bob"]), count(t, c.Nodes[fol], user)
				cl := greet(t, smtpAddr)
				cl.mailTo("sender@remote.test", "user@example.test")
				cl.cmd("DATA", 354, "")
				cl.send(data + "\r\n.\r\nQUIT\r\n")
				cl.expect(521, "5.5.2")
				cl.expectClosed()
				nothingStored(t, user, u, idx)
				nothingStored(t, f.users["bob"], bob, idx)
			})
		}
		t.Run("BDAT", func(t *testing.T) {
			idx, u := lastIndex(), count(t, c.Nodes[fol], user)
			cl := greet(t, smtpAddr)
			cl.mailTo("sender@remote.test", "user@example.test")
			chunk := "Subject: a\r\n\r\nbody\n.\nmore\r\n"
			cl.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
			cl.expect(521, "5.5.2")
			cl.expectClosed()
			nothingStored(t, user, u, idx)
		})
	})

	// Issue 9: every bare CR or LF in DATA is answered with 5xx within a
	// second of arriving, whatever follows it or does not: the sender
	// writes the bytes up to and just past the bare line ending, then
	// (where a part 2 is given) the rest a moment later, and does not
	// close. Nothing from the session is stored. Over SMTP, LMTP and after
	// STARTTLS (the check must work above TLS too).
	t.Run("BareLineEndingAnsweredAtOnce", func(t *testing.T) {
		for _, tc := range []struct{ name, part1, part2 string }{
			{"CR.CR then CRLF.CRLF (issue 9)", "X-Test-Id: v2\r\n\r\nhi\r.\r", "\r\n.\r\n"},
			{"LF.LF, nothing after", "X-Test-Id: v3\r\n\r\nhi\n.\n", ""},
			{"line-start .CR then a letter", "X-Test-Id: v4\r\n\r\nhi\r\n.\rX", ""},
			{"CRLF.LF, nothing after", "X-Test-Id: v5\r\n\r\nhi\r\n.\n", ""},
			{"bare CR mid-line, line unfinished", "X-Test-Id: v6\r\n\r\nbo\rdy", ""},
			{"bare LF in a header", "X-Test-Id: v7\nSubject: x", ""},
			{"CR CR LF", "X-Test-Id: v8\r\n\r\nhi\r\r\n", "\r\n.\r\n"},
			{"LF.CRLF", "X-Test-Id: v9\r\n\r\nhi\n.\r\n", ""},
		} {
			for _, proto := range []string{"smtp", "lmtp", "smtp+starttls"} {
				t.Run(proto+"/"+tc.name, func(t *testing.T) {
					idx := lastIndex()
					u := count(t, c.Nodes[fol], user)
					var cl *client
					if proto == "lmtp" {
						cl = greet(t, lmtpAddr)
						cl.cmd("LHLO client.test", 250, "")
						cl.cmd("MAIL FROM:<sender@remote.test>", 250, "")
						cl.cmd("RCPT TO:<user@example.test>", 250, "")
					} else {
						cl = greet(t, smtpAddr)
						if proto == "smtp+starttls" {
							cl.cmd("EHLO client.test", 250, "")
							cl.cmd("STARTTLS", 220, "")
							cl.startTLS()
						}
						cl.mailTo("sender@remote.test", "user@example.test")
					}
					cl.cmd("DATA", 354, "")
					start := time.Now()
					cl.send(tc.part1)
					if tc.part2 != "" {
						time.Sleep(50 * time.Millisecond)
						cl.send(tc.part2)
					}
					cl.conn.SetReadDeadline(time.Now().Add(time.Second))
					code, lines, err := cl.reply()
					took := time.Since(start)
					if err != nil || code < 500 || code > 599 {
						t.Fatalf("after %v: reply %d %q, err %v; want 5xx within 1 s", took.Round(time.Millisecond), code, lines, err)
					}
					t.Logf("%d %s after %v", code, lines[len(lines)-1], took.Round(time.Millisecond))
					cl.expectClosed()
					nothingStored(t, user, u, idx)
				})
			}
		}
	})

	// docs/TESTPLAN.md §4: STARTTLS with a pipelined command: the buffered command
	// is discarded. If QUIT ran, the handshake would fail.
	t.Run("STARTTLSPipelined", func(t *testing.T) {
		cl := greet(t, smtpAddr)
		cl.cmd("EHLO client.test", 250, "")
		cl.send("STARTTLS\r\nQUIT\r\n")
		cl.expect(220, "2.0.0")
		cl.startTLS()
		caps := cl.cmd("EHLO client.test", 250, "")
		if slices.Contains(caps, "STARTTLS") {
			t.Fatalf("STARTTLS advertised inside TLS: %q", caps)
		}
		cl.cmd("NOOP", 250, "2.0.0")
		// And mail over TLS is received "with ESMTPS".
		before := count(t, c.Nodes[fol], user)
		cl.cmd("MAIL FROM:<tls@remote.test>", 250, "")
		cl.cmd("RCPT TO:<user@example.test>", 250, "")
		cl.cmd("DATA", 354, "")
		cl.send(message("tls-1", 100) + ".\r\n")
		cl.expect(250, "2.0.0")
		f.waitCount(t, user, before+1)
		msgs := messages(t, c.Nodes[fol], user)
		if last := string(msgs[len(msgs)-1]); !strings.Contains(last, "with ESMTPS id") {
			t.Fatalf("Received does not say ESMTPS: %q", last[:200])
		}
	})

	// docs/TESTPLAN.md §4: AUTH is not advertised; on loopback it is refused as
	// unsupported (the 538 case needs a non-loopback peer: TestAuthBeforeTLS).
	// docs/TESTPLAN.md §4: command line over 2 KiB; 1 GiB with no CRLF.
	t.Run("LongLine", func(t *testing.T) {
		cl := greet(t, smtpAddr)
		cl.send("EHLO " + strings.Repeat("a", 3000) + "\r\n")
		code, lines, err := cl.reply()
		if err != nil || code != 500 {
			t.Fatalf("got %d %q %v, want 500", code, lines, err)
		}
		cl.expectClosed()

		// A stream with no line end at all: the server answers 500 and
		// closes after 2 KiB, long before the client has written 1 GiB.
		cl = greet(t, smtpAddr)
		done := make(chan int64)
		go func() {
			chunk := bytes.Repeat([]byte("a"), 64<<10)
			var n int64
			for n < 1<<30 {
				w, err := cl.conn.Write(chunk)
				n += int64(w)
				if err != nil {
					break
				}
			}
			done <- n
		}()
		code, lines, err = cl.reply()
		if err != nil || code != 500 {
			t.Fatalf("got %d %q %v, want 500", code, lines, err)
		}
		if n := <-done; n >= 1<<30 {
			t.Fatalf("server read all %d bytes", n)
		}
	})

	// docs/TESTPLAN.md §4: SIZE= over the limit; DATA over the limit → 552 5.3.4,
	// no Raft entry proposed.
	t.Run("SizeLimit", func(t *testing.T) {
		idx, u := lastIndex(), count(t, c.Nodes[fol], user)
		cl := greet(t, smtpAddr)
		cl.cmd("EHLO client.test", 250, "")
		cl.cmd(fmt.Sprintf("MAIL FROM:<s@remote.test> SIZE=%d", testMaxBytes+1), 552, "5.3.4")
		cl.cmd("MAIL FROM:<s@remote.test> SIZE=1000", 250, "")
		cl.cmd("RCPT TO:<user@example.test>", 250, "")
		cl.cmd("DATA", 354, "")
		go cl.conn.Write([]byte(message("big", testMaxBytes+1000) + ".\r\n"))
		cl.expect(552, "5.3.4")
		// The session goes on.
		cl.cmd("NOOP", 250, "")
		nothingStored(t, user, u, idx)

		// Just under the limit with the trace headers pushing it over: the
		// same reply, from mail.Deliver's check.
		cl.cmd("MAIL FROM:<s@remote.test>", 250, "")
		cl.cmd("RCPT TO:<user@example.test>", 250, "")
		cl.cmd("DATA", 354, "")
		go cl.conn.Write([]byte(message("big", testMaxBytes-100) + ".\r\n"))
		cl.expect(552, "5.3.4")
		nothingStored(t, user, u, idx)
	})

	// docs/TESTPLAN.md §4: recipient 101 (limit 100) → 452 4.5.3.
	t.Run("MaxRecipients", func(t *testing.T) {
		cl := greet(t, smtpAddr)
		cl.cmd("EHLO client.test", 250, "")
		cl.cmd("MAIL FROM:<s@remote.test>", 250, "")
		var b strings.Builder
		for i := 0; i < 101; i++ {
			fmt.Fprintf(&b, "RCPT TO:<user+%d@example.test>\r\n", i)
		}
		cl.send(b.String()) // pipelined
		for i := 0; i < 100; i++ {
			cl.expect(250, "2.0.0")
		}
		cl.expect(452, "4.5.3")
		cl.cmd("RSET", 250, "")
	})

	// docs/TESTPLAN.md §4: client talks before the greeting; HTTP request.
	t.Run("TalkBeforeGreeting", func(t *testing.T) {
		for name, first := range map[string]string{
			"EHLO": "EHLO early.test\r\n",
			"HTTP": "GET / HTTP/1.1\r\nHost: mx\r\n\r\n",
		} {
			t.Run(name, func(t *testing.T) {
				cl := dial(t, smtpAddr)
				cl.send(first)
				code, lines, err := cl.reply()
				if err != nil || code/100 != 5 {
					t.Fatalf("got %d %q %v, want 5xx", code, lines, err)
				}
				cl.expectClosed()
			})
		}
		// An HTTP request after the greeting is refused the same way.
		cl := greet(t, smtpAddr)
		cl.send("POST /api HTTP/1.1\r\nHost: mx\r\n\r\n")
		code, lines, err := cl.reply()
		if err != nil || code != 554 {
			t.Fatalf("got %d %q %v, want 554", code, lines, err)
		}
		cl.expectClosed()
	})

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

	// docs/TESTPLAN.md §4: 500,000 header lines; 10,000 MIME parts; message/rfc822
	// nested 100 deep → accepted or 554 5.6.0, promptly; if refused, nothing
	// stored.
	t.Run("MIMEBombs", func(t *testing.T) {
		var headers, parts, nested strings.Builder
		headers.WriteString("Subject: many headers\r\n")
		for i := 0; i < 500000; i++ {
			headers.WriteString("X-H: v\r\n")
		}
		headers.WriteString("\r\nbody\r\n")
		parts.WriteString("Subject: parts\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n")
		for i := 0; i < 10000; i++ {
			parts.WriteString("--b\r\nContent-Type: text/plain\r\n\r\np\r\n")
		}
		parts.WriteString("--b--\r\n")
		for i := 0; i < 100; i++ {
			nested.WriteString("Subject: n\r\nContent-Type: message/rfc822\r\n\r\n")
		}
		nested.WriteString("Subject: inner\r\n\r\ninner\r\n")
		for name, data := range map[string]string{"headers": headers.String(), "parts": parts.String(), "nested": nested.String()} {
			t.Run(name, func(t *testing.T) {
				idx, u := lastIndex(), count(t, c.Nodes[fol], user)
				cl := greet(t, smtpAddr)
				cl.mailTo("s@remote.test", "user@example.test")
				cl.cmd("DATA", 354, "")
				start := time.Now()
				go cl.conn.Write([]byte(data + ".\r\n"))
				code, lines, err := cl.reply()
				if err != nil {
					t.Fatal(err)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Fatalf("took %v", d)
				}
				switch {
				case code == 250:
					f.waitCount(t, user, u+1)
				case code == 554 && strings.HasPrefix(lines[0], "5.6.0"):
					nothingStored(t, user, u, idx)
				default:
					t.Fatalf("got %d %q, want 250 or 554 5.6.0", code, lines)
				}
				t.Logf("%s: %d %s", name, code, lines[0])
			})
		}
	})

	// docs/TESTPLAN.md §4: NUL bytes → 554 5.6.0; 8-bit headers without SMTPUTF8 →
	// accepted intact.
	t.Run("NULAnd8Bit", func(t *testing.T) {
		idx, u := lastIndex(), count(t, c.Nodes[fol], user)
		cl := greet(t, smtpAddr)
		cl.mailTo("s@remote.test", "user@example.test")
		cl.cmd("DATA", 354, "")
		cl.send("Subject: nul\r\n\r\nbefore\x00after\r\n.\r\n")
		cl.expect(554, "5.6.0")
		nothingStored(t, user, u, idx)

		cl.cmd("MAIL FROM:<s@remote.test>", 250, "")
		cl.cmd("RCPT TO:<user@example.test>", 250, "")
		cl.cmd("DATA", 354, "")
		msg := "Subject: caf\xc3\xa9 \xe9t\xe9\r\nX-Test-Id: 8bit\r\n\r\nbody\r\n"
		cl.send(msg + ".\r\n")
		cl.expect(250, "2.0.0")
		f.waitCount(t, user, u+1)
		msgs := messages(t, c.Nodes[fol], user)
		if !bytes.HasSuffix(msgs[len(msgs)-1], []byte(msg)) {
			t.Fatalf("8-bit message not stored intact: %q", msgs[len(msgs)-1])
		}
	})

	// docs/TESTPLAN.md §4: LMTP, 3 recipients, one over quota → 250, 250, 452 4.2.2
	// in RCPT order; and with the full one in the middle.
	t.Run("LMTPPerRecipient", func(t *testing.T) {
		l1, l2, full := f.users["lmtp1"], f.users["lmtp2"], f.users["full"]
		cl := greet(t, lmtpAddr)
		cl.cmd("LHLO client.test", 250, "")
		for _, order := range [][]string{{"lmtp1", "lmtp2", "full"}, {"lmtp1", "full", "lmtp2"}} {
			cl.cmd("MAIL FROM:<s@remote.test>", 250, "")
			for _, r := range order {
				cl.cmd("RCPT TO:<"+r+"@example.test>", 250, "")
			}
			cl.cmd("DATA", 354, "")
			cl.send(message("lmtp-"+strings.Join(order, "-"), 5000) + ".\r\n")
			for _, r := range order {
				lines := cl.expect(map[bool]int{true: 452, false: 250}[r == "full"], map[bool]string{true: "4.2.2", false: "2.0.0"}[r == "full"])
				if !strings.Contains(lines[0], "<"+r+"@example.test>") {
					t.Fatalf("reply for %s names %q", r, lines[0])
				}
			}
		}
		f.waitCount(t, l1, 2)
		f.waitCount(t, l2, 2)
		f.waitCount(t, full, 0)
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

	// SMTP with one recipient over quota and one not: not 250 (the full one
	// would be lost silently), a temporary failure; the retry stores no
	// second copy for the other.
	t.Run("SMTPPartialIsTemporary", func(t *testing.T) {
		carol := f.users["carol"]
		before := count(t, c.Nodes[fol], carol)
		msg := message("partial", 5000) + ".\r\n"
		for attempt := 0; attempt < 2; attempt++ {
			cl := greet(t, smtpAddr)
			cl.cmd("EHLO client.test", 250, "")
			cl.cmd("MAIL FROM:<s@remote.test>", 250, "")
			cl.cmd("RCPT TO:<carol@example.test>", 250, "")
			cl.cmd("RCPT TO:<full@example.test>", 250, "")
			cl.cmd("DATA", 354, "")
			cl.send(msg)
			cl.expect(451, "4.3.0")
		}
		f.waitCount(t, carol, before+1)
	})

	// F8: the same bytes at node 1, then retried at node 2 → 250 twice,
	// one stored copy.
	t.Run("DedupeAcrossNodes", func(t *testing.T) {
		d := f.users["dedupe"]
		msg := message("dedupe-1", 2000) + ".\r\n"
		for _, i := range []int{0, 1} {
			cl := greet(t, c.Cfgs[i].SMTPAddr)
			cl.mailTo("retry@remote.test", "dedupe@example.test")
			cl.cmd("DATA", 354, "")
			cl.send(msg)
			cl.expect(250, "2.0.0")
		}
		f.waitCount(t, d, 1)
		c.WaitConverged(10 * time.Second)
		f.waitCount(t, d, 1)
	})

	// docs/TESTPLAN.md §6: real clients through a follower.
	t.Run("PythonSmtplib", func(t *testing.T) {
		py := needTool(t, "python3")
		host, port, _ := net.SplitHostPort(smtpAddr)
		script := `
import smtplib, sys
from email.message import EmailMessage
m = EmailMessage()
m["From"] = "py@remote.test"; m["To"] = "py@example.test"; m["Subject"] = "from smtplib"
m["X-Test-Id"] = "python-1"
m.set_content("hello from python\n" * 50)
with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20) as s:
    s.ehlo("python.test")
    assert s.has_extn("smtputf8") and s.has_extn("chunking"), s.esmtp_features
    s.starttls()
    s.ehlo("python.test")
    refused = s.send_message(m)
    assert not refused, refused
    try:
        s.sendmail("py@remote.test", ["nobody@example.test"], "Subject: x\r\n\r\nx\r\n")
        sys.exit("unknown user accepted")
    except smtplib.SMTPRecipientsRefused as e:
        assert e.recipients["nobody@example.test"][0] == 550, e.recipients
`
		out, err := exec.Command(py, "-c", script, host, port).CombinedOutput()
		if err != nil {
			t.Fatalf("python: %v\n%s", err, out)
		}
		f.waitCount(t, f.users["py"], 1)
		for i, n := range c.Nodes {
			if m := messages(t, n, f.users["py"]); !bytes.Contains(m[0], []byte("X-Test-Id: python-1")) || !bytes.Contains(m[0], []byte("with ESMTPS")) {
				t.Fatalf("node %d: %q", i, m[0][:min(300, len(m[0]))])
			}
		}
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
		f.waitCount(t, f.users["swaks"], 1)
		for i, n := range c.Nodes {
			if m := messages(t, n, f.users["swaks"]); !bytes.Contains(m[0], []byte("X-Test-Id: swaks-1")) {
				t.Fatalf("node %d: %q", i, m[0])
			}
		}
	})
}
