package smtpd_test

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// Script-driven protocol exchanges (cockroachdb/datadriven, as pebble's
// tests): testdata/script/*.txt hold sessions against the fixture's
// nodes and checks of what they stored. `go test -run TestSMTP/Scripts
// -rewrite` rewrites the expected output; review the diff.
//
// Directives:
//
//	session proto=smtp|lmtp [node=N] [full] [nogreeting]
//	  A connection to the follower (or node N), the greeting read first
//	  unless nogreeting. One step per input line, each echoed as "> step"
//	  and followed by what it read:
//	    VERB args            send the line and CRLF, print the reply
//	    send "…"*N "…"       write Go-quoted strings (each repeated N
//	                         times), no reply read
//	    message ID SIZE      write the test message (helpers_test.go's
//	                         message) and the final ".CRLF"
//	    pipeline N LINE      write LINE N times in one batch ({i} is the
//	                         0-based index), then read and print N replies
//	    reply [within=DUR] [text]   read one reply (within DUR, else the
//	                         30 s session deadline); text prints its text
//	    replies N            read N replies
//	    tls                  TLS handshake (after STARTTLS's 220)
//	    sleep DUR            wait
//	    closed               print whether the server closed the connection
//	    flood N              write N bytes with no line end, in the
//	                         background, until the server stops reading
//	    flooded              print whether the server stopped the flood
//	  Writes go out in order from a background writer, so a reply can be
//	  read while a large write is still going (the server may answer
//	  before it has read everything). A reply prints as its code and,
//	  when it has one, its enhanced status code; runs of equal replies as
//	  one line "×N"; with full, the lines after the first of a multi-line
//	  reply (EHLO's capabilities).
//
//	mark
//	  Remember every user's message count on every node, and the leader's
//	  last Raft index.
//
//	stored USER=DELTA…
//	  Wait (15 s) until each USER's count on every node is its mark plus
//	  DELTA, and until the nodes converge; print each user's change and
//	  whether the Raft log grew since the mark (a refusal proposes nothing).
//
//	last-message user=USER [body=ID:SIZE]
//	  The user's last stored message: whether every node holds the same
//	  bytes, its trace fields (Return-Path, Received) with the id and date
//	  masked and the last session's host name as <host>, then the rest:
//	  "message(ID, SIZE)" when it is that test message, else quoted.
func runScripts(t *testing.T, f *fixture) {
	datadriven.Walk(t, "testdata/script", func(t *testing.T, path string) {
		s := &script{f: f, node: f.follower(t)}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			var out strings.Builder
			switch d.Cmd {
			case "session":
				s.session(t, d, &out)
			case "mark":
				s.markCounts(t)
			case "stored":
				s.stored(t, d, &out)
			case "last-message":
				s.lastMessage(t, d, &out)
			default:
				d.Fatalf(t, "unknown directive %q", d.Cmd)
			}
			return out.String()
		})
	})
}

type script struct {
	f      *fixture
	node   int                 // of the last session
	counts map[string][]uint32 // mark: user → count per node
	index  uint64              // mark: the leader's last index
}

// conn is a session's connection with its background writer.
type conn struct {
	*client
	written chan struct{} // closed when the last queued write is done
	flood   chan int64    // bytes a flood wrote
	floodN  int64         // bytes it was to write
}

// queue writes with the writer goroutine, after every earlier write.
// Write errors are not reported: a server may close while data is still
// coming, and what it said before is what the script checks.
func (c *conn) queue(write func(io.Writer) error) {
	prev, done := c.written, make(chan struct{})
	c.written = done
	w := c.conn // the connection now: tls waits for writes before it swaps
	go func() {
		<-prev
		_ = write(w)
		close(done)
	}()
}

