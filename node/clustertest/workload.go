package clustertest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Event is one fault or process event, for the history file.
type Event struct {
	At     time.Duration `json:"at"` // since the cluster started
	Kind   string        `json:"kind"`
	Node   string        `json:"node,omitempty"`
	Detail string        `json:"detail,omitempty"`
	when   time.Time
	index  int
}

type eventLog struct {
	mu  sync.Mutex
	t0  time.Time
	evs []Event
}

func (l *eventLog) add(kind string, node int, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	e := Event{At: now.Sub(l.t0), Kind: kind, Detail: detail, when: now, index: node}
	if node >= 0 {
		e.Node = fmt.Sprintf("n%d", node+1)
	}
	l.evs = append(l.evs, e)
}

func (l *eventLog) all() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.evs...)
}

// Outcome of a transaction as the sender saw it.
const (
	OutcomeOK      = "ok"      // 250 after DATA
	OutcomeFail    = "fail"    // a 5xx: the sender bounces the message
	OutcomeUnknown = "unknown" // gave up after 4xx, timeouts or dropped connections
)

// Attempt is one SMTP session trying to deliver an Op.
type Attempt struct {
	Node  int       `json:"node"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// DataSent is when the final "." went out; zero when the attempt
	// failed earlier. Only an attempt with DataSent can have stored the
	// message.
	DataSent time.Time `json:"data_sent,omitzero"`
	Stage    string    `json:"stage"` // connect, greeting, ehlo, mail, rcpt, data, dot
	Code     int       `json:"code,omitempty"`
	Reply    string    `json:"reply,omitempty"`
	Err      string    `json:"err,omitempty"`
}

// Ambiguous reports whether the attempt may have stored the message
// without the sender learning it (no reply after the final ".").
func (a Attempt) Ambiguous() bool { return !a.DataSent.IsZero() && a.Code == 0 }

// Op is one message: invoke, attempts, outcome.
type Op struct {
	TestID   string    `json:"test_id"`
	From     string    `json:"from"`
	Rcpt     string    `json:"rcpt"`
	Invoke   time.Time `json:"invoke"`
	Complete time.Time `json:"complete"`
	Outcome  string    `json:"outcome"`
	Attempts []Attempt `json:"attempts"`
}

// WorkloadOptions shape the senders.
type WorkloadOptions struct {
	Seed    uint64
	Senders int // 4 when 0
	// ReplyTimeout bounds each reply before DATA's final one (8 s when 0).
	ReplyTimeout time.Duration
	// DotTimeout returns how long to wait for the reply to the final "."
	// of one attempt; ReplyTimeout when nil.
	DotTimeout func(r *rand.Rand) time.Duration
	// MaxAttempts and MaxOpTime bound the retries of one message (60 and
	// 45 s when 0).
	MaxAttempts int
	MaxOpTime   time.Duration
	// SameNode is the probability that a retry goes to the node of the
	// previous attempt (0.5 when 0; negative: never).
	SameNode float64
	// BodyLines is the number of 64-byte body lines (20 when 0).
	BodyLines int
	// Nodes, when set, are the only nodes the senders use.
	Nodes []int
}

// Workload is MTA-like senders speaking SMTP to random nodes.
type Workload struct {
	c        *Cluster
	opts     WorkloadOptions
	prefix   string // of every message ID (StartWorkload)
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu  sync.Mutex
	ops []*Op
}

// StartWorkload starts the senders; Stop ends them.
func (c *Cluster) StartWorkload(opts WorkloadOptions) *Workload {
	if opts.Senders == 0 {
		opts.Senders = 4
	}
	if opts.ReplyTimeout == 0 {
		opts.ReplyTimeout = 8 * time.Second
	}
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 60
	}
	if opts.MaxOpTime == 0 {
		opts.MaxOpTime = 45 * time.Second
	}
	if opts.SameNode == 0 {
		opts.SameNode = 0.5
	}
	if opts.BodyLines == 0 {
		opts.BodyLines = 20
	}
	c.mu.Lock()
	c.workloads++
	// The first workload's IDs are <test>-s<sender>-<seq>; a later one's
	// carry -w<n>, so that no two messages of one test share an ID (a
	// check by ID would otherwise find an earlier workload's message in
	// place of a lost one).
	prefix := sanitize(c.t.Name())
	if c.workloads > 1 {
		prefix = fmt.Sprintf("%s-w%d", prefix, c.workloads)
	}
	c.mu.Unlock()
	w := &Workload{c: c, opts: opts, stop: make(chan struct{}), prefix: prefix}
	for s := 0; s < opts.Senders; s++ {
		w.wg.Add(1)
		go w.sender(s, rand.New(rand.NewPCG(opts.Seed, uint64(s)+1)))
	}
	return w
}

// Stop asks the senders to start no new message and waits for every
// message in flight to finish its retries (bounded by MaxOpTime).
func (w *Workload) Stop() []*Op {
	w.stopOnce.Do(func() { close(w.stop) })
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*Op(nil), w.ops...)
}

// AckedInvokedSince counts the messages acknowledged (250) so far whose
// first attempt started after t: no attempt of theirs can have reached a
// node that stopped receiving at t.
func (w *Workload) AckedInvokedSince(t time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := 0
	for _, op := range w.ops {
		if op.Outcome == OutcomeOK && op.Invoke.After(t) {
			k++
		}
	}
	return k
}

// Ops returns the operations so far (finished or not).
func (w *Workload) Ops() []*Op {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]*Op(nil), w.ops...)
}

func (w *Workload) stopped() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

const words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu"

// session is an SMTP connection kept open between messages, as an MTA
// delivers a queue over one connection.
type session struct {
	node int
	conn net.Conn
	br   *bufio.Reader
	sent int
}

func (s *session) close() {
	if s != nil && s.conn != nil {
		s.conn.Close()
	}
}

func (w *Workload) sender(s int, r *rand.Rand) {
	defer w.wg.Done()
	ws := strings.Fields(words)
	var sess *session
	defer func() { sess.close() }()
	for seq := 1; !w.stopped(); seq++ {
		id := fmt.Sprintf("%s-s%d-%06d", w.prefix, s, seq)
		op := &Op{
			TestID: id,
			From:   fmt.Sprintf("sender%d@remote.test", s),
			Rcpt:   w.c.Users[r.IntN(len(w.c.Users))],
			Invoke: time.Now(),
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: clustertest %s\r\nMessage-ID: <%s@clustertest.invalid>\r\nDate: %s\r\nX-Test-Id: %s\r\n\r\n",
			op.From, op.Rcpt, id, id, op.Invoke.Format(time.RFC1123Z), id)
		for range w.opts.BodyLines {
			line := ""
			for len(line) < 60 {
				line += ws[r.IntN(len(ws))] + " "
			}
			b.WriteString(strings.TrimSpace(line) + "\r\n")
		}
		msg := b.Bytes()
		w.mu.Lock()
		w.ops = append(w.ops, op)
		w.mu.Unlock()
		sess = w.deliver(op, msg, r, sess)
	}
}

// deliver tries op until 250 or 5xx, retrying the same bytes on 4xx,
// timeouts and dropped connections, up to the bounds.
// It takes the sender's open session, if any, and returns the one to keep.
func (w *Workload) deliver(op *Op, msg []byte, r *rand.Rand, sess *session) *session {
	nodes := w.opts.Nodes
	if len(nodes) == 0 {
		nodes = make([]int, len(w.c.Nodes))
		for i := range nodes {
			nodes[i] = i
		}
	}
	k := r.IntN(len(nodes))
	node := nodes[k]
	if sess != nil && sess.sent < 8 {
		node = sess.node
	} else {
		sess.close()
		sess = nil
	}
	deadline := op.Invoke.Add(w.opts.MaxOpTime)
	var attempts []Attempt
	outcome := OutcomeUnknown
	for n := 0; n < w.opts.MaxAttempts && time.Now().Before(deadline); n++ {
		if n > 0 {
			if w.opts.SameNode < 0 || r.Float64() >= w.opts.SameNode {
				if len(nodes) > 1 {
					k = (k + 1 + r.IntN(len(nodes)-1)) % len(nodes)
				}
				node = nodes[k]
			}
			// Back off a little, as an MTA would (theirs is minutes).
			time.Sleep(time.Duration(20+r.IntN(150)) * time.Millisecond)
		}
		dot := w.opts.ReplyTimeout
		if w.opts.DotTimeout != nil {
			dot = w.opts.DotTimeout(r)
		}
		if sess != nil && sess.node != node {
			sess.close()
			sess = nil
		}
		var a Attempt
		a, sess = w.attempt(node, op, msg, dot, sess)
		attempts = append(attempts, a)
		if a.Code == 250 && a.Stage == "dot" {
			outcome = OutcomeOK
			break
		}
		if a.Code >= 500 {
			outcome = OutcomeFail
			break
		}
	}
	w.mu.Lock()
	op.Attempts, op.Outcome, op.Complete = attempts, outcome, time.Now()
	w.mu.Unlock()
	return sess
}

// attempt is one try at op on node, over sess when it is open to node. It
// returns the session to keep: open only after a 250.
func (w *Workload) attempt(node int, op *Op, msg []byte, dotTimeout time.Duration, sess *session) (a Attempt, keep *session) {
	a = Attempt{Node: node, Start: time.Now(), Stage: "connect"}
	defer func() {
		a.End = time.Now()
		if a.Stage == "dot" && a.Code == 250 {
			keep = sess
			keep.sent++
		} else {
			sess.close()
			keep = nil
		}
	}()
	reused := sess != nil
	if !reused {
		conn, err := net.DialTimeout("tcp", w.c.Nodes[node].Addr(PortSMTP), 2*time.Second)
		if err != nil {
			a.Err = err.Error()
			return a, nil
		}
		sess = &session{node: node, conn: conn, br: bufio.NewReader(conn)}
	}
	conn, br := sess.conn, sess.br
	reply := func(timeout time.Duration) bool {
		conn.SetReadDeadline(time.Now().Add(timeout))
		code, lines, err := readReply(br)
		if err != nil {
			a.Err = err.Error()
			return false
		}
		a.Code, a.Reply = code, strings.Join(lines, " | ")
		return code < 400
	}
	send := func(stage, line string) bool {
		a.Stage, a.Code, a.Reply = stage, 0, ""
		conn.SetWriteDeadline(time.Now().Add(w.opts.ReplyTimeout))
		if _, err := conn.Write([]byte(line + "\r\n")); err != nil {
			a.Err = err.Error()
			return false
		}
		return reply(w.opts.ReplyTimeout)
	}
	if !reused {
		a.Stage = "greeting"
		if !reply(w.opts.ReplyTimeout) || !send("ehlo", "EHLO mta.remote.test") {
			return a, nil
		}
	}
	if !send("mail", "MAIL FROM:<"+op.From+">") || !send("rcpt", "RCPT TO:<"+op.Rcpt+">") || !send("data", "DATA") {
		return a, nil
	}
	a.Stage, a.Code, a.Reply = "dot", 0, ""
	conn.SetWriteDeadline(time.Now().Add(w.opts.ReplyTimeout))
	if _, err := conn.Write(append(append([]byte(nil), msg...), ".\r\n"...)); err != nil {
		a.Err = err.Error()
		// Part of the message may have gone: treat as sent, the outcome
		// is unknown.
		a.DataSent = time.Now()
		return a, nil
	}
	a.DataSent = time.Now()
	reply(dotTimeout)
	return a, nil
}

// History is what a failing scenario leaves behind.
type History struct {
	Test    string   `json:"test"`
	Seed    uint64   `json:"seed"`
	Nodes   []string `json:"nodes"`
	Events  []Event  `json:"events"`
	Ops     []*Op    `json:"ops"`
	Figures *Figures `json:"figures,omitempty"`
}

// SaveHistory writes the history as JSON into the cluster directory and
// returns its path.
func (c *Cluster) SaveHistory(seed uint64, ops []*Op, f *Figures) (string, error) {
	h := History{Test: c.t.Name(), Seed: seed, Events: c.events.all(), Ops: ops, Figures: f}
	for _, n := range c.Nodes {
		h.Nodes = append(h.Nodes, n.ID+"="+n.IP)
	}
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return "", err
	}
	p := filepath.Join(c.Dir, "history.json")
	return p, os.WriteFile(p, b, 0o644)
}

// Events returns the fault and process events so far.
func (c *Cluster) Events() []Event { return c.events.all() }
