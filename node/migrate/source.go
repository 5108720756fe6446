package migrate

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"time"
)

// Mailbox is a mailbox of a source or a sink. Name is "/"-separated UTF-8,
// INBOX first level for the inbox.
type Mailbox struct {
	Name       string
	SpecialUse string // `\Sent`, … or empty
	Subscribed bool
	// Messages and Bytes are what the source holds, for progress; -1 when
	// unknown before reading it.
	Messages int
	Bytes    int64
	// UIDValidity is the exporting mailbox's (0 when unknown).
	UIDValidity uint32
}

// Message is one message: its bytes exactly as they are to be stored, its
// flags (system flags and keywords, IMAP spelling) and INTERNALDATE (zero:
// unknown, the cluster then takes the import's time).
type Message struct {
	Data  []byte
	Flags []string
	Date  time.Time
	// SourceID says where it came from, for the failure report.
	SourceID string
}

// Source is where an import reads from.
type Source interface {
	// Mailboxes lists the mailboxes to import, parents before children.
	Mailboxes(ctx context.Context) ([]Mailbox, error)
	// Messages calls fn for every message of a mailbox, in the source's
	// order. A message the source cannot read is reported through skip
	// (with a reason) and the walk goes on.
	Messages(ctx context.Context, mb Mailbox, fn func(*Message) error, skip func(id, reason string)) error
	Close() error
}

// Sink is where an export writes to.
type Sink interface {
	// Mailbox starts a mailbox; the messages that follow belong to it.
	Mailbox(mb Mailbox) error
	Message(m *Message) error
	Close() error
}

// MaxMessageBytes bounds one message read from a source (the cluster has
// its own, usually lower, limit and refuses what is over it).
const MaxMessageBytes = 1 << 30

var errTooBig = errors.New("message over 1 GiB")

// specialUseByName guesses the special use of a top-level mailbox from its
// name, for sources that do not say (mbox, Maildir): the names mail
// clients and servers create.
func specialUseByName(name string) string {
	if strings.Contains(name, "/") {
		return ""
	}
	switch strings.ToLower(name) {
	case "sent", "sent messages", "sent items", "sent mail":
		return `\Sent`
	case "drafts", "draft":
		return `\Drafts`
	case "trash", "deleted messages", "deleted items", "bin":
		return `\Trash`
	case "junk", "spam", "junk e-mail", "bulk mail":
		return `\Junk`
	case "archive", "archives":
		return `\Archive`
	}
	return ""
}

// canonicalName spells INBOX upper-case, as the cluster does.
func canonicalName(name string) string {
	first, rest, found := strings.Cut(name, "/")
	if strings.EqualFold(first, "INBOX") {
		first = "INBOX"
	}
	if found {
		return first + "/" + rest
	}
	return first
}

// toCRLF turns a message stored with bare LF line ends (as mbox and
// Maildir files usually are) into the CRLF form IMAP serves. A message
// that has any CRLF already is left exactly as it is: it was stored with
// its wire form, and its bytes are what must survive.
func toCRLF(b []byte) []byte {
	if bytes.Contains(b, []byte("\r\n")) || !bytes.Contains(b, []byte("\n")) {
		return b
	}
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// headerEnd returns the offset just past the header's last line (where
// the blank line begins) and the line ending the message uses; -1 when
// the message has no blank line after its header.
func headerEnd(b []byte) (int, string) {
	nl := "\n"
	if i := bytes.IndexByte(b, '\n'); i > 0 && b[i-1] == '\r' {
		nl = "\r\n"
	}
	if bytes.HasPrefix(b, []byte(nl)) {
		return 0, nl
	}
	i := bytes.Index(b, []byte(nl+nl))
	if i < 0 {
		return -1, nl
	}
	return i + len(nl), nl
}
