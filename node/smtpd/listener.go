package smtpd

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// listener sits in front of smtp.Server.Serve. go-smtp writes its greeting
// as soon as it has a connection and asks the backend nothing before EHLO,
// so the decisions that belong before the greeting are made here:
//
//   - the node is cut off (no leader for longer than the bound): 421 4.3.2,
//     so the MTA tries the next MX now rather than after a timeout;
//   - the client address already holds MaxConnsPerIP connections: 421 4.7.0;
//   - the listener already holds MaxConns connections: 421 4.3.2.
//
// Both are answered on the accept goroutine: a fresh socket's send buffer
// takes a one-line reply without blocking, and a write deadline bounds it.
type listener struct {
	net.Listener
	srv *Server

	mu    sync.Mutex
	perIP map[string]int
	total int
}

func newListener(l net.Listener, srv *Server) *listener {
	return &listener{Listener: l, srv: srv, perIP: map[string]int{}}
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.srv.mail.CutOff() {
			l.srv.refuse(c, errCutOff)
			continue
		}
		ip := remoteIP(c)
		l.mu.Lock()
		if max := l.srv.cfg.MaxConns; max > 0 && l.total >= max {
			l.mu.Unlock()
			l.srv.refuse(c, errServerBusy)
			continue
		}
		if max := l.srv.cfg.MaxConnsPerIP; max > 0 && l.perIP[ip] >= max {
			l.mu.Unlock()
			l.srv.refuse(c, errTooManyConns)
			continue
		}
		l.perIP[ip]++
		l.total++
		l.mu.Unlock()
		return &conn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// conn is an accepted plaintext connection. Its first Write is go-smtp's
// greeting: before letting it through, conn watches the socket for
// PregreetWait; a client that speaks first (RFC 5321 §3.1: the client waits
// for the greeting) is refused. Its first Read catches an HTTP request that
// arrived later than that.
type conn struct {
	net.Conn
	l         *listener
	ip        string
	greeted   atomic.Bool
	readOnce  atomic.Bool
	tls       atomic.Bool
	closeOnce sync.Once
}

func (c *conn) Write(p []byte) (int, error) {
	if !c.greeted.Swap(true) && c.l.srv.cfg.PregreetWait > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(c.l.srv.cfg.PregreetWait))
		var buf [512]byte
		n, _ := c.Conn.Read(buf[:])
		c.Conn.SetReadDeadline(time.Time{})
		if n > 0 {
			err := errPregreet
			if looksLikeHTTP(buf[:n]) {
				err = errHTTP
			}
			c.l.srv.refuse(c, err)
			return 0, fmt.Errorf("smtpd: %w", net.ErrClosed)
		}
	}
	return c.Conn.Write(p)
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.readOnce.Swap(true) {
		if looksLikeHTTP(p[:n]) {
			c.l.srv.refuse(c, errHTTP)
			return 0, fmt.Errorf("smtpd: %w", net.ErrClosed)
		}
	}
	if n > 0 && p[0] == 0x16 {
		// A TLS handshake record (after STARTTLS): from now on this
		// connection carries ciphertext and must not get plaintext replies.
		c.tls.Store(true)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() && !c.tls.Load() {
		// go-smtp would take the partial line read so far as a command;
		// RFC 5321 §4.5.3.2 wants the connection closed with a 421.
		c.l.srv.refuse(c, errTimeout)
		return n, fmt.Errorf("%w: %w", errTimeout, net.ErrClosed)
	}
	return n, err
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { c.l.release(c.ip) })
	return err
}

// httpMethods start every HTTP/1 request line; none is an SMTP verb.
var httpMethods = [][]byte{
	[]byte("GET "), []byte("POST "), []byte("HEAD "), []byte("PUT "), []byte("DELETE "),
	[]byte("OPTIONS "), []byte("CONNECT "), []byte("PATCH "), []byte("TRACE "),
}

func looksLikeHTTP(b []byte) bool {
	for _, m := range httpMethods {
		if bytes.HasPrefix(b, m) {
			return true
		}
	}
	return false
}

// refuse answers err from the reply table and closes c. When the client
// has sent something we have not read, closing at once would make the
// kernel send RST and the client might lose the reply; so the write side
// is shut first and the rest is drained briefly.
func (s *Server) refuse(c net.Conn, err error) {
	raw := c
	if cc, ok := c.(*conn); ok {
		raw = cc.Conn
	}
	r := reply(err).reply
	raw.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(raw, "%d %d.%d.%d %s %s\r\n", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], s.cfg.Hostname, r.Message)
	if tc, ok := raw.(interface{ CloseWrite() error }); ok && err != errCutOff && err != errTooManyConns && err != errServerBusy && err != errTimeout {
		tc.CloseWrite()
		raw.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		io.Copy(io.Discard, io.LimitReader(raw, 64<<10))
	}
	s.log.Debug("connection refused", "remote", raw.RemoteAddr().String(), "reason", err)
	connsRefused.WithLabelValues(s.proto, refusedReason(err)).Inc()
	c.Close()
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
