package migrate

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// IMAPOptions says how to reach and log in to the source server.
type IMAPOptions struct {
	Addr     string // host:port
	Login    string
	Password string
	// TLS: "" (plain; only sensible on loopback), "tls" (implicit TLS) or
	// "starttls".
	TLS       string
	TLSConfig *tls.Config
	// Mailboxes, when set, limits the import to these (source names, with
	// the server's separator or "/").
	Mailboxes []string
}

// IMAPSource reads every mailbox of an account on a live IMAP server:
// LIST with SPECIAL-USE and SUBSCRIBED where the server has them, then per
// mailbox EXAMINE (read-only: the source is left as it was) and one
// UID FETCH 1:* (UID FLAGS INTERNALDATE BODY.PEEK[]), read as it arrives.
type IMAPSource struct {
	c     *imapclient.Client
	opts  IMAPOptions
	names map[string]string // our name → the server's
	delim rune
}

func NewIMAPSource(opts IMAPOptions) (*IMAPSource, error) {
	o := &imapclient.Options{TLSConfig: opts.TLSConfig}
	var c *imapclient.Client
	var err error
	switch opts.TLS {
	case "":
		c, err = imapclient.DialInsecure(opts.Addr, o)
	case "tls":
		c, err = imapclient.DialTLS(opts.Addr, o)
	case "starttls":
		c, err = imapclient.DialStartTLS(opts.Addr, o)
	default:
		return nil, fmt.Errorf("imap: unknown TLS mode %q", opts.TLS)
	}
	if err != nil {
		return nil, fmt.Errorf("imap: connect %s: %w", opts.Addr, err)
	}
	if err := c.Login(opts.Login, opts.Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap: login as %s: %w", opts.Login, err)
	}
	return &IMAPSource{c: c, opts: opts, names: map[string]string{}}, nil
}

var specialUseAttrs = []imap.MailboxAttr{imap.MailboxAttrAll, imap.MailboxAttrArchive, imap.MailboxAttrDrafts,
	imap.MailboxAttrFlagged, imap.MailboxAttrJunk, imap.MailboxAttrSent, imap.MailboxAttrTrash}

func (s *IMAPSource) Mailboxes(ctx context.Context) ([]Mailbox, error) {
	caps := s.c.Caps()
	lo := &imap.ListOptions{}
	if caps.Has(imap.CapSpecialUse) {
		lo.ReturnSpecialUse = true
	}
	if caps.Has(imap.CapListExtended) || caps.Has(imap.CapIMAP4rev2) {
		lo.ReturnSubscribed = true
	}
	list, err := s.c.List("", "*", lo).Collect()
	if err != nil {
		return nil, fmt.Errorf("imap: list: %w", err)
	}
	var out []Mailbox
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		name := l.Mailbox
		if l.Delim != 0 && l.Delim != '/' {
			// A '/' inside a level cannot be one here: it separates levels.
			name = strings.ReplaceAll(name, "/", "_")
			name = strings.ReplaceAll(name, string(l.Delim), "/")
		}
		name = canonicalName(name)
		if len(s.opts.Mailboxes) > 0 && !slices.ContainsFunc(s.opts.Mailboxes, func(m string) bool {
			return m == l.Mailbox || canonicalName(m) == name
		}) {
			continue
		}
		mb := Mailbox{Name: name, Messages: -1, Bytes: -1, Subscribed: slices.Contains(l.Attrs, imap.MailboxAttrSubscribed)}
		for _, a := range l.Attrs {
			if slices.Contains(specialUseAttrs, a) {
				mb.SpecialUse = string(a)
			}
		}
		so := &imap.StatusOptions{NumMessages: true, Size: caps.Has(imap.CapStatusSize) || caps.Has(imap.CapIMAP4rev2)}
		if st, err := s.c.Status(l.Mailbox, so).Wait(); err == nil {
			if st.NumMessages != nil {
				mb.Messages = int(*st.NumMessages)
			}
			if st.Size != nil {
				mb.Bytes = *st.Size
			}
		}
		s.names[name] = l.Mailbox
		out = append(out, mb)
	}
	slices.SortFunc(out, func(a, b Mailbox) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s *IMAPSource) Messages(ctx context.Context, mb Mailbox, fn func(*Message) error, skip func(id, reason string)) error {
	server := s.names[mb.Name]
	sel, err := s.c.Select(server, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return fmt.Errorf("imap: examine %q: %w", server, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	var all imap.UIDSet
	all.AddRange(1, 0)
	body := &imap.FetchItemBodySection{Peek: true}
	cmd := s.c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{body}})
	defer cmd.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		msg := cmd.Next()
		if msg == nil {
			break
		}
		m := &Message{}
		var uid imap.UID
		var data []byte
		var readErr error
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataFlags:
				for _, f := range it.Flags {
					if !strings.EqualFold(string(f), `\Recent`) {
						m.Flags = append(m.Flags, string(f))
					}
				}
			case imapclient.FetchItemDataInternalDate:
				m.Date = it.Time
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				var buf bytes.Buffer
				if sz := it.Literal.Size(); sz > MaxMessageBytes {
					io.Copy(io.Discard, it.Literal)
					readErr = errTooBig
					continue
				} else {
					buf.Grow(int(sz))
				}
				if _, err := io.Copy(&buf, it.Literal); err != nil {
					return fmt.Errorf("imap: fetch from %q: %w", server, err)
				}
				data = buf.Bytes()
			}
		}
		m.SourceID = fmt.Sprintf("%s uid %d", server, uid)
		switch {
		case readErr != nil:
			skip(m.SourceID, readErr.Error())
			continue
		case data == nil:
			skip(m.SourceID, "the server sent no body")
			continue
		}
		m.Data = data
		if err := fn(m); err != nil {
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("imap: fetch from %q: %w", server, err)
	}
	return nil
}

func (s *IMAPSource) Close() error {
	s.c.Logout().Wait()
	return s.c.Close()
}
