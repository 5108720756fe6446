package imapd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/continuum-mail/continuum/node/loginguard"
	"github.com/continuum-mail/continuum/node/mail"
)

// Options configures a Server. The zero value of every field but Mail is a
// production default.
type Options struct {
	// Mail is the node's mail service; required.
	Mail *mail.Service
	// Logger; nil means slog.Default(). The component name "imap" is added.
	Logger *slog.Logger
	// TLSConfig enables STARTTLS when set.
	TLSConfig *tls.Config
	// Dev accepts passwords over plaintext from loopback addresses.
	Dev bool
	// Flow, when set, also counts each APPEND outcome (the console's
	// mail-flow chart).
	Flow Flow
	// IdleTimeout ends an IDLE that lasts longer with BYE (RFC 9051 §5.4:
	// at least 30 minutes). Default 30 minutes.
	IdleTimeout time.Duration
	// AuthFailureDelay is the delay after the first failed login from a
	// client address; it doubles with each further failure, up to
	// MaxAuthFailureDelay. Defaults 1 s and 16 s.
	AuthFailureDelay    time.Duration
	MaxAuthFailureDelay time.Duration
	// MaxAuthFailures is how many failures from one address in
	// AuthFailureWindow make every login from it fail without a password
	// check until the window has passed. Defaults 10 and 15 minutes.
	MaxAuthFailures   int
	AuthFailureWindow time.Duration
	// MaxConcurrentAuth bounds the password checks in flight on this node
	// (each argon2id check holds 19 MiB); more wait. Default 8.
	MaxConcurrentAuth int
	// Logins, when set, is the node's login guard (shared with the
	// cluster through gossip), and the four Auth options above are
	// ignored; nil makes a guard of this server's own from them.
	Logins *loginguard.Guard
	// MaxConnsPerIP and MaxConns cap concurrent IMAP connections from one
	// client address and in total; one over is answered BYE and closed.
	// Defaults 50 and 5000.
	MaxConnsPerIP, MaxConns int
	// ScanSearch makes SEARCH read every message's text instead of asking
	// the full-text index first: the oracle the index is tested against.
	ScanSearch bool
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 30 * time.Minute
	}
	if o.AuthFailureDelay <= 0 {
		o.AuthFailureDelay = time.Second
	}
	if o.MaxAuthFailureDelay <= 0 {
		o.MaxAuthFailureDelay = 16 * time.Second
	}
	if o.MaxAuthFailures <= 0 {
		o.MaxAuthFailures = 10
	}
	if o.AuthFailureWindow <= 0 {
		o.AuthFailureWindow = 15 * time.Minute
	}
	if o.MaxConcurrentAuth <= 0 {
		o.MaxConcurrentAuth = 8
	}
	if o.MaxConnsPerIP <= 0 {
		o.MaxConnsPerIP = 50
	}
	if o.MaxConns <= 0 {
		o.MaxConns = 5000
	}
}

// Server serves IMAP for one node: one goroutine per connection
// (conn.go), whose password may be sent in the clear only over TLS or,
// in dev mode, from loopback.
type Server struct {
	opts   Options
	log    *slog.Logger
	logins *loginguard.Guard
	conns  connCounter
	ctx    context.Context // canceled by Close: ends in-flight mail calls
	cancel context.CancelFunc

	mu     sync.Mutex
	lns    map[net.Listener]struct{}
	own    map[net.Conn]struct{} // connections served by conn.go
	closed bool
	wg     sync.WaitGroup
}

// New returns a Server; call Serve with a listener.
func New(opts Options) (*Server, error) {
	if opts.Mail == nil {
		return nil, errors.New("imapd: Options.Mail is required")
	}
	opts.setDefaults()
	s := &Server{
		opts:   opts,
		log:    opts.Logger.With("component", "imap"),
		logins: opts.Logins,
		conns:  connCounter{perIP: map[string]int{}},
		lns:    map[net.Listener]struct{}{},
		own:    map[net.Conn]struct{}{},
	}
	if s.logins == nil {
		s.logins = loginguard.New(loginguard.Config{
			Delay: opts.AuthFailureDelay, MaxDelay: opts.MaxAuthFailureDelay,
			Max: opts.MaxAuthFailures, Window: opts.AuthFailureWindow,
			Slots: opts.MaxConcurrentAuth,
		})
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, false) }

// ServeTLS is Serve for an implicit-TLS listener (RFC 8314 §3.3, port 993
// style) with Options.TLSConfig: every connection is TLS from its first
// byte, so LOGIN is allowed at once and STARTTLS is not offered.
func (s *Server) ServeTLS(ln net.Listener) error {
	if s.opts.TLSConfig == nil {
		return errors.New("imapd: implicit TLS needs Options.TLSConfig")
	}
	return s.serve(ln, true)
}

func (s *Server) serve(ln net.Listener, implicitTLS bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()

	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("imapd: accept: %w", err)
		}
		delay = 0
		tcp := c
		c, ok := s.conns.admit(c, s.opts.MaxConnsPerIP, s.opts.MaxConns)
		if !ok {
			// RFC 9051 §7.1.5: BYE at greeting time, then close. On an
			// implicit-TLS port no plaintext is sent.
			if !implicitTLS {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				io.WriteString(c, "* BYE [UNAVAILABLE] Too many connections, try again later\r\n")
			}
			c.Close()
			continue
		}
		s.startOwn(newCorkConn(c, tcp), implicitTLS, s.opts.Dev && isLoopback(c.RemoteAddr()))
	}
}

// Close stops accepting and closes every connection.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cancel()
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.own {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// startOwn serves c on a goroutine that Close waits for.
func (s *Server) startOwn(c net.Conn, implicitTLS, dev bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.own[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		s.serveOwn(c, implicitTLS, dev)
		s.mu.Lock()
		delete(s.own, c)
		s.mu.Unlock()
	}()
}

func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// connCounter counts open connections per client address and in total.
type connCounter struct {
	mu    sync.Mutex
	perIP map[string]int
	total int
}

// admit returns c wrapped so that closing it releases its place, or c and
// false when a cap is reached.
func (cc *connCounter) admit(c net.Conn, perIP, total int) (net.Conn, bool) {
	ip := c.RemoteAddr().String()
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ip = ta.IP.String()
	}
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.total >= total || cc.perIP[ip] >= perIP {
		return c, false
	}
	cc.total++
	cc.perIP[ip]++
	return &countedConn{Conn: c, release: func() {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		cc.total--
		if cc.perIP[ip]--; cc.perIP[ip] <= 0 {
			delete(cc.perIP, ip)
		}
	}}, true
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