func (s *script) session(t *testing.T, d *datadriven.TestData, out *strings.Builder) {
	var proto string
	d.ScanArgs(t, "proto", &proto)
	s.node = s.f.follower(t)
	if d.HasArg("node") {
		d.ScanArgs(t, "node", &s.node)
	}
	addr := map[string]string{"smtp": s.f.c.Cfgs[s.node].SMTPAddr, "lmtp": s.f.c.Cfgs[s.node].LMTPAddr}
	if addr[proto] == "" {
		d.Fatalf(t, "proto %q: want smtp or lmtp", proto)
	}
	c := &conn{client: dial(t, addr[proto]), written: make(chan struct{})}
	close(c.written)
	full := d.HasArg("full")
	if !d.HasArg("nogreeting") {
		printReplies(out, c.client, 1, full)
	}
	for _, step := range strings.Split(d.Input, "\n") {
		fmt.Fprintf(out, "> %s\n", step)
		verb, rest, _ := strings.Cut(step, " ")
		switch verb {
		case "send":
			data := sendArgs(t, d, rest)
			c.queue(func(w io.Writer) error { _, err := io.WriteString(w, data); return err })
		case "message":
			var id string
			var size int
			if _, err := fmt.Sscan(rest, &id, &size); err != nil {
				d.Fatalf(t, "message ID SIZE: %v", err)
			}
			data := message(id, size) + ".\r\n"
			c.queue(func(w io.Writer) error { _, err := io.WriteString(w, data); return err })
		case "pipeline":
			n, line, _ := strings.Cut(rest, " ")
			count, err := strconv.Atoi(n)
			if err != nil {
				d.Fatalf(t, "pipeline N LINE: %v", err)
			}
			var b strings.Builder
			for i := range count {
				b.WriteString(strings.ReplaceAll(line, "{i}", strconv.Itoa(i)) + "\r\n")
			}
			c.queue(func(w io.Writer) error { _, err := io.WriteString(w, b.String()); return err })
			printReplies(out, c.client, count, full)
		case "reply":
			within, text := 30*time.Second, false
			for _, arg := range strings.Fields(rest) {
				v, isWithin := strings.CutPrefix(arg, "within=")
				var err error
				switch {
				case isWithin:
					within, err = time.ParseDuration(v)
				case arg == "text":
					text = true
				default:
					err = fmt.Errorf("unknown argument %q", arg)
				}
				if err != nil {
					d.Fatalf(t, "reply [within=DUR] [text]: %v", err)
				}
			}
			c.conn.SetReadDeadline(time.Now().Add(within))
			code, lines, err := c.reply()
			c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			printReply(out, code, lines, err, full)
			if err == nil && text {
				fmt.Fprintf(out, "  %s\n", lines[len(lines)-1])
			}
		case "replies":
			n, err := strconv.Atoi(rest)
			if err != nil {
				d.Fatalf(t, "replies N: %v", err)
			}
			printReplies(out, c.client, n, full)
		case "tls":
			<-c.written
			c.startTLS()
		case "sleep":
			dur, err := time.ParseDuration(rest)
			if err != nil {
				d.Fatalf(t, "sleep: %v", err)
			}
			time.Sleep(dur)
		case "closed":
			fmt.Fprintln(out, closedState(c.client))
		case "flood":
			n, err := strconv.ParseInt(rest, 10, 64)
			if err != nil {
				d.Fatalf(t, "flood N: %v", err)
			}
			c.flood, c.floodN = make(chan int64, 1), n
			c.queue(func(w io.Writer) error {
				chunk := bytes.Repeat([]byte("a"), 64<<10)
				var sent int64
				for sent < n {
					k, err := w.Write(chunk)
					sent += int64(k)
					if err != nil {
						break
					}
				}
				c.flood <- sent
				return nil
			})
		case "flooded":
			if sent := <-c.flood; sent >= c.floodN {
				fmt.Fprintf(out, "the server read all %d bytes\n", sent)
			} else {
				fmt.Fprintln(out, "the server stopped reading")
			}
		default:
			if verb == "" || verb != strings.ToUpper(verb) {
				d.Fatalf(t, "unknown step %q", step)
			}
			c.queue(func(w io.Writer) error { _, err := io.WriteString(w, step+"\r\n"); return err })
			printReplies(out, c.client, 1, full)
		}
	}
}

// sendArgs parses `"…"*N "…"`: Go-quoted strings, each optionally repeated.
func sendArgs(t *testing.T, d *datadriven.TestData, s string) string {
	var b strings.Builder
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			d.Fatalf(t, "send: want Go-quoted strings at %q: %v", s, err)
		}
		str, _ := strconv.Unquote(q)
		s = s[len(q):]
		n := 1
		if rest, ok := strings.CutPrefix(s, "*"); ok {
			digits := rest[:len(rest)-len(strings.TrimLeft(rest, "0123456789"))]
			if n, err = strconv.Atoi(digits); err != nil {
				d.Fatalf(t, "send: repeat count at %q", s)
			}
			s = rest[len(digits):]
		}
		b.WriteString(strings.Repeat(str, n))
	}
	return b.String()
}

// printReplies reads n replies and prints them, runs of equal ones as one.
func printReplies(out *strings.Builder, c *client, n int, full bool) {
	var last string
	run := 0
	flush := func() {
		if run > 1 {
			last = strings.Replace(last, "\n", fmt.Sprintf(" ×%d\n", run), 1)
		}
		out.WriteString(last)
	}
	for range n {
		var one strings.Builder
		code, lines, err := c.reply()
		printReply(&one, code, lines, err, full)
		if one.String() == last {
			run++
			continue
		}
		flush()
		last, run = one.String(), 1
		if err != nil {
			break
		}
	}
	flush()
}

func printReply(out *strings.Builder, code int, lines []string, err error, full bool) {
	if err != nil {
		fmt.Fprintf(out, "error: %v\n", err)
		return
	}
	fmt.Fprintf(out, "%d%s\n", code, enhanced(lines[len(lines)-1]))
	if full && len(lines) > 1 {
		for _, l := range lines[1:] {
			fmt.Fprintf(out, "  %s\n", l)
		}
	}
}

