package imapd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/imapd/wire"
	"github.com/continuum-mail/continuum/node/mail"
)

// APPEND (RFC 9051 §6.3.12) and MULTIAPPEND (RFC 3502): one command may
// carry several messages, each "[flags] [date] literal", all stored or
// none. Whether another message follows is known only after a literal has
// been read, so each literal is held (in memory up to mail.ChunkBytes,
// else in a spool file) until the command ends; then one message goes
// through session.Append as before, several through mail.AppendAll as one
// log entry.

// A MULTIAPPEND holds at most this many messages and bytes (held until
// the command ends; mail.AppendAll uploads the large ones in chunks and
// stores them all in one log entry).
const (
	maxMultiAppend      = 1000
	maxMultiAppendBytes = 8 * mail.ChunkBytes
)

// heldMessage is one message of an APPEND command, read and held.
type heldMessage struct {
	opts *imap.AppendOptions
	data []byte
	sp   *mail.Spool // instead of data, for a literal over mail.ChunkBytes
	size int64
}

// memLiteral and spoolLiteral give a held message the LiteralReader shape
// session.Append takes.
type memLiteral struct{ *bytes.Reader }

func (l memLiteral) Size() int64 { return l.Reader.Size() }

type spoolLiteral struct {
	io.Reader
	sp *mail.Spool
}

func (l spoolLiteral) Size() int64 { return l.sp.Size() }

// spooled returns the spool of a literal appendCmd already spooled.
func spooled(r imap.LiteralReader) (*mail.Spool, bool) {
	if l, ok := r.(spoolLiteral); ok {
		return l.sp, true
	}
	return nil, false
}

// appendOptions parses the optional flag list and date-time before a
// message literal.
func appendOptions(args []wire.Value) (*imap.AppendOptions, error) {
	opts := &imap.AppendOptions{}
	if len(args) > 2 {
		return nil, errBad("APPEND takes a mailbox, optional flags and date, and a message literal")
	}
	for _, a := range args {
		switch {
		case a.Kind == wire.List:
			for _, f := range a.List {
				if f.Kind != wire.Atom {
					return nil, errBad("Flags are atoms")
				}
				opts.Flags = append(opts.Flags, imap.Flag(f.Str))
			}
		case a.Kind == wire.String:
			t, perr := time.Parse("_2-Jan-2006 15:04:05 -0700", a.Str)
			if perr != nil {
				return nil, errBad("Invalid date-time " + a.Str)
			}
			opts.Time = t
		default:
			return nil, errBad("Unexpected APPEND argument")
		}
	}
	return opts, nil
}

// holdLiteral reads a message literal into memory or a spool file.
func (c *conn) holdLiteral(lit *wire.Literal, opts *imap.AppendOptions) (heldMessage, error) {
	m := heldMessage{opts: opts, size: lit.Size}
	if lit.Size > c.s.mail.MaxMessageBytes() {
		return m, reply(mail.ErrTooBig)
	}
	if lit.Size <= mail.ChunkBytes {
		m.data = make([]byte, lit.Size)
		_, err := io.ReadFull(lit, m.data)
		return m, err
	}
	sp, err := mail.NewSpool("")
	if err != nil {
		return m, reply(err)
	}
	m.sp = sp
	_, err = io.Copy(sp, io.LimitReader(lit, lit.Size))
	return m, err
}

// appendCmd implements APPEND with MULTIAPPEND and APPENDUID (RFC 4315).
func (c *conn) appendCmd(cmd *wire.Command) error {
	if cmd.Pending == nil || len(cmd.Args) < 1 {
		return errBad("APPEND takes a mailbox, optional flags and date, and a message literal")
	}
	name, err := c.mailboxArg(cmd.Args[0])
	var msgs []heldMessage
	var held int64
	defer func() {
		for _, m := range msgs {
			if m.sp != nil {
				m.sp.Close()
			}
		}
	}()
	for start := 1; ; {
		var opts *imap.AppendOptions
		if err == nil {
			opts, err = appendOptions(cmd.Args[start:])
		}
		if err == nil && len(msgs) > 0 && (len(msgs) >= maxMultiAppend || held+cmd.Pending.Size > maxMultiAppendBytes) {
			err = errMultiTooBig // bounds what one command holds
		}
		if err == nil {
			var m heldMessage
			m, err = c.holdLiteral(cmd.Pending, opts)
			held += m.size
			if m.sp != nil || m.data != nil {
				msgs = append(msgs, m)
			}
			if errors.Is(err, wire.ErrNUL) {
				err = errBad("NUL byte in a message literal; use literal8 (~{n}) for binary data")
			} else if err != nil && !isReply(err) {
				return err // the connection failed
			}
		}
		// The rest of the command: another message, or its end. After an
		// error the remaining literals are read and dropped.
		n := len(cmd.Args)
		more, merr := c.r.More(cmd)
		if merr != nil {
			return merr
		}
		cmd = more
		if cmd.Pending == nil {
			if len(cmd.Args) != n && err == nil {
				err = errBad("Unexpected arguments after the message literal")
			}
			break
		}
		start = n
	}
	if err != nil {
		return err
	}
	if len(msgs) == 1 {
		return c.appendOne(name, msgs[0])
	}
	return c.s.appendAll(name, msgs)
}

// isReply says err is an IMAP answer (a refusal), not an I/O failure.
func isReply(err error) bool {
	var ie *imap.Error
	var bad errBad
	return errors.As(err, &ie) || errors.As(err, &bad)
}

func (c *conn) appendOne(name string, m heldMessage) error {
	var r imap.LiteralReader = memLiteral{bytes.NewReader(m.data)}
	if m.sp != nil {
		r = spoolLiteral{m.sp.Reader(), m.sp}
	}
	data, err := c.s.Append(name, r, m.opts)
	if err != nil {
		return err
	}
	if data != nil && data.UID != 0 {
		return okWith{fmt.Sprintf("APPENDUID %d %d", data.UIDValidity, data.UID), "APPEND completed"}
	}
	return nil
}

// appendAll stores the messages of a MULTIAPPEND in one log entry, all or
// none (RFC 3502 §3); APPENDUID lists the new UIDs (RFC 4315 §3).
func (s *session) appendAll(name string, msgs []heldMessage) (err error) {
	defer func() { s.srv.countAppend(err) }()
	s.touched = true
	if err := s.writable(); err != nil {
		return reply(err)
	}
	mb, err := s.lookupNow(name)
	if errors.Is(err, errNoMailbox) {
		return tryCreate
	} else if err != nil {
		return reply(err)
	}
	items := make([]mail.AppendMessage, len(msgs))
	for i, m := range msgs {
		items[i] = mail.AppendMessage{Data: m.data, Spool: m.sp, Date: m.opts.Time}
		for _, f := range m.opts.Flags {
			items[i].Flags = append(items[i].Flags, string(f))
		}
	}
	res, err := s.mail.AppendAll(s.ctx(), s.user.ID, mb.Id, items)
	if err != nil {
		return reply(err)
	}
	var set imap.UIDSet
	for _, u := range res.Uids {
		set.AddNum(imap.UID(u))
	}
	return okWith{fmt.Sprintf("APPENDUID %d %s", res.UidValidity, set.String()), "APPEND completed"}
}

var errMultiTooBig = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig,
	Text: fmt.Sprintf("A MULTIAPPEND holds at most %d messages and %d MiB in all; append in smaller groups", maxMultiAppend, maxMultiAppendBytes>>20)}
