package smtpd_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/smtpd"
)

// fakeMail accepts every recipient and records what Deliver received.
type fakeMail struct {
	mu        sync.Mutex
	delivered [][]byte
}

func (m *fakeMail) ResolveRecipient(_ context.Context, addr string) ([]string, error) {
	return []string{addr}, nil
}
func (m *fakeMail) CutOff() bool { return false }
func (m *fakeMail) Deliver(_ context.Context, env mail.Envelope, stored, received []byte) ([]mail.Delivery, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delivered = append(m.delivered, bytes.Clone(received))
	return make([]mail.Delivery, len(env.To)), nil
}

func (m *fakeMail) DeliverSpool(_ context.Context, env mail.Envelope, sp *mail.Spool, _ [32]byte) ([]mail.Delivery, error) {
	stored, err := io.ReadAll(sp.Reader())
	if err != nil {
		return nil, err
	}
	// The fake records the body as received: drop the trace headers.
	_, body, _ := bytes.Cut(stored, []byte(" +0000\r\n"))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.delivered = append(m.delivered, body)
	return make([]mail.Delivery, len(env.To)), nil
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// addrConn makes a connection look like it comes from elsewhere.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

type addrListener struct {
	net.Listener
	remote net.Addr
}

func (l addrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return addrConn{c, l.remote}, nil
}

// TestAuthBeforeTLS: docs/TESTPLAN.md §4 "AUTH before TLS on a non-loopback
// listener → not advertised; 538 5.7.11".
func TestAuthBeforeTLS(t *testing.T) {
	srv := smtpd.New(&fakeMail{}, smtpd.Config{Hostname: "mx.test", Logger: quietLog, PregreetWait: -1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(addrListener{ln, &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 4000}})
	t.Cleanup(func() { srv.Close() })

	cl := greet(t, ln.Addr().String())
	for _, cp := range cl.cmd("EHLO client.test", 250, "") {
		if strings.HasPrefix(cp, "AUTH") {
			t.Fatalf("AUTH advertised: %q", cp)
		}
	}
	cl.cmd("AUTH PLAIN AHVAeAB4", 538, "5.7.11")
	cl.cmd("AUTH LOGIN", 538, "5.7.11")
}

// pipeListener hands out in-memory connections.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }

// FuzzDataReader sends a session whose DATA payload is the fuzz input
// (which may itself hold more commands and messages) through go-smtp and
// this package's reader, and checks (docs/TESTPLAN.md §5):
//
//   - no accepted message holds a bare CR, a bare LF or a NUL;
//   - every accepted message ended at a CRLF.CRLF: dot-stuffed and followed
//     by ".\r\n", it appears in the raw stream right after a DATA command,
//     so no message boundary appears that was not CRLF.CRLF.
//
// The second check is skipped for streams using BDAT (length-framed). A
// line starting ".\r" not followed by LF, whose two bytes go-smtp v0.25.1
// drops, is refused by the raw check (rawGuard) before that matters.
func FuzzDataReader(f *testing.F) {
	for _, s := range []string{
		"Subject: a\r\n\r\nbody\r\n",
		"Subject: a\r\n\r\n..leading dot\r\n.\r\nMAIL FROM:<b@x>\r\nRCPT TO:<c@y>\r\nDATA\r\nsecond\r\n",
		"body\n.\nMAIL FROM:<e@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n",
		"body\n.\r\nMAIL FROM:<e@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n",
		"body\r\n.\nMAIL FROM:<e@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n",
		"body\r.\rMAIL FROM:<e@x>\r\n",
		"a\r\n.\rb\r\n",
		"nul\x00\r\n",
		"\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5 LAST\r\nab\ncd",
		"",
	} {
		f.Add([]byte(s))
	}
	h := newHarness(f)
	f.Fuzz(func(t *testing.T, payload []byte) {
		stream, delivered := h.run(t, payload)
		checkBoundary := !bytes.Contains(bytes.ToUpper(stream), []byte("BDAT"))
		for _, b := range delivered {
			for i, c := range b {
				if c == 0 || c == '\n' && (i == 0 || b[i-1] != '\r') || c == '\r' && (i+1 == len(b) || b[i+1] != '\n') {
					t.Fatalf("accepted message with a bare line ending or NUL at %d: %q", i, b)
				}
			}
			if checkBoundary && !endsAtCRLFDotCRLF(stream, b) {
				t.Fatalf("accepted message %q is not a DATA payload ended by CRLF.CRLF in %q", b, stream)
			}
		}
	})
}

// harness runs whole sessions through one server on in-memory connections.
type harness struct {
	fm *fakeMail
	ln *pipeListener
}

func newHarness(tb testing.TB) *harness {
	h := &harness{fm: &fakeMail{}, ln: &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}}
	srv := smtpd.New(h.fm, smtpd.Config{Hostname: "mx.test", Logger: quietLog, PregreetWait: -1, Timeout: 300 * time.Millisecond, MaxMessageBytes: 1 << 20, MaxConnsPerIP: 1 << 20})
	go srv.Serve(h.ln)
	tb.Cleanup(func() { srv.Close() })
	return h
}

// run sends a transaction whose DATA payload is payload, then CRLF.CRLF
// and QUIT, and returns the whole stream and the bodies delivered.
func (h *harness) run(t *testing.T, payload []byte) ([]byte, [][]byte) {
	stream := []byte("EHLO c.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<u@example.test>\r\nDATA\r\n")
	stream = append(stream, payload...)
	stream = append(stream, "\r\n.\r\nQUIT\r\n"...)

	h.fm.mu.Lock()
	h.fm.delivered = nil
	h.fm.mu.Unlock()
	client, server := net.Pipe()
	client.SetDeadline(time.Now().Add(5 * time.Second))
	h.ln.ch <- server
	go client.Write(stream)
	// Read every reply until the server closes.
	r := bufio.NewReader(client)
	for {
		if _, err := r.ReadString('\n'); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("session hung")
			}
			break
		}
	}
	client.Close()
	h.fm.mu.Lock()
	defer h.fm.mu.Unlock()
	return stream, h.fm.delivered
}

