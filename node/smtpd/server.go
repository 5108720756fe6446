package smtpd

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/continuum-mail/continuum/node/mail"
)

// Mail is what the protocol needs from node/mail (*mail.Service).
type Mail interface {
	ResolveRecipient(ctx context.Context, addr string) ([]string, error)
	Deliver(ctx context.Context, env mail.Envelope, stored, received []byte) ([]mail.Delivery, error)
	DeliverSpool(ctx context.Context, env mail.Envelope, stored *mail.Spool, received [32]byte) ([]mail.Delivery, error)
	CutOff() bool
}

var _ Mail = (*mail.Service)(nil)

// Config configures one listener. Zero values take the defaults noted.
type Config struct {
	// Hostname names this node in the greeting and in Received.
	Hostname string
	// LMTP serves LMTP (RFC 2033) instead of SMTP.
	LMTP bool
	// TLS enables STARTTLS when set.
	TLS *tls.Config
	// ImplicitTLS makes the listener speak TLS from the first byte (RFC
	// 8314 §3.3, port 465 style) with TLS; STARTTLS is then not offered.
	ImplicitTLS bool
	// MaxMessageBytes is the SIZE limit, trace headers included (50 MiB).
	MaxMessageBytes int64
	// MaxRecipients is the number of RCPT TO per transaction (100).
	MaxRecipients int
	// MaxConnsPerIP caps concurrent connections per client address. 0
	// takes the default: 50 for SMTP, no cap for LMTP (its clients are the
	// operator's own MTAs, many sessions from one address). Negative: no cap.
	MaxConnsPerIP int
	// MaxConns caps concurrent connections in total; 0 or negative: no cap.
	MaxConns int
	// Timeout bounds each command read, each reply write and each whole
	// DATA transfer (5 minutes).
	Timeout time.Duration
	// MaxLineLength bounds a command line (2 KiB).
	MaxLineLength int
	// PregreetWait is how long the connection is watched for a client that
	// talks before the greeting (SMTP: 100 ms; LMTP: 0, off). Negative: off.
	PregreetWait time.Duration
	Logger       *slog.Logger
	// Flow, when set, also counts each message outcome (the console's
	// mail-flow chart).
	Flow Flow
}

func (c *Config) defaults() {
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 50 << 20
	}
	if c.MaxRecipients <= 0 {
		c.MaxRecipients = 100
	}
	if c.MaxConnsPerIP == 0 && !c.LMTP {
		c.MaxConnsPerIP = 50
	}
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.MaxLineLength <= 0 {
		c.MaxLineLength = 2048
	}
	if c.PregreetWait == 0 && !c.LMTP {
		c.PregreetWait = 100 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is one SMTP or LMTP listener. It has the Serve/Close shape the
// node starts and stops.
type Server struct {
	cfg    Config
	mail   Mail
	smtp   *smtp.Server
	log    *slog.Logger
	proto  string // "smtp" or "lmtp", for metrics and logs
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	ln     net.Listener
}

// New returns a server delivering through m.
func New(m Mail, cfg Config) *Server {
	cfg.defaults()
	proto := "smtp"
	if cfg.LMTP {
		proto = "lmtp"
	}
	s := &Server{cfg: cfg, mail: m, proto: proto, log: cfg.Logger.With("component", "smtp", "protocol", proto)}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	ss := smtp.NewServer(backend{s})
	ss.LMTP = cfg.LMTP
	ss.Domain = cfg.Hostname
	ss.TLSConfig = cfg.TLS
	ss.MaxMessageBytes = cfg.MaxMessageBytes
	ss.MaxRecipients = cfg.MaxRecipients
	ss.MaxLineLength = cfg.MaxLineLength
	ss.ReadTimeout = cfg.Timeout
	ss.WriteTimeout = cfg.Timeout
	ss.EnableSMTPUTF8 = true
	// AUTH is refused by session.Auth with the right code (538 before TLS
	// on a non-loopback connection, 502 otherwise) instead of go-smtp's
	// generic "523 TLS is required"; no mechanism is ever advertised.
	ss.AllowInsecureAuth = true
	ss.ErrorLog = errorLog{s.log}
	s.smtp = ss
	return s
}

// Serve accepts connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return nil
	}
	s.ln = newListener(l, s)
	var ln net.Listener = s.ln
	if s.cfg.ImplicitTLS {
		ln = implicitTLS{s.ln, s.cfg.TLS}
	}
	s.mu.Unlock()
	return s.smtp.Serve(ln)
}

// Close stops the listener, closes every connection and cancels in-flight
// deliveries (their senders get no reply and will retry).
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	s.closed = true
	if s.ln != nil {
		// Closed here too: go-smtp only closes listeners its Serve has
		// registered, and Serve may not have run yet.
		s.ln.Close()
	}
	s.mu.Unlock()
	err := s.smtp.Close()
	if err == smtp.ErrServerClosed {
		err = nil
	}
	return err
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{srv: b.s, conn: c}, nil
}

// errorLog bridges go-smtp's logger: connection errors at debug (every
// dropped client makes one), panics at error.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) { l.print(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.print(fmt.Sprint(v...)) }

func (l errorLog) print(msg string) {
	if strings.Contains(msg, "panic") {
		l.log.Error("go-smtp", "msg", msg)
		return
	}
	l.log.Debug("go-smtp", "msg", msg)
}

// implicitTLS hands go-smtp a *tls.Conn over the listener's own conn (caps,
// HTTP detection), so go-smtp knows the session is encrypted: it does the
// handshake before its greeting and offers no STARTTLS. The client speaks
// first in TLS, so the pregreet check is off on these connections.
type implicitTLS struct {
	net.Listener
	cfg *tls.Config
}

func (l implicitTLS) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if cc, ok := c.(*conn); ok {
		cc.greeted.Store(true)
		cc.tls.Store(true)
		cc.readOnce.Store(true)
	}
	return tls.Server(c, l.cfg), nil
}
