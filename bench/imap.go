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
	// mixed: the body source, the step in mixedCycle, the cycles done
	// on this connection.
	b      *bodies
	rng    *rand.Rand
	step   int
	cycles int
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
	if cfg.Op == OpMixed {
		s.b, s.rng = b, rng
		return s, nil // each command is an operation: LOGIN is the first
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
	case OpMixed:
		return s.mixedOp()
	}
	return 0, 0, fmt.Errorf("op %q", s.cfg.Op)
}

// fetch runs FETCH 1:* and reads every response through.
func (s *imapSession) fetch(opts *imap.FetchOptions) (nbytes, items int64, err error) {
	seq := imap.SeqSet{}
	seq.AddRange(1, 0) // 1:*
	return s.fetchSet(seq, opts)
}

// fetchSet runs FETCH of seq and reads every response through.
func (s *imapSession) fetchSet(seq imap.SeqSet, opts *imap.FetchOptions) (nbytes, items int64, err error) {
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

// mixedCycle is what a mixed session does after LOGIN and SELECT, one
// command per operation, mixedCycles times before LOGOUT (then it logs in
// again): a mail client's commands, keeping the mailbox's size steady (one
// APPEND and one expunged message per cycle).
var mixedCycle = []string{"APPEND", "FETCH", "STORE", "FETCH FLAGS", "STORE DELETED", "EXPUNGE"}

const mixedCycles = 5

// mixedOp runs the session's next command: connect and LOGIN, SELECT, a
// command of mixedCycle, or LOGOUT.
func (s *imapSession) mixedOp() (int64, int64, error) {
	if s.c == nil {
		c, err := dialIMAP(s.server, nil)
		if err != nil {
			return 0, 0, err
		}
		if err := c.Login(s.user, s.cfg.Password).Wait(); err != nil {
			c.Close()
			return 0, 0, fmt.Errorf("LOGIN %s: %w", s.user, err)
		}
		s.c, s.step, s.cycles = c, -1, 0
		return 0, 0, nil
	}
	if s.step < 0 {
		if _, err := s.c.Select(s.cfg.Mailbox, nil).Wait(); err != nil {
			return 0, 0, fmt.Errorf("SELECT %s: %w", s.cfg.Mailbox, err)
		}
		s.step = 0
		return 0, 0, nil
	}
	if s.cycles == mixedCycles {
		err := s.c.Logout().Wait()
		_ = s.c.Close()
		s.c = nil
		if err != nil {
			return 0, 0, fmt.Errorf("LOGOUT: %w", err)
		}
		return 0, 0, nil
	}
	cmd := mixedCycle[s.step]
	if s.step++; s.step == len(mixedCycle) {
		s.step, s.cycles = 0, s.cycles+1
	}
	n := uint32(0)
	if mb := s.c.Mailbox(); mb != nil {
		n = mb.NumMessages
	}
	// A random message, or the last ten.
	one, last := imap.SeqSet{}, imap.SeqSet{}
	if n > 0 {
		one.AddNum(1 + uint32(s.rng.IntN(int(n))))
		last.AddRange(max(n, 10)-9, n)
	}
	switch cmd {
	case "APPEND":
		msg := s.b.next(s.rng, s.user)
		w := s.c.Append(s.cfg.Mailbox, int64(len(msg)), nil)
		if _, err := w.Write(msg); err != nil {
			return 0, 0, fmt.Errorf("APPEND: %w", err)
		}
		if err := w.Close(); err != nil {
			return 0, 0, fmt.Errorf("APPEND: %w", err)
		}
		if _, err := w.Wait(); err != nil {
			return 0, 0, fmt.Errorf("APPEND: %w", err)
		}
		return int64(len(msg)), 0, nil
	case "FETCH", "FETCH FLAGS":
		if n == 0 {
			return 0, 0, nil
		}
		opts := &imap.FetchOptions{UID: true, Flags: true}
		if cmd == "FETCH" {
			opts.RFC822Size = true
			opts.BodySection = []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader, HeaderFields: HeaderFields, Peek: true}}
		}
		return s.fetchSet(last, opts)
	case "STORE", "STORE DELETED":
		if n == 0 {
			return 0, 0, nil
		}
		flag := imap.FlagSeen
		if cmd == "STORE DELETED" {
			flag = imap.FlagDeleted
		}
		if err := s.c.Store(one, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}, nil).Close(); err != nil {
			return 0, 0, fmt.Errorf("STORE: %w", err)
		}
		return 0, 0, nil
	case "EXPUNGE":
		if err := s.c.Expunge().Close(); err != nil {
			return 0, 0, fmt.Errorf("EXPUNGE: %w", err)
		}
		return 0, 0, nil
	}
	return 0, 0, fmt.Errorf("mixed: command %q", cmd)
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