// TestDataReaderHarness pins what the fuzz harness delivers, so the fuzz
// oracle is known to see messages at all.
func TestDataReaderHarness(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		payload string
		want    []string
	}{
		{"Subject: a\r\n\r\nbody\r\n", []string{"Subject: a\r\n\r\nbody\r\n\r\n"}},
		{"a\r\n..b\r\n.\r\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\nsecond", []string{"a\r\n.b\r\n", "second\r\n"}},
		{"body\n.\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\nsmuggled", nil},
		{"body\r\n.\nMAIL FROM:<x@y>\r\nRCPT TO:<z@w>\r\nDATA\r\nsmuggled", nil},
		{"nul\x00", nil},
	} {
		_, got := h.run(t, []byte(tc.payload))
		if len(got) != len(tc.want) {
			t.Fatalf("%q: delivered %q, want %q", tc.payload, got, tc.want)
		}
		for i := range got {
			if string(got[i]) != tc.want[i] {
				t.Fatalf("%q: delivered %q, want %q", tc.payload, got, tc.want)
			}
		}
	}
}

// endsAtCRLFDotCRLF reports whether body is what follows a DATA command
// line in stream up to the first CRLF.CRLF, with the leading dot of each
// line removed (RFC 5321 §4.5.2).
func endsAtCRLFDotCRLF(stream, body []byte) bool {
	for p := 0; p < len(stream); {
		i := bytes.IndexByte(stream[p:], '\n')
		if i < 0 {
			return false
		}
		line := bytes.TrimSuffix(stream[p:p+i], []byte("\r"))
		p += i + 1
		if !strings.EqualFold(string(line), "DATA") {
			continue
		}
		raw := stream[p:]
		var seg []byte
		if !bytes.HasPrefix(raw, []byte(".\r\n")) {
			e := bytes.Index(raw, []byte("\r\n.\r\n"))
			if e < 0 {
				continue
			}
			seg = raw[:e+2]
		}
		var got []byte
		for len(seg) > 0 {
			l := seg
			if j := bytes.Index(seg, []byte("\r\n")); j >= 0 {
				l = seg[:j+2]
			}
			seg = seg[len(l):]
			got = append(got, bytes.TrimPrefix(l, []byte("."))...)
		}
		if bytes.Equal(got, body) {
			return true
		}
	}
	return false
}