// closedState is expectClosed's check, as text.
func closedState(c *client) string {
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c.r)
	switch {
	case (err == nil || isResetOrEOF(err)) && len(b) == 0:
		return "closed"
	case err == nil || isResetOrEOF(err):
		return fmt.Sprintf("closed after sending %q", b)
	default:
		return fmt.Sprintf("open: %v (read %q)", err, b)
	}
}

// enhanced returns " X.Y.Z" when line starts with an enhanced status code.
func enhanced(line string) string {
	code, _, _ := strings.Cut(line, " ")
	parts := strings.Split(code, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.Contains("245", parts[0]) {
		return ""
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return ""
		}
	}
	return " " + code
}

func (s *script) markCounts(t *testing.T) {
	s.counts = map[string][]uint32{}
	for name, id := range s.f.users {
		s.counts[name] = s.f.counts(t, id)
	}
	l := s.f.c.WaitLeader(5 * time.Second)
	s.index = s.f.c.Nodes[l].Raft().LastIndex()
}

func (s *script) stored(t *testing.T, d *datadriven.TestData, out *strings.Builder) {
	if s.counts == nil {
		d.Fatalf(t, "stored before mark")
	}
	deltas := map[string]int{}
	for _, a := range d.CmdArgs {
		if len(a.Vals) != 1 {
			d.Fatalf(t, "stored USER=DELTA: %q", a.Key)
		}
		n, err := strconv.Atoi(a.Vals[0])
		if _, ok := s.f.users[a.Key]; err != nil || !ok {
			d.Fatalf(t, "stored %s=%s: want a fixture user and a number", a.Key, a.Vals[0])
		}
		deltas[a.Key] = n
	}
	changes := func() map[string][]int {
		got := map[string][]int{}
		for name := range deltas {
			for i, n := range s.f.counts(t, s.f.users[name]) {
				got[name] = append(got[name], int(n)-int(s.counts[name][i]))
			}
		}
		return got
	}
	deadline := time.Now().Add(15 * time.Second)
	for !countsAre(changes(), deltas) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	s.f.c.WaitConverged(10 * time.Second)
	got := changes()
	for _, a := range d.CmdArgs {
		ch := got[a.Key]
		if countsAre(map[string][]int{a.Key: ch}, map[string]int{a.Key: ch[0]}) {
			fmt.Fprintf(out, "%s %+d\n", a.Key, ch[0])
		} else {
			fmt.Fprintf(out, "%s %+d per node (nodes differ)\n", a.Key, ch)
		}
	}
	if l := s.f.c.Leader(); l >= 0 && s.f.c.Nodes[l].Raft().LastIndex() == s.index {
		fmt.Fprintln(out, "log: no new entry")
	} else {
		fmt.Fprintln(out, "log: grew")
	}
}

// countsAre: every node's change for each user is the wanted one.
func countsAre(got map[string][]int, want map[string]int) bool {
	for name, w := range want {
		for _, n := range got[name] {
			if n != w {
				return false
			}
		}
	}
	return true
}

var (
	traceID   = regexp.MustCompile(` id [a-z2-7]+(\r\n|;)`)
	traceDate = regexp.MustCompile(`;\r\n\t[^\r\n]+\r\n`)
)

func (s *script) lastMessage(t *testing.T, d *datadriven.TestData, out *strings.Builder) {
	var name string
	d.ScanArgs(t, "user", &name)
	id, ok := s.f.users[name]
	if !ok {
		d.Fatalf(t, "no fixture user %q", name)
	}
	s.f.c.WaitConverged(10 * time.Second)
	var last []byte
	same := true
	for i, n := range s.f.c.Nodes {
		msgs := messages(t, n, id)
		if len(msgs) == 0 {
			d.Fatalf(t, "node %d: %s has no message", i, name)
		}
		m := msgs[len(msgs)-1]
		if i > 0 && !bytes.Equal(m, last) {
			same = false
		}
		last = m
	}
	fmt.Fprintf(out, "same on every node: %v\n", same)
	end := traceDate.FindIndex(last)
	if end == nil {
		fmt.Fprintf(out, "no trace fields: %q\n", last[:min(len(last), 200)])
		return
	}
	trace := traceID.ReplaceAllString(string(last[:end[1]]), " id <id>$1")
	trace = traceDate.ReplaceAllString(trace, ";\r\n\t<date>\r\n")
	trace = strings.ReplaceAll(trace, s.f.c.Cfgs[s.node].Hostname, "<host>")
	for _, l := range strings.Split(strings.TrimSuffix(trace, "\r\n"), "\r\n") {
		fmt.Fprintf(out, "  %s\n", l)
	}
	rest := string(last[end[1]:])
	if d.HasArg("body") {
		var spec string
		d.ScanArgs(t, "body", &spec)
		mid, size, _ := strings.Cut(spec, ":")
		n, _ := strconv.Atoi(size)
		if rest == message(mid, n) {
			fmt.Fprintf(out, "message(%s, %d)\n", mid, n)
			return
		}
	}
	fmt.Fprintf(out, "%q\n", rest[:min(len(rest), 200)])
}
