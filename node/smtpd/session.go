package smtpd

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/continuum-mail/continuum/node/mail"
)

// session is one SMTP/LMTP transaction state, created by go-smtp at EHLO
// (LHLO) and reset after every transaction.
type session struct {
	srv   *Server
	conn  *smtp.Conn
	from  string
	utf8  bool
	rcpts []rcpt
}

// rcpt is an accepted RCPT TO.
type rcpt struct {
	addr  string   // as the client gave it: go-smtp's key for LMTP status
	users []string // the canonical local users it resolves to
}

var (
	_ smtp.LMTPSession = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

func (s *session) Reset() {
	s.from, s.utf8, s.rcpts = "", false, nil
}

func (s *session) Logout() error { return nil }

// Mail starts a transaction (RFC 5321 §4.1.1.2). go-smtp has checked SIZE=
// against the limit (552 5.3.4) and SMTPUTF8.
func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	if s.srv.mail.CutOff() {
		return replyErr(mail.ErrUnavailable)
	}
	s.from = from
	s.utf8 = opts != nil && opts.UTF8
	return nil
}

// Rcpt resolves a recipient against the local replica (aliases, plus
// addresses and catch-alls resolve in node/mail); an unknown address is
// checked again after a read-index wait before it is refused. go-smtp has enforced
// MaxRecipients (452 4.5.3) before calling.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	users, err := s.srv.mail.ResolveRecipient(s.srv.ctx, to)
	if err != nil {
		if errors.Is(err, mail.ErrInvalid) {
			err = fmt.Errorf("%w: %v", errBadAddress, err)
		}
		return replyErr(err)
	}
	s.rcpts = append(s.rcpts, rcpt{addr: to, users: users})
	return nil
}

// Data delivers an SMTP message. 250 only when every recipient's copy is
// committed; a partial outcome is a temporary failure, so the sender
// retries and the dedupe table gives the delivered recipients no second
// copy, while the others get their own reply at RCPT or DATA next time.
func (s *session) Data(r io.Reader) error {
	perRcpt, err := s.deliver(r)
	if err != nil {
		return s.fail(err, 1)
	}
	var first error
	ok := 0
	for _, e := range perRcpt {
		if e == nil {
			ok++
		} else if first == nil {
			first = e
		}
	}
	switch {
	case first == nil:
		s.srv.countReply(250)
		return nil
	case ok == 0:
		return s.fail(first, 1)
	default:
		s.srv.log.Info("partial delivery; asking the sender to retry", "delivered", ok, "recipients", len(perRcpt), "err", first)
		return s.fail(errPartial, 1)
	}
}

// LMTPData delivers an LMTP message and answers once per recipient, in RCPT
// order (RFC 2033 §4.2).
func (s *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	perRcpt, err := s.deliver(r)
	if err != nil {
		return s.fail(err, len(s.rcpts))
	}
	for i, rc := range s.rcpts {
		if perRcpt[i] == nil {
			s.srv.countReply(250)
			status.SetStatus(rc.addr, nil)
			continue
		}
		e := reply(perRcpt[i])
		s.srv.countReply(e.reply.Code)
		status.SetStatus(rc.addr, e.reply)
	}
	return nil
}

// deliver reads the message and makes one mail.Deliver for all recipients.
// It returns one error (nil: stored) per accepted RCPT, in order.
func (s *session) deliver(r io.Reader) ([]error, error) {
	sr := &strictReader{r: guardData(r)}
	lr := io.LimitReader(sr, s.srv.cfg.MaxMessageBytes+1)
	// Up to mail.ChunkBytes in memory; a bigger message goes to a spool
	// file as it arrives, so a session never holds more than that.
	var buf bytes.Buffer
	buf.Grow(64 << 10)
	if _, err := buf.ReadFrom(io.LimitReader(lr, mail.ChunkBytes+1)); err != nil {
		return nil, err
	}
	var sp *mail.Spool
	var received [sha256.Size]byte
	if buf.Len() > mail.ChunkBytes {
		var err error
		if sp, err = mail.NewSpool(""); err != nil {
			return nil, err
		}
		defer sp.Close()
		h := sha256.New()
		prefix := s.tracePrefix()
		sp.Write(prefix)
		w := io.MultiWriter(sp, h)
		w.Write(buf.Bytes())
		buf = bytes.Buffer{}
		if _, err := io.Copy(w, lr); err != nil {
			return nil, err
		}
		if sp.Size()-int64(len(prefix)) > s.srv.cfg.MaxMessageBytes {
			return nil, mail.ErrTooBig
		}
		h.Sum(received[:0])
	}
	if int64(buf.Len()) > s.srv.cfg.MaxMessageBytes {
		return nil, mail.ErrTooBig
	}
	if sr.nul {
		return nil, errNUL
	}
	body := buf.Bytes()

	// Single instance: each user once, however many RCPTs reach them.
	var users []string
	index := map[string]int{}
	for _, rc := range s.rcpts {
		for _, u := range rc.users {
			if _, ok := index[u]; !ok {
				index[u] = len(users)
				users = append(users, u)
			}
		}
	}
	env := mail.Envelope{From: s.from, To: users}
	var ds []mail.Delivery
	var err error
	if sp != nil {
		ds, err = s.srv.mail.DeliverSpool(s.srv.ctx, env, sp, received)
	} else {
		ds, err = s.srv.mail.Deliver(s.srv.ctx, env, s.trace(body), body)
	}
	if err != nil {
		return nil, err
	}
	if len(ds) != len(users) {
		return nil, fmt.Errorf("%w: %d results for %d recipients", mail.ErrUnknownOutcome, len(ds), len(users))
	}
	out := make([]error, len(s.rcpts))
	for i, rc := range s.rcpts {
		// An alias reaching several users counts as delivered when any of
		// them got it.
		var first error
		for _, u := range rc.users {
			if e := ds[index[u]].Err; e == nil {
				first = nil
				break
			} else if first == nil {
				first = e
			}
		}
		out[i] = first
	}
	return out, nil
}

// fail answers err from the table for n recipients. When the row says the
// session must end (a framing error, a timeout), the reply is written here
// and the connection closed, so go-smtp neither drains the rest of a
// possibly smuggled stream nor reads another command from it.
func (s *session) fail(err error, n int) error {
	e := reply(err)
	for range n {
		s.srv.countReply(e.reply.Code)
	}
	if !errors.Is(err, smtp.ErrDataReset) {
		s.srv.log.Debug("transaction failed", "remote", s.conn.Conn().RemoteAddr().String(), "code", e.reply.Code, "err", err)
	}
	if e.close && !errors.Is(err, net.ErrClosed) {
		c := s.conn.Conn()
		c.SetWriteDeadline(time.Now().Add(time.Second))
		r := e.reply
		fmt.Fprintf(c, "%d %d.%d.%d %s\r\n", r.Code, r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2], r.Message)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		}
		c.Close()
	}
	return e.reply
}

// AuthMechanisms advertises nothing: this is an MX.
func (s *session) AuthMechanisms() []string { return nil }

// Auth refuses every AUTH (RFC 4954 §6: 538 when TLS would be needed).
func (s *session) Auth(string) (sasl.Server, error) {
	if _, isTLS := s.conn.TLSConnectionState(); !isTLS && !isLoopback(s.conn.Conn().RemoteAddr()) {
		return nil, replyErr(errAuthNeedsTLS)
	}
	return nil, replyErr(errAuthNotHere)
}

func isLoopback(a net.Addr) bool {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
