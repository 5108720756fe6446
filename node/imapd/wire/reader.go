package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Kind tells which kind of token a Value is.
type Kind uint8

const (
	// Atom is an unquoted token: a keyword, number, sequence set, flag
	// (\Seen), NIL, or a FETCH attribute with a section.
	Atom Kind = iota + 1
	// String is a quoted string or a literal.
	String
	// List is a parenthesised list.
	List
)

func (k Kind) String() string {
	switch k {
	case Atom:
		return "atom"
	case String:
		return "string"
	case List:
		return "list"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Value is one argument of a command.
type Value struct {
	Kind Kind
	// Str is an atom's text (for a FETCH attribute with a section, the
	// name before "[") or a string's contents.
	Str string
	// List holds a List's items.
	List []Value
	// HasSection says the atom was followed by "[...]" (BODY[], BINARY[1]);
	// Section holds what was inside, Partial what followed "]" ("<0.100>").
	HasSection bool
	Section    []Value
	Partial    string
	// Literal says a String came as a literal, Binary that it was a
	// literal8 (~{n}, RFC 3516 §4.2).
	Literal, Binary bool
}

// IsNIL says v is the atom NIL.
func (v Value) IsNIL() bool {
	return v.Kind == Atom && !v.HasSection && strings.EqualFold(v.Str, "NIL")
}

// AString returns v as an astring (RFC 9051 §9: atom or string) and
// whether it is one.
func (v Value) AString() (string, bool) {
	if v.Kind == String || (v.Kind == Atom && !v.HasSection) {
		return v.Str, true
	}
	return "", false
}

// Command is one parsed client command.
type Command struct {
	Tag  string
	Name string // upper case: "LOGIN", "UID" (the sub-command is Args[0])
	Args []Value
	// Pending, when not nil, is a streamed literal that ends the arguments
	// read so far: read it (or not), then call Reader.More for the rest.
	Pending *Literal
}

// Limits bound what one command may make a Reader read and hold.
// A zero field takes its default.
type Limits struct {
	// MaxLine bounds the bytes of one line between literals. Default 64 KiB.
	MaxLine int
	// MaxDepth bounds the nesting of lists and sections. Default 32.
	MaxDepth int
	// MaxLiteral bounds a literal read into memory. Default 64 KiB.
	MaxLiteral int64
	// MaxCommand bounds all bytes of one command held in memory. Default 1 MiB.
	MaxCommand int64
	// MaxDiscard bounds what is skipped after a syntax error (the rest of
	// the line and any non-synchronizing literals it announced) before the
	// error becomes fatal. Default 64 MiB.
	MaxDiscard int64
	// Stream says which commands' top-level literals are streamed (see
	// Command.Pending). Default: APPEND only.
	Stream func(name string) bool
	// MaxStream bounds a streamed literal (APPENDLIMIT); a larger one is
	// refused with a TooBig error. Default 64 MiB.
	MaxStream int64
}

func (l *Limits) setDefaults() {
	if l.MaxLine <= 0 {
		l.MaxLine = 64 << 10
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = 32
	}
	if l.MaxLiteral <= 0 {
		l.MaxLiteral = 64 << 10
	}
	if l.MaxCommand <= 0 {
		l.MaxCommand = 1 << 20
	}
	if l.MaxDiscard <= 0 {
		l.MaxDiscard = 64 << 20
	}
	if l.Stream == nil {
		l.Stream = func(name string) bool { return name == "APPEND" }
	}
	if l.MaxStream <= 0 {
		l.MaxStream = 64 << 20
	}
}

// SyntaxError is a command the Reader could not parse. The session
// answers "Tag BAD Text" ("* BAD Text" when Tag is empty), or
// "Tag NO [TOOBIG] Text" when TooBig. When Fatal, the stream cannot be
// resynchronised: the session answers, says BYE and closes.
type SyntaxError struct {
	Tag    string
	Text   string
	TooBig bool
	Fatal  bool
}

func (e *SyntaxError) Error() string { return "imap syntax: " + e.Text }

// ErrNUL is returned by a streamed non-binary literal that holds a NUL
// byte (RFC 9051 §4.3: CHAR8 excludes NUL; only literal8 may carry it).
var ErrNUL = errors.New("wire: NUL byte in a literal; use literal8 (~{n}) for binary data")

// Reader parses commands from a client.
type Reader struct {
	br  *bufio.Reader
	lim Limits
	// Continue is called before the bytes of a synchronizing literal are
	// read: it must send a continuation request ("+ ...") and flush. An
	// error ends the command: ReadCommand returns it, the literal is not
	// read (the client waits for "+"). A *SyntaxError is answered to the
	// command's tag like any other; other errors end the connection.
	Continue func(size int64) error

	cmd      *Command
	line     int   // bytes read on the current line
	held     int64 // bytes of the current command held in memory
	atEOL    bool  // the current line's LF has been read
	depth    int
	streamed bool // the current command has had a streamed literal
}

// NewReader returns a Reader of commands from br.
func NewReader(br *bufio.Reader, lim Limits) *Reader {
	lim.setDefaults()
	return &Reader{br: br, lim: lim}
}

// ReadCommand reads the next command. A *SyntaxError means the command was
// bad and its line has been consumed; any other error is the connection's.
// If the previous command still had a Pending literal or unread
// arguments, their bytes are skipped first.
func (r *Reader) ReadCommand() (*Command, error) {
	if r.cmd != nil {
		if err := r.finishPrevious(); err != nil {
			return nil, err
		}
	}
	r.cmd = &Command{}
	r.line, r.held, r.atEOL, r.depth, r.streamed = 0, 0, false, 0, false
	c := r.cmd
	tag, err := r.readTag()
	if err != nil {
		return r.fail(err)
	}
	c.Tag = tag
	if err := r.expectSP("after the tag"); err != nil {
		return r.fail(err)
	}
	name, err := r.readAtom(false)
	if err != nil {
		return r.fail(err)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		if !(b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return r.fail(r.errf("Bad command name %q", name))
		}
	}
	c.Name = strings.ToUpper(name)
	return r.readArgs()
}

// More continues the command after its Pending literal: it skips what was
// not read of that literal and returns the command with the further
// arguments appended (and possibly a new Pending). Errors are as for
// ReadCommand.
func (r *Reader) More(c *Command) (*Command, error) {
	if c != r.cmd || c.Pending == nil {
		return nil, errors.New("wire: More without a pending literal")
	}
	lit := c.Pending
	if err := lit.drain(); err != nil {
		if errors.Is(err, ErrNUL) {
			c.Pending = nil
			return r.fail(r.errf("NUL byte in a literal (use literal8 ~{n} for binary data)"))
		}
		return nil, err
	}
	c.Pending = nil
	r.line = 0
	return r.readArgs()
}

// finishPrevious consumes the rest of a command the session stopped
// reading (a Pending literal not followed by More), so that the next
// command starts at a line boundary. A non-fatal syntax error in that rest
// is dropped: the session has already answered the command.
func (r *Reader) finishPrevious() error {
	for r.cmd != nil && r.cmd.Pending != nil {
		if _, err := r.More(r.cmd); err != nil {
			var se *SyntaxError
			if errors.As(err, &se) && !se.Fatal {
				return nil
			}
			return err
		}
	}
	r.cmd = nil
	return nil
}

// readArgs reads top-level arguments up to the end of the line, or up to a
// streamed literal.
func (r *Reader) readArgs() (*Command, error) {
	c := r.cmd
	for {
		b, err := r.peekLine()
		if err != nil {
			return r.fail(err)
		}
		if b == '\r' || b == '\n' {
			if err := r.readEOL(); err != nil {
				return r.fail(err)
			}
			r.cmd = nil
			return c, nil
		}
		if len(c.Args) > 0 || c.Name != "" {
			if err := r.expectSP("between arguments"); err != nil {
				return r.fail(err)
			}
		}
		v, lit, err := r.readValue(false, true)
		if err != nil {
			return r.fail(err)
		}
		if lit != nil {
			c.Pending = lit
			r.streamed = true
			return c, nil
		}
		c.Args = append(c.Args, v)
	}
}

// fail turns err into the command's result: for a syntax error the rest of
// the bad line is discarded first.
func (r *Reader) fail(err error) (*Command, error) {
	var se *SyntaxError
	if !errors.As(err, &se) {
		r.cmd = nil
		return nil, err
	}
	if r.cmd != nil {
		se.Tag = r.cmd.Tag
	}
	r.cmd = nil
	if !se.Fatal && !r.atEOL {
		if derr := r.discardLine(); derr != nil {
			var de *SyntaxError
			if errors.As(derr, &de) {
				se.Fatal = true
			} else {
				return nil, derr
			}
		}
	}
	return nil, se
}

func (r *Reader) errf(format string, args ...any) *SyntaxError {
	return &SyntaxError{Text: fmt.Sprintf(format, args...)}
}

// discardLine skips to the end of the current line. A line that ends in a
// non-synchronizing literal header is followed by that literal without a
// continuation, so its bytes and the line after it are skipped too.
func (r *Reader) discardLine() error {
	var skipped int64
	var tail []byte
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		skipped++
		if skipped > r.lim.MaxDiscard {
			return &SyntaxError{Text: "Too much data after a syntax error", Fatal: true}
		}
		if b != '\n' {
			if len(tail) == 32 {
				copy(tail, tail[1:])
				tail = tail[:31]
			}
			tail = append(tail, b)
			continue
		}
		n, ok := nonSyncTail(tail)
		if !ok {
			r.atEOL = true
			return nil
		}
		if skipped+n > r.lim.MaxDiscard {
			return &SyntaxError{Text: "Too much data after a syntax error", Fatal: true}
		}
		if _, err := r.br.Discard(int(n)); err != nil {
			return err
		}
		skipped += n
		tail = tail[:0]
	}
}

// nonSyncTail reports whether a line (without its LF) ends in a
// non-synchronizing literal header "{n+}" and the literal's size.
func nonSyncTail(tail []byte) (int64, bool) {
	s := strings.TrimSuffix(string(tail), "\r")
	if !strings.HasSuffix(s, "+}") {
		return 0, false
	}
	i := strings.LastIndexByte(s, '{')
	if i < 0 {
		return 0, false
	}
	n, ok := parseNumber(s[i+1 : len(s)-2])
	return n, ok
}

func parseNumber(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// peekLine returns the next byte of the line without consuming it.
func (r *Reader) peekLine() (byte, error) {
	p, err := r.br.Peek(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// next consumes one byte of the line, enforcing the line bound.
func (r *Reader) next() (byte, error) {
	b, err := r.br.ReadByte()
	if err != nil {
		return 0, err
	}
	if b == '\n' {
		r.atEOL = true
	}
	r.line++
	if r.line > r.lim.MaxLine {
		return 0, r.errf("Line too long (more than %d bytes)", r.lim.MaxLine)
	}
	return b, nil
}

func (r *Reader) expectSP(where string) error {
	b, err := r.next()
	if err != nil {
		return err
	}
	if b != ' ' {
		if b == '\r' || b == '\n' {
			r.unreadEOL(b)
			return r.errf("Missing argument %s", where)
		}
		return r.errf("Expected a space %s, got %q", where, b)
	}
	return nil
}

// unreadEOL handles a line end met where something else was due: the
// line is over, so the error must not discard the next one.
func (r *Reader) unreadEOL(b byte) {
	if b == '\r' {
		if p, err := r.br.Peek(1); err == nil && p[0] == '\n' {
			r.br.ReadByte()
		}
	}
	r.atEOL = true
}

func (r *Reader) readEOL() error {
	b, err := r.next()
	if err != nil {
		return err
	}
	if b == '\n' {
		return nil
	}
	if b != '\r' {
		return r.errf("Expected the end of the line, got %q", b)
	}
	b, err = r.next()
	if err != nil {
		return err
	}
	if b != '\n' {
		return r.errf("CR not followed by LF")
	}
	return nil
}

func (r *Reader) readTag() (string, error) {
	var sb strings.Builder
	for {
		b, err := r.peekLine()
		if err != nil {
			return "", err
		}
		if b == ' ' || b == '\r' || b == '\n' {
			break
		}
		r.next()
		if b <= 0x20 || b >= 0x7f || b == '+' || b == '(' || b == ')' || b == '{' || b == '"' || b == '\\' || b == '%' || b == '*' {
			return "", r.errf("Invalid character %q in tag", b)
		}
		sb.WriteByte(b)
	}
	if sb.Len() == 0 {
		b, _ := r.next()
		if b == '\r' || b == '\n' {
			r.unreadEOL(b)
			return "", r.errf("Empty command line")
		}
		return "", r.errf("Missing tag")
	}
	return sb.String(), nil
}

// sectionNames are the FETCH attributes whose "[" opens a section; in any
// other atom "[" and "]" are ordinary characters (mailbox "[Gmail]/Sent").
var sectionNames = map[string]bool{"BODY": true, "BODY.PEEK": true, "BINARY": true, "BINARY.PEEK": true, "BINARY.SIZE": true}

func isAtomEnd(b byte, inSection bool) bool {
	switch b {
	case ' ', '(', ')', '{', '"', '\r', '\n':
		return true
	case ']':
		return inSection
	}
	return b < 0x20 || b == 0x7f
}

// readAtom reads an atom up to a delimiter (not consumed).
func (r *Reader) readAtom(inSection bool) (string, error) {
	var sb strings.Builder
	for {
		b, err := r.peekLine()
		if err != nil {
			return "", err
		}
		if isAtomEnd(b, inSection) {
			if b < 0x20 && b != '\r' && b != '\n' || b == 0x7f {
				r.next()
				return "", r.errf("Control character %q in an atom", b)
			}
			break
		}
		if b == '[' && sectionNames[strings.ToUpper(sb.String())] {
			break
		}
		if _, err := r.next(); err != nil {
			return "", err
		}
		sb.WriteByte(b)
	}
	if sb.Len() == 0 {
		b, _ := r.next()
		if b == '\r' || b == '\n' {
			r.unreadEOL(b)
			return "", r.errf("Missing argument at the end of the line")
		}
		return "", r.errf("Unexpected %q", b)
	}
	s := sb.String()
	if !utf8.ValidString(s) {
		return "", r.errf("Atom is not valid UTF-8")
	}
	return s, nil
}

// readValue reads one argument. top says it is a top-level argument, whose
// literal may be streamed (returned as lit).
func (r *Reader) readValue(inSection, top bool) (Value, *Literal, error) {
	b, err := r.peekLine()
	if err != nil {
		return Value{}, nil, err
	}
	switch {
	case b == '(':
		r.next()
		items, err := r.readList(')', inSection)
		return Value{Kind: List, List: items}, nil, err
	case b == '"':
		r.next()
		s, err := r.readQuoted()
		return Value{Kind: String, Str: s}, nil, err
	case b == '{':
		return r.readLiteral(false, top)
	case b == '~':
		r.next()
		p, err := r.peekLine()
		if err != nil {
			return Value{}, nil, err
		}
		if p == '{' {
			return r.readLiteral(true, top)
		}
		if isAtomEnd(p, inSection) {
			return Value{Kind: Atom, Str: "~"}, nil, nil
		}
		rest, err := r.readAtom(inSection)
		return Value{Kind: Atom, Str: "~" + rest}, nil, err
	case b == ')':
		r.next()
		return Value{}, nil, r.errf("Unexpected \")\"")
	}
	s, err := r.readAtom(inSection)
	if err != nil {
		return Value{}, nil, err
	}
	v := Value{Kind: Atom, Str: s}
	if p, err := r.br.Peek(1); err == nil && p[0] == '[' && sectionNames[strings.ToUpper(s)] {
		r.next()
		items, err := r.readList(']', true)
		if err != nil {
			return v, nil, err
		}
		v.HasSection, v.Section = true, items
		if p, err := r.br.Peek(1); err == nil && !isAtomEnd(p[0], inSection) {
			v.Partial, err = r.readAtom(inSection)
			if err != nil {
				return v, nil, err
			}
		}
	}
	return v, nil, nil
}

// readList reads items up to the closing byte (")" or "]"), the opening
// one already consumed.
func (r *Reader) readList(closing byte, inSection bool) ([]Value, error) {
	r.depth++
	if r.depth > r.lim.MaxDepth {
		return nil, r.errf("Too deeply nested (more than %d levels)", r.lim.MaxDepth)
	}
	defer func() { r.depth-- }()
	var items []Value
	for {
		b, err := r.peekLine()
		if err != nil {
			return nil, err
		}
		if b == closing {
			r.next()
			return items, nil
		}
		if b == '\r' || b == '\n' {
			r.next()
			r.unreadEOL(b)
			return nil, r.errf("Missing %q at the end of the line", closing)
		}
		if len(items) > 0 {
			if err := r.expectSP("between list items"); err != nil {
				return nil, err
			}
		}
		v, _, err := r.readValue(inSection || closing == ']', false)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
	}
}

// readQuoted reads a quoted string's contents, the opening quote consumed
// (RFC 9051 §4.3: only \" and \\ are escapes; no CR, LF or NUL). It never
// reads past the end of the line.
func (r *Reader) readQuoted() (string, error) {
	var sb strings.Builder
	for {
		b, err := r.next()
		if err != nil {
			return "", err
		}
		switch b {
		case '"':
			s := sb.String()
			if !utf8.ValidString(s) {
				return "", r.errf("Quoted string is not valid UTF-8")
			}
			return s, nil
		case '\\':
			e, err := r.next()
			if err != nil {
				return "", err
			}
			if e != '"' && e != '\\' {
				if e == '\r' || e == '\n' {
					r.unreadEOL(e)
					return "", r.errf("Unterminated quoted string")
				}
				return "", r.errf("Invalid escape \\%c in a quoted string", e)
			}
			sb.WriteByte(e)
		case '\r', '\n':
			r.unreadEOL(b)
			return "", r.errf("Unterminated quoted string")
		case 0:
			return "", r.errf("NUL byte in a quoted string")
		default:
			sb.WriteByte(b)
		}
	}
}

// readLiteral reads "{n}" / "{n+}" / "~{n}" CRLF and the literal, or, for a
// top-level literal of a streamed command, returns it as a Literal.
func (r *Reader) readLiteral(binary, top bool) (Value, *Literal, error) {
	r.next() // "{"
	var digits strings.Builder
	nonSync := false
	for {
		b, err := r.next()
		if err != nil {
			return Value{}, nil, err
		}
		if b >= '0' && b <= '9' {
			digits.WriteByte(b)
			continue
		}
		if b == '+' {
			if b2, err := r.next(); err != nil {
				return Value{}, nil, err
			} else if b2 != '}' {
				return Value{}, nil, r.errf("Bad literal header")
			}
			nonSync = true
			break
		}
		if b == '}' {
			break
		}
		if b == '\r' || b == '\n' {
			r.unreadEOL(b)
		}
		return Value{}, nil, r.errf("Bad literal header")
	}
	n, ok := parseNumber(digits.String())
	if !ok {
		return Value{}, nil, r.errf("Bad literal size %q", digits.String())
	}
	if err := r.readEOL(); err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			se.Text = "A literal header must end the line"
		}
		return Value{}, nil, err
	}
	// The line ended; the literal's bytes do not count toward it.
	r.line, r.atEOL = 0, false
	if top && r.lim.Stream(r.cmd.Name) {
		if n > r.lim.MaxStream {
			return Value{}, nil, r.tooBig(n, nonSync)
		}
		if !nonSync && r.Continue != nil {
			if err := r.Continue(n); err != nil {
				r.atEOL = true
				return Value{}, nil, err
			}
		}
		return Value{}, &Literal{r: r, Size: n, Binary: binary, NonSync: nonSync, left: n}, nil
	}
	if n > r.lim.MaxLiteral || r.held+n > r.lim.MaxCommand {
		return Value{}, nil, r.tooBig(n, nonSync)
	}
	if !nonSync && r.Continue != nil {
		if err := r.Continue(n); err != nil {
			r.atEOL = true
			return Value{}, nil, err
		}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.br, buf); err != nil {
		return Value{}, nil, err
	}
	r.held += n
	if !binary {
		for _, c := range buf {
			if c == 0 {
				return Value{}, nil, r.errf("NUL byte in a literal (use literal8 ~{n} for binary data)")
			}
		}
	}
	return Value{Kind: String, Str: string(buf), Literal: true, Binary: binary}, nil, nil
}

// tooBig refuses a literal over its bound. A synchronizing one was never
// invited, so the client sends nothing more; a non-synchronizing one is
// on its way and is skipped.
func (r *Reader) tooBig(n int64, nonSync bool) error {
	se := &SyntaxError{Text: fmt.Sprintf("Literal of %d bytes is too big", n), TooBig: true}
	if !nonSync {
		r.atEOL = true
		return se
	}
	if n > r.lim.MaxDiscard {
		se.Fatal = true
		return se
	}
	if _, err := r.br.Discard(int(n)); err != nil {
		return err
	}
	return se
}

// Literal is a streamed literal's bytes (Command.Pending).
type Literal struct {
	Size    int64
	Binary  bool // literal8
	NonSync bool
	r       *Reader
	left    int64
	err     error
}

// Read reads the literal. It returns io.EOF at its end and ErrNUL at a
// NUL byte in a non-binary literal.
func (l *Literal) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if l.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.br.Read(p)
	l.left -= int64(n)
	if !l.Binary {
		for i, c := range p[:n] {
			if c == 0 {
				l.err = ErrNUL
				return i, ErrNUL
			}
		}
	}
	if err == io.EOF && l.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		l.err = err
	}
	return n, err
}

