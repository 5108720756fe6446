package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	"github.com/emersion/go-smtp"
)

// mailSession is one SMTP or LMTP connection delivering one message per
// operation to one recipient.
type mailSession struct {
	cfg  *Config
	b    *bodies
	rng  *rand.Rand
	c    *smtp.Client
	lmtp bool
	i    int // session index: picks the recipients
	n    int
}

func newMailSession(cfg *Config, b *bodies, i int, rng *rand.Rand, lmtp bool, addr string) (*mailSession, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var c *smtp.Client
	if lmtp {
		c = smtp.NewClientLMTP(conn)
	} else {
		c = smtp.NewClient(conn)
	}
	c.CommandTimeout = time.Minute
	c.SubmissionTimeout = 2 * time.Minute
	if err := c.Hello("bench.continuum"); err != nil {
		c.Close()
		return nil, err
	}
	return &mailSession{cfg: cfg, b: b, rng: rng, c: c, lmtp: lmtp, i: i}, nil
}

// deliver sends one message to rcpt.
func (s *mailSession) deliver(rcpt string) (int64, error) {
	msg := s.b.next(s.rng, rcpt)
	if err := s.c.Mail(s.cfg.From, nil); err != nil {
		return 0, fmt.Errorf("MAIL: %w", err)
	}
	if err := s.c.Rcpt(rcpt, nil); err != nil {
		_ = s.c.Reset()
		return 0, fmt.Errorf("RCPT %s: %w", rcpt, err)
	}
	w, err := s.c.Data()
	if err != nil {
		return 0, fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return 0, err
	}
	if s.lmtp {
		if _, err := w.CloseWithLMTPResponse(); err != nil {
			return 0, fmt.Errorf("LMTP DATA: %w", err)
		}
	} else if err := w.Close(); err != nil {
		return 0, fmt.Errorf("DATA: %w", err)
	}
	return int64(len(msg)), nil
}

func (s *mailSession) op(context.Context) (int64, int64, error) {
	// Recipients round-robin over the users, offset per session so that
	// sessions do not move in step.
	rcpt := s.cfg.user(s.i + s.n*s.cfg.Sessions)
	s.n++
	n, err := s.deliver(rcpt)
	return n, 0, err
}

func (s *mailSession) close() { _ = s.c.Close() }
