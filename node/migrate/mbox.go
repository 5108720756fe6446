package migrate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// mboxrd (the mbox variant that quotes reversibly): every message starts
// with a "From " line, and a line of the message that matches ^>*From  gets
// one more '>' on the way out and loses one on the way in. The "From "
// line's date is the message's INTERNALDATE (UTC, asctime layout); flags
// travel in the Status, X-Status and X-Keywords fields (flags.go). The
// message bytes are written as stored (CRLF included): import gives them
// back exactly.

const asctime = "Mon Jan _2 15:04:05 2006"

var fromQuoted = regexp.MustCompile(`^>*From `)

// MboxSink writes an export as mbox: one file when Path is a file (a
// single mailbox), else a directory with one NAME.mbox per mailbox, the
// hierarchy as subdirectories (Work/Projects.mbox).
type MboxSink struct {
	path   string
	single bool
	f      *os.File
	w      *bufio.Writer
	n      int
}

// NewMboxSink prepares an export into path; single writes every message
// into the one file path.
func NewMboxSink(path string, single bool) (*MboxSink, error) {
	if !single {
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, err
		}
	}
	return &MboxSink{path: path, single: single}, nil
}

func (s *MboxSink) Mailbox(mb Mailbox) error {
	if s.single && s.f != nil {
		return nil
	}
	if err := s.closeFile(); err != nil {
		return err
	}
	p := s.path
	if !s.single {
		p = filepath.Join(s.path, filepath.FromSlash(mb.Name)+".mbox")
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	s.f, s.w = f, bufio.NewWriterSize(f, 256<<10)
	return nil
}

func (s *MboxSink) Message(m *Message) error {
	if s.w == nil {
		return errors.New("mbox: message before a mailbox")
	}
	return writeMboxMessage(s.w, m)
}

// writeMboxMessage writes one message in mboxrd form.
func writeMboxMessage(w *bufio.Writer, m *Message) error {
	date := m.Date
	if date.IsZero() {
		date = time.Unix(0, 0)
	}
	fmt.Fprintf(w, "From MAILER-DAEMON %s\n", date.UTC().Format(asctime))
	data := addMboxFlags(m.Data, m.Flags)
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		data = data[len(line):]
		if fromQuoted.Match(line) {
			w.WriteByte('>')
		}
		w.Write(line)
	}
	if !bytes.HasSuffix(m.Data, []byte("\n")) {
		w.WriteByte('\n')
	}
	return w.WriteByte('\n')
}

func (s *MboxSink) closeFile() error {
	if s.f == nil {
		return nil
	}
	err := s.w.Flush()
	if err2 := s.f.Sync(); err == nil {
		err = err2
	}
	if err2 := s.f.Close(); err == nil {
		err = err2
	}
	s.f, s.w = nil, nil
	return err
}

func (s *MboxSink) Close() error { return s.closeFile() }

// MboxSource reads an import from mbox: one file (into Into, INBOX by
// default), or a directory of them, where every NAME.mbox file, and every
// other file that starts with "From ", is the mailbox NAME (its path
// relative to the directory; Dovecot's and mutt's mbox trees).
type MboxSource struct {
	files map[string]string // mailbox name → file
	boxes []Mailbox
}

