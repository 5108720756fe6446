package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// HeaderFields are the five fields the fetch-headers workload asks for (a
// mail client's message list).
var HeaderFields = []string{"From", "To", "Subject", "Date", "Message-ID"}

// imapSession is one IMAP connection (login: one per operation).
type imapSession struct {
	cfg    *Config
	user   string
	server string
	c      *imapclient.Client
	// idle: the IDLE command, the delivery session and the EXISTS counts
	// the unilateral handler passes on.
	idle    *imapclient.IdleCommand
	mail    *mailSession
	exists  chan uint32
	current uint32
}

func dialIMAP(addr string, opts *imapclient.Options) (*imapclient.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	return imapclient.New(conn, opts), nil
}

func newIMAPSession(ctx context.Context, cfg *Config, b *bodies, i int, rng *rand.Rand) (*imapSession, error) {
	s := &imapSession{cfg: cfg, user: cfg.user(i), server: cfg.server(i)}
	if cfg.Op == OpLogin {
		return s, nil // each operation is a whole session
	}
	opts := &imapclient.Options{}
	if cfg.Op == OpIdle {
		s.exists = make(chan uint32, 64)
		opts.UnilateralDataHandler = &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case s.exists <- *d.NumMessages:
					default:
					}
				}
			},
		}
	}
	c, err := dialIMAP(s.server, opts)
	if err != nil {
		return nil, err
	}
	s.c = c
	if err := c.Login(s.user, cfg.Password).Wait(); err != nil {
		s.close()
		return nil, fmt.Errorf("LOGIN %s: %w", s.user, err)
	}
	sel, err := c.Select(cfg.Mailbox, &imap.SelectOptions{ReadOnly: cfg.Op != OpIdle}).Wait()
	if err != nil {
		s.close()
		return nil, fmt.Errorf("SELECT %s: %w", cfg.Mailbox, err)
	}
	if cfg.Op == OpIdle {
		s.current = sel.NumMessages
		if s.mail, err = newMailSession(cfg, b, i, rng, !cfg.DeliverSMTP, cfg.deliverAddr(i)); err != nil {
			s.close()
			return nil, fmt.Errorf("deliver: %w", err)
		}
		if s.idle, err = c.Idle(); err != nil {
			s.close()
			return nil, fmt.Errorf("IDLE: %w", err)
		}
	}
	return s, nil
}

func (s *imapSession) op(ctx context.Context) (int64, int64, error) {
	switch s.cfg.Op {
	case OpLogin:
		c, err := dialIMAP(s.server, nil)
		if err != nil {
			return 0, 0, err
		}
		defer c.Close()
		if err := c.Login(s.user, s.cfg.Password).Wait(); err != nil {
			return 0, 0, fmt.Errorf("LOGIN %s: %w", s.user, err)
		}
		return 0, 0, c.Logout().Wait()
	case OpFetchHeaders:
		if _, err := s.c.Select(s.cfg.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			return 0, 0, fmt.Errorf("SELECT: %w", err)
		}
		return s.fetch(&imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{
			{Specifier: imap.PartSpecifierHeader, HeaderFields: HeaderFields, Peek: true}}})
	case OpFetchFlags:
		return s.fetch(&imap.FetchOptions{UID: true, Flags: true})
	case OpIdle:
		return s.idleOp(ctx)
	}
	return 0, 0, fmt.Errorf("op %q", s.cfg.Op)
}

// fetch runs FETCH 1:* and reads every response through.
func (s *imapSession) fetch(opts *imap.FetchOptions) (nbytes, items int64, err error) {
	seq := imap.SeqSet{}
	seq.AddRange(1, 0) // 1:*
	cmd := s.c.Fetch(seq, opts)
	for {
		m := cmd.Next()
		if m == nil {
			break
		}
		items++
		for {
			it := m.Next()
			if it == nil {
				break
			}
			if bs, ok := it.(imapclient.FetchItemDataBodySection); ok && bs.Literal != nil {
				n, _ := io.Copy(io.Discard, bs.Literal)
				nbytes += n
			}
		}
	}
	return nbytes, items, cmd.Close()
}

// idleOp delivers one message to the session's user and waits until the
// IDLE-ing connection reports it.
func (s *imapSession) idleOp(ctx context.Context) (int64, int64, error) {
	n, err := s.mail.deliver(s.user)
	if err != nil {
		return 0, 0, err
	}
	want := s.current + 1
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case got := <-s.exists:
			if got >= want {
				s.current = got
				return n, 1, nil
			}
		case <-timeout.C:
			return 0, 0, errors.New("IDLE: no EXISTS within 30s of the delivery")
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
}

func (s *imapSession) close() {
	if s.idle != nil {
		_ = s.idle.Close()
	}
	if s.mail != nil {
		s.mail.close()
	}
	if s.c != nil {
		_ = s.c.Close()
	}
}