// drain skips what is left of the literal.
func (l *Literal) drain() error {
	if l.left > 0 {
		n, err := l.r.br.Discard(int(l.left))
		l.left -= int64(n)
		if err != nil {
			return err
		}
	}
	if l.err == ErrNUL {
		return ErrNUL
	}
	return nil
}

// ReadLine reads one raw line outside any command: a SASL response after
// "+" (RFC 9051 §6.2.2) or IDLE's DONE (RFC 2177). It returns the line
// without CRLF; a line over Limits.MaxLine is discarded and answered with
// a *SyntaxError.
func (r *Reader) ReadLine() (string, error) {
	var sb strings.Builder
	n := 0
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return "", err
		}
		if b == '\n' {
			return strings.TrimSuffix(sb.String(), "\r"), nil
		}
		n++
		if n > r.lim.MaxLine {
			r.atEOL, r.cmd = false, nil
			if err := r.discardLine(); err != nil {
				return "", err
			}
			return "", &SyntaxError{Text: fmt.Sprintf("Line too long (more than %d bytes)", r.lim.MaxLine)}
		}
		sb.WriteByte(b)
	}
}

// Buffered reports how many bytes have been received and not yet parsed.
// After STARTTLS it must be 0: bytes sent before the handshake must not be
// taken as commands under TLS (RFC 9051 §11.1).
func (r *Reader) Buffered() int { return r.br.Buffered() }