// NewMboxSource opens path (a file or a directory); into names the
// mailbox of a single file.
func NewMboxSource(path, into string) (*MboxSource, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	src := &MboxSource{files: map[string]string{}}
	add := func(name, file string) {
		name = canonicalName(name)
		src.files[name] = file
		fi, _ := os.Stat(file)
		var size int64 = -1
		if fi != nil {
			size = fi.Size()
		}
		src.boxes = append(src.boxes, Mailbox{Name: name, SpecialUse: specialUseByName(name), Subscribed: true, Messages: -1, Bytes: size})
	}
	if !st.IsDir() {
		if into == "" {
			into = "INBOX"
		}
		add(into, path)
		return src, nil
	}
	err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && p != path {
				return filepath.SkipDir // .imap index directories and the like
			}
			return nil
		}
		rel, _ := filepath.Rel(path, p)
		rel = filepath.ToSlash(rel)
		switch {
		case strings.HasSuffix(rel, ".mbox"):
			add(strings.TrimSuffix(rel, ".mbox"), p)
		case !strings.HasPrefix(d.Name(), ".") && startsWithFrom(p):
			add(rel, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(src.boxes, func(a, b Mailbox) int { return strings.Compare(a.Name, b.Name) })
	return src, nil
}

func startsWithFrom(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	var b [5]byte
	_, err = io.ReadFull(f, b[:])
	return err == nil && string(b[:]) == "From "
}

func (s *MboxSource) Mailboxes(ctx context.Context) ([]Mailbox, error) {
	// Count the messages of each file for the progress bar: one quick
	// read of the file, which the import reads again from the page cache.
	for i := range s.boxes {
		n, err := countMbox(s.files[s.boxes[i].Name])
		if err != nil {
			return nil, err
		}
		s.boxes[i].Messages = n
	}
	return s.boxes, nil
}

func countMbox(file string) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	n, blank := 0, true
	for {
		line, err := r.ReadBytes('\n')
		if blank && isFromLine(line) {
			n++
		}
		blank = len(bytes.TrimRight(line, "\r\n")) == 0
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// isFromLine tells a message's "From " line from a body line that starts
// with "From " but was not quoted (mboxo writers, hand-made files): it
// must follow a blank line (checked by the caller) and carry a date, as
// mutt's reader checks too.
func isFromLine(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("From ")) {
		return false
	}
	return !fromLineDate(string(line)).IsZero()
}

func fromLineDate(line string) time.Time {
	f := strings.Fields(strings.TrimSpace(line))
	if len(f) < 7 {
		return time.Time{}
	}
	s := strings.Join(f[2:7], " ")
	for _, layout := range []string{"Mon Jan 2 15:04:05 2006", asctime} {
		if t, err := time.Parse(layout, s); err == nil {
			return t
		}
	}
	return time.Time{}
}

func (s *MboxSource) Messages(ctx context.Context, mb Mailbox, fn func(*Message) error, skip func(id, reason string)) error {
	file := s.files[mb.Name]
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return readMbox(ctx, f, filepath.Base(file), fn, skip)
}

func (s *MboxSource) Close() error { return nil }

// readMbox splits an mboxrd stream into messages. One message is in
// memory at a time.
func readMbox(ctx context.Context, r io.Reader, name string, fn func(*Message) error, skip func(id, reason string)) error {
	br := bufio.NewReaderSize(r, 256<<10)
	var (
		buf     bytes.Buffer
		fromLn  string
		n       int
		lineNo  int
		started bool
		tooBig  bool
		blank   = true // the previous line was empty (or there was none)
	)
	emit := func() error {
		if !started {
			return nil
		}
		n++
		id := fmt.Sprintf("%s message %d (line %d)", name, n, lineNo)
		if tooBig {
			skip(id, "over 1 GiB")
			return nil
		}
		data := buf.Bytes()
		// The blank line before the next "From " belongs to the file.
		switch {
		case bytes.HasSuffix(data, []byte("\n\n")):
			data = data[:len(data)-1]
		case bytes.HasSuffix(data, []byte("\r\n\r\n")):
			data = data[:len(data)-2]
		}
		data = toCRLF(data)
		data, flags := takeMboxFlags(data)
		m := &Message{Data: append([]byte(nil), data...), Flags: flags, Date: mboxDate(fromLn, data), SourceID: id}
		return fn(m)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			wasBlank := blank
			blank = len(bytes.TrimRight(line, "\r\n")) == 0
			if wasBlank && isFromLine(line) {
				if err := emit(); err != nil {
					return err
				}
				buf.Reset()
				started, tooBig, fromLn = true, false, string(line)
			} else if started {
				if line[0] == '>' && fromQuoted.Match(line[1:]) {
					line = line[1:]
				}
				if buf.Len()+len(line) > MaxMessageBytes {
					tooBig = true
				} else if !tooBig {
					buf.Write(line)
				}
			} else if len(bytes.TrimSpace(line)) > 0 {
				return fmt.Errorf("%s: not an mbox file (line %d does not start with \"From \")", name, lineNo)
			}
		}
		if err == io.EOF {
			return emit()
		}
		if err != nil {
			return err
		}
	}
}

// mboxDate is the date of the "From " line, or else the Date field.
func mboxDate(fromLine string, data []byte) time.Time {
	if t := fromLineDate(fromLine); !t.IsZero() {
		return t
	}
	if msg, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		if t, err := msg.Header.Date(); err == nil {
			return t
		}
	}
	return time.Time{}
}
