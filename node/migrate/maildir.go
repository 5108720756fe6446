package migrate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Maildir++ as Dovecot lays it out (maildir:~/Maildir): the root's cur,
// new and tmp are INBOX; mailbox A/B is the folder .A.B (each level in
// modified UTF-7, with '.' inside a level encoded too, since '.' separates
// levels), holding an empty maildirfolder file. A message is one file
// named UNIQUE:2,FLAGS where FLAGS are D (\Draft), F (\Flagged), P
// ($Forwarded), R (\Answered), S (\Seen), T (\Deleted) and the letters a-z
// for the folder's first 26 keywords, listed in its dovecot-keywords file
// ("0 name" per line). The file's mtime is the INTERNALDATE, as Dovecot
// keeps it. $Forwarded is written twice: as P, which other Maildir readers
// know ("passed"), and as a keyword letter, because Dovecot 2.3 does not
// serve P as $Forwarded (its own Maildir keeps $Forwarded as a keyword);
// reading it back, the two are one flag.

var maildirFlags = []struct {
	c    byte
	flag string
}{{'D', `\Draft`}, {'F', `\Flagged`}, {'P', "$Forwarded"}, {'R', `\Answered`}, {'S', `\Seen`}, {'T', `\Deleted`}}

// maildirFolder returns the folder (relative to the root) of a mailbox.
func maildirFolder(name string) string {
	if name == "INBOX" {
		return "."
	}
	levels := strings.Split(name, "/")
	for i, l := range levels {
		levels[i] = encodeMUTF7(l)
	}
	return "." + strings.Join(levels, ".")
}

// MaildirSink writes an export as a Maildir++ tree at a root directory.
type MaildirSink struct {
	root string
	dir  string
	box  Mailbox
	kw   []string // keyword index of the open folder
	uids []string // base names of the open folder's files, in order
	n    int
	host string
	// DroppedKeywords counts keywords beyond the 26 a folder can name.
	DroppedKeywords int
}

func NewMaildirSink(root string) (*MaildirSink, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	return &MaildirSink{root: root, host: "continuum"}, nil
}

func (s *MaildirSink) Mailbox(mb Mailbox) error {
	if err := s.flushFolder(); err != nil {
		return err
	}
	s.box, s.kw, s.uids = mb, nil, nil
	s.dir = filepath.Join(s.root, maildirFolder(mb.Name))
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(s.dir, sub), 0o700); err != nil {
			return err
		}
	}
	if mb.Name != "INBOX" {
		if err := os.WriteFile(filepath.Join(s.dir, "maildirfolder"), nil, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (s *MaildirSink) Message(m *Message) error {
	if s.dir == "" {
		return errors.New("maildir: message before a mailbox")
	}
	s.n++
	var letters []byte
	for _, f := range maildirFlags {
		if hasFlag(m.Flags, f.flag) {
			letters = append(letters, f.c)
		}
	}
	for _, f := range m.Flags {
		if strings.HasPrefix(f, `\`) {
			continue
		}
		i := slices.Index(s.kw, f)
		if i < 0 {
			if len(s.kw) == 26 {
				s.DroppedKeywords++
				continue
			}
			s.kw = append(s.kw, f)
			i = len(s.kw) - 1
		}
		letters = append(letters, byte('a'+i))
	}
	slices.Sort(letters)
	date := m.Date
	if date.IsZero() {
		date = time.Now()
	}
	base := fmt.Sprintf("%d.M%dP%d.%s,S=%d", date.Unix(), s.n, os.Getpid(), s.host, len(m.Data))
	tmp := filepath.Join(s.dir, "tmp", base)
	if err := os.WriteFile(tmp, m.Data, 0o600); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, date, date); err != nil {
		return err
	}
	s.uids = append(s.uids, base)
	return os.Rename(tmp, filepath.Join(s.dir, "cur", base+":2,"+string(letters)))
}

// flushFolder writes the open folder's dovecot-keywords and its
// dovecot-uidlist (version 3), which keeps the messages' order: the file
// dates are the INTERNALDATEs, which need not follow it.
func (s *MaildirSink) flushFolder() error {
	if s.dir == "" {
		return nil
	}
	if len(s.kw) > 0 {
		var b strings.Builder
		for i, k := range s.kw {
			fmt.Fprintf(&b, "%d %s\n", i, k)
		}
		if err := os.WriteFile(filepath.Join(s.dir, "dovecot-keywords"), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "3 V%d N%d\n", max(s.box.UIDValidity, 1), len(s.uids)+1)
	for i, u := range s.uids {
		fmt.Fprintf(&b, "%d :%s\n", i+1, u)
	}
	return os.WriteFile(filepath.Join(s.dir, "dovecot-uidlist"), []byte(b.String()), 0o600)
}

func (s *MaildirSink) Close() error { return s.flushFolder() }

// MaildirSource reads a Maildir++ tree.
type MaildirSource struct {
	root    string
	folders map[string]string // mailbox name → folder path
	boxes   []Mailbox
}

func NewMaildirSource(root string) (*MaildirSource, error) {
	src := &MaildirSource{root: root, folders: map[string]string{}}
	add := func(name, dir string) {
		src.folders[name] = dir
		src.boxes = append(src.boxes, Mailbox{Name: name, SpecialUse: specialUseByName(name), Subscribed: true, Messages: -1, Bytes: -1})
	}
	if isMaildir(root) {
		add("INBOX", root)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || !strings.HasPrefix(n, ".") || n == "." || n == ".." || !isMaildir(filepath.Join(root, n)) {
			continue
		}
		levels := strings.Split(n[1:], ".")
		for i, l := range levels {
			d, err := decodeMUTF7(l)
			if err != nil {
				return nil, fmt.Errorf("maildir folder %q: %w", n, err)
			}
			levels[i] = strings.ReplaceAll(d, "/", "_")
		}
		add(canonicalName(strings.Join(levels, "/")), filepath.Join(root, n))
	}
	if len(src.boxes) == 0 {
		return nil, fmt.Errorf("%s: no Maildir here (no cur/new/tmp)", root)
	}
	slices.SortFunc(src.boxes, func(a, b Mailbox) int { return strings.Compare(a.Name, b.Name) })
	return src, nil
}

func isMaildir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, "cur"))
	return err == nil && st.IsDir()
}

type maildirFile struct {
	path  string
	base  string // without ":2,…"
	info  string // flags
	mtime time.Time
	size  int64
}

func (s *MaildirSource) list(dir string) ([]maildirFile, error) {
	var files []maildirFile
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		for _, e := range entries {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // moved or deleted meanwhile
			}
			base, info, _ := strings.Cut(e.Name(), ":2,")
			files = append(files, maildirFile{path: filepath.Join(dir, sub, e.Name()), base: base, info: info, mtime: fi.ModTime(), size: fi.Size()})
		}
	}
	// Dovecot's UID order when it kept one, else by date then name.
	order := readUIDList(filepath.Join(dir, "dovecot-uidlist"))
	sort.SliceStable(files, func(i, j int) bool {
		a, b := files[i], files[j]
		ua, oka := order[a.base]
		ub, okb := order[b.base]
		switch {
		case oka && okb:
			return ua < ub
		case oka != okb:
			return oka
		case !a.mtime.Equal(b.mtime):
			return a.mtime.Before(b.mtime)
		}
		return a.base < b.base
	})
	return files, nil
}

// readUIDList reads Dovecot's dovecot-uidlist: "UID [fields] :BASENAME".
func readUIDList(path string) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue // the header line
		}
		line := sc.Text()
		sp := strings.IndexByte(line, ' ')
		colon := strings.Index(line, " :")
		if sp < 0 || colon < 0 {
			continue
		}
		uid, err := strconv.ParseUint(line[:sp], 10, 64)
		if err != nil {
			continue
		}
		out[line[colon+2:]] = uid
	}
	return out
}

func readKeywords(dir string) map[byte]string {
	out := map[byte]string{}
	b, err := os.ReadFile(filepath.Join(dir, "dovecot-keywords"))
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(b), "\n") {
		i, name, ok := strings.Cut(strings.TrimSpace(line), " ")
		n, err := strconv.Atoi(i)
		if ok && err == nil && n >= 0 && n < 26 && name != "" {
			out[byte('a'+n)] = name
		}
	}
	return out
}

func (s *MaildirSource) Mailboxes(ctx context.Context) ([]Mailbox, error) {
	for i := range s.boxes {
		files, err := s.list(s.folders[s.boxes[i].Name])
		if err != nil {
			return nil, err
		}
		s.boxes[i].Messages, s.boxes[i].Bytes = len(files), 0
		for _, f := range files {
			s.boxes[i].Bytes += f.size
		}
	}
	return s.boxes, nil
}

func (s *MaildirSource) Messages(ctx context.Context, mb Mailbox, fn func(*Message) error, skip func(id, reason string)) error {
	dir := s.folders[mb.Name]
	files, err := s.list(dir)
	if err != nil {
		return err
	}
	kw := readKeywords(dir)
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := filepath.Join(filepath.Base(filepath.Dir(filepath.Dir(f.path))), filepath.Base(filepath.Dir(f.path)), filepath.Base(f.path))
		if f.size > MaxMessageBytes {
			skip(id, "over 1 GiB")
			continue
		}
		data, err := os.ReadFile(f.path)
		if err != nil {
			skip(id, err.Error())
			continue
		}
		var flags []string
		for i := 0; i < len(f.info); i++ {
			c := f.info[i]
			if j := slices.IndexFunc(maildirFlags, func(m struct {
				c    byte
				flag string
			}) bool {
				return m.c == c
			}); j >= 0 {
				flags = addFlag(flags, maildirFlags[j].flag)
			} else if k, ok := kw[c]; ok {
				flags = addFlag(flags, k)
			}
		}
		if err := fn(&Message{Data: toCRLF(data), Flags: flags, Date: f.mtime, SourceID: id}); err != nil {
			return err
		}
	}
	return nil
}

func (s *MaildirSource) Close() error { return nil }

// addFlag appends f unless flags holds it already (flags and keywords are
// case-insensitive, RFC 9051 §2.3.2): P and a "$Forwarded" keyword letter
// are one flag.
func addFlag(flags []string, f string) []string {
	if slices.ContainsFunc(flags, func(g string) bool { return strings.EqualFold(g, f) }) {
		return flags
	}
	return append(flags, f)
}
