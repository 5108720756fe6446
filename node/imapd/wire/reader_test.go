package wire

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
)

// render shows a parse result compactly: "tag NAME args" or "BAD(tag) text".
func render(c *Command, err error) string {
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			s := fmt.Sprintf("BAD(%s) %s", se.Tag, se.Text)
			if se.TooBig {
				s = "TOOBIG(" + se.Tag + ")"
			}
			if se.Fatal {
				s += " FATAL"
			}
			return s
		}
		return "ERR " + err.Error()
	}
	var sb strings.Builder
	sb.WriteString(c.Tag + " " + c.Name)
	for _, v := range c.Args {
		sb.WriteString(" ")
		renderValue(&sb, v)
	}
	if c.Pending != nil {
		fmt.Fprintf(&sb, " PENDING{%d}", c.Pending.Size)
	}
	return sb.String()
}

func renderValue(sb *strings.Builder, v Value) {
	switch v.Kind {
	case Atom:
		sb.WriteString(v.Str)
		if v.HasSection {
			sb.WriteString("[")
			for i, x := range v.Section {
				if i > 0 {
					sb.WriteString(" ")
				}
				renderValue(sb, x)
			}
			sb.WriteString("]" + v.Partial)
		}
	case String:
		if v.Binary {
			sb.WriteString("~")
		}
		if v.Literal {
			sb.WriteString("L")
		}
		fmt.Fprintf(sb, "%q", v.Str)
	case List:
		sb.WriteString("(")
		for i, x := range v.List {
			if i > 0 {
				sb.WriteString(" ")
			}
			renderValue(sb, x)
		}
		sb.WriteString(")")
	}
}

// readAll parses every command in in, answering continuations with "+".
func readAll(t *testing.T, in string, lim Limits) (results []string, conts int) {
	t.Helper()
	r := NewReader(bufio.NewReader(strings.NewReader(in)), lim)
	r.Continue = func(int64) error { conts++; return nil }
	for {
		c, err := r.ReadCommand()
		if err == io.EOF {
			return results, conts
		}
		results = append(results, render(c, err))
		var se *SyntaxError
		if err != nil && (!errors.As(err, &se) || se.Fatal) {
			return results, conts
		}
		for err == nil && c.Pending != nil {
			b, rerr := io.ReadAll(c.Pending)
			results = append(results, fmt.Sprintf("  literal %q %v", b, rerr))
			c, err = r.More(c)
			results = append(results, "  more: "+render(c, err))
		}
	}
}

func TestReadCommand(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
		conts    int
	}{
		{"simple", "a1 NOOP\r\n", []string{"a1 NOOP"}, 0},
		{"bare LF", "a1 noop\n", []string{"a1 NOOP"}, 0},
		{"login", "a LOGIN alice \"pass \\\"word\\\\\"\r\n", []string{`a LOGIN alice "pass \"word\\"`}, 0},
		{"list empty strings", "a LIST \"\" \"\"\r\n", []string{`a LIST "" ""`}, 0},
		{"uid fetch with sections", "a UID FETCH 1:*,5 (FLAGS BODY.PEEK[HEADER.FIELDS (From \"To\")]<0.100> BINARY[1.2] RFC822.SIZE)\r\n",
			[]string{`a UID FETCH 1:*,5 (FLAGS BODY.PEEK[HEADER.FIELDS (From "To")]<0.100> BINARY[1.2] RFC822.SIZE)`}, 0},
		{"empty section", "a FETCH 1 BODY[]\r\n", []string{"a FETCH 1 BODY[]"}, 0},
		{"brackets in a mailbox atom", "a SELECT [Gmail]/Sent\r\n", []string{"a SELECT [Gmail]/Sent"}, 0},
		{"flags", "a STORE 1 +FLAGS.SILENT (\\Seen $Junk)\r\n", []string{`a STORE 1 +FLAGS.SILENT (\Seen $Junk)`}, 0},
		{"sync literal", "a LOGIN {5}\r\nalice {3}\r\npw!\r\n", []string{`a LOGIN L"alice" L"pw!"`}, 2},
		{"non-sync literal", "a LOGIN {5+}\r\nalice pw\r\n", []string{`a LOGIN L"alice" pw`}, 0},
		{"literal in a list", "a SEARCH CHARSET UTF-8 (SUBJECT {4+}\r\nh\xc3\xa9!)\r\n", []string{"a SEARCH CHARSET UTF-8 (SUBJECT L\"hé!\")"}, 0},
		{"literal8 with NUL", "a SEARCH TEXT ~{3+}\r\na\x00b\r\n", []string{`a SEARCH TEXT ~L"a\x00b"`}, 0},
		{"NUL in plain literal", "a SEARCH TEXT {3+}\r\na\x00b\r\nb NOOP\r\n", []string{"BAD(a) NUL byte in a literal (use literal8 ~{n} for binary data)", "b NOOP"}, 0},
		{"empty literal", "a LOGIN {0}\r\n {0+}\r\n\r\n", []string{`a LOGIN L"" L""`}, 1},
		{"utf8 quoted", "a CREATE \"Entw\xc3\xbcrfe\"\r\n", []string{`a CREATE "Entwürfe"`}, 0},
		{"tilde atom", "a LIST ~ x\r\n", []string{"a LIST ~ x"}, 0},

		// Errors: BAD at once, resynchronised at the next line.
		{"unterminated quote", "a CREATE \"imaptest\r\nb NOOP\r\n", []string{"BAD(a) Unterminated quoted string", "b NOOP"}, 0},
		{"unterminated quote LF", "a CREATE \"imaptest\nb NOOP\r\n", []string{"BAD(a) Unterminated quoted string", "b NOOP"}, 0},
		{"bad escape", "a CREATE \"x\\y\"\r\nb NOOP\r\n", []string{"BAD(a) Invalid escape \\y in a quoted string", "b NOOP"}, 0},
		{"NUL in quoted", "a CREATE \"x\x00\"\r\nb NOOP\r\n", []string{"BAD(a) NUL byte in a quoted string", "b NOOP"}, 0},
		{"empty line", "\r\nb NOOP\r\n", []string{"BAD() Empty command line", "b NOOP"}, 0},
		{"missing tag", " NOOP\r\nb NOOP\r\n", []string{"BAD() Missing tag", "b NOOP"}, 0},
		{"tag only", "a\r\nb NOOP\r\n", []string{"BAD(a) Missing argument after the tag", "b NOOP"}, 0},
		{"plus in tag", "a+ NOOP\r\nb NOOP\r\n", []string{"BAD() Invalid character '+' in tag", "b NOOP"}, 0},
		{"bad name", "a NO(OP\r\nb NOOP\r\n", []string{"BAD(a) Expected a space between arguments, got '('", "b NOOP"}, 0},
		{"double space", "a SELECT  INBOX\r\nb NOOP\r\n", []string{"BAD(a) Unexpected ' '", "b NOOP"}, 0},
		{"unclosed list", "a STORE 1 FLAGS (\\Seen\r\nb NOOP\r\n", []string{"BAD(a) Missing ')' at the end of the line", "b NOOP"}, 0},
		{"stray paren", "a STORE 1 FLAGS \\Seen)\r\nb NOOP\r\n", []string{"BAD(a) Expected a space between arguments, got ')'", "b NOOP"}, 0},
		{"unclosed section", "a FETCH 1 BODY[HEADER\r\nb NOOP\r\n", []string{"BAD(a) Missing ']' at the end of the line", "b NOOP"}, 0},
		{"deep nesting", "a SEARCH " + strings.Repeat("(", 40) + "ALL" + strings.Repeat(")", 40) + "\r\nb NOOP\r\n",
			[]string{"BAD(a) Too deeply nested (more than 32 levels)", "b NOOP"}, 0},
		{"lone CR", "a NOOP\rx\r\nb NOOP\r\n", []string{"BAD(a) CR not followed by LF", "b NOOP"}, 0},
		{"control char", "a SELECT IN\x01BOX\r\nb NOOP\r\n", []string{"BAD(a) Control character '\\x01' in an atom", "b NOOP"}, 0},
		{"bad literal header", "a LOGIN {5x}\r\nb NOOP\r\n", []string{"BAD(a) Bad literal header", "b NOOP"}, 0},
		{"literal header mid-line", "a LOGIN {5} x\r\nb NOOP\r\n", []string{"BAD(a) A literal header must end the line", "b NOOP"}, 0},
		{"invalid utf8 quoted", "a CREATE \"\xff\"\r\nb NOOP\r\n", []string{"BAD(a) Quoted string is not valid UTF-8", "b NOOP"}, 0},
		// A bad line announcing a non-synchronizing literal: its bytes
		// must be skipped, not run as commands.
		{"skip non-sync literal after error", "a LOGIN ( {14+}\r\nc DELETE INBOX\r\nb NOOP\r\n", []string{"BAD(a) Unexpected ' '", "b NOOP"}, 0},
		{"error before literal", "a LOGIN \"x\\q\" {14+}\r\nc DELETE INBOX\r\nb NOOP\r\n", []string{"BAD(a) Invalid escape \\q in a quoted string", "b NOOP"}, 0},
		{"literal inside an unclosed list", "a LOGIN (x {14+}\r\nc DELETE INBOX\r\nb NOOP\r\n", []string{"BAD(a) Missing ')' at the end of the line", "b NOOP"}, 0},
		// A synchronizing literal is never invited after an error.
		{"no continuation after error", "a LOGIN \"x\\q\" {5}\r\nb NOOP\r\n", []string{"BAD(a) Invalid escape \\q in a quoted string", "b NOOP"}, 0},

		// Streaming APPEND (MULTIAPPEND, RFC 3502: several messages).
		{"append streamed", "a APPEND INBOX (\\Seen) {5}\r\nhello\r\nb NOOP\r\n",
			[]string{`a APPEND INBOX (\Seen) PENDING{5}`, `  literal "hello" <nil>`, "  more: a APPEND INBOX (\\Seen)", "b NOOP"}, 1},
		{"multiappend", "a APPEND INBOX {2+}\r\nhi ~{3+}\r\nx\x00y\r\n",
			[]string{"a APPEND INBOX PENDING{2}", `  literal "hi" <nil>`, "  more: a APPEND INBOX PENDING{3}", "  literal \"x\\x00y\" <nil>", "  more: a APPEND INBOX"}, 0},
		{"append NUL in plain literal", "a APPEND INBOX {3+}\r\nx\x00y\r\nb NOOP\r\n",
			[]string{"a APPEND INBOX PENDING{3}", "  literal \"x\" wire: NUL byte in a literal; use literal8 (~{n}) for binary data", "  more: BAD(a) NUL byte in a literal (use literal8 ~{n} for binary data)", "b NOOP"}, 0},
		{"append bad after literal", "a APPEND INBOX {2+}\r\nhi x)\r\nb NOOP\r\n",
			[]string{"a APPEND INBOX PENDING{2}", `  literal "hi" <nil>`, "  more: BAD(a) Expected a space between arguments, got ')'", "b NOOP"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, conts := readAll(t, tc.in, Limits{})
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if conts != tc.conts {
				t.Errorf("%d continuations, want %d", conts, tc.conts)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	lim := Limits{MaxLine: 64, MaxLiteral: 10, MaxCommand: 25, MaxStream: 100, MaxDiscard: 200}
	for _, tc := range []struct {
		name, in string
		want     []string
		conts    int
	}{
		{"line too long", "a SELECT " + strings.Repeat("x", 100) + "\r\nb NOOP\r\n", []string{"BAD(a) Line too long (more than 64 bytes)", "b NOOP"}, 0},
		{"line bound restarts after a literal", "a LOGIN {3+}\r\nabc " + strings.Repeat("y", 60) + "\r\n", []string{`a LOGIN L"abc" ` + strings.Repeat("y", 60)}, 0},
		{"sync literal too big: no continuation", "a LOGIN {11}\r\nb NOOP\r\n", []string{"TOOBIG(a)", "b NOOP"}, 0},
		{"non-sync literal too big: skipped", "a LOGIN {11+}\r\nc DELETE xx\r\nb NOOP\r\n", []string{"TOOBIG(a)", "b NOOP"}, 0},
		{"command too big", "a LOGIN {10+}\r\n0123456789 {10+}\r\n0123456789 {10+}\r\n0123456789\r\nb NOOP\r\n", []string{"TOOBIG(a)", "b NOOP"}, 0},
		{"streamed literal too big", "a APPEND INBOX {101}\r\nb NOOP\r\n", []string{"TOOBIG(a)", "b NOOP"}, 0},
		{"discard bound", "a LOGIN ( {300+}\r\n" + strings.Repeat("z", 300) + "\r\n", []string{"BAD(a) Unexpected ' ' FATAL"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, conts := readAll(t, tc.in, lim)
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
			if conts != tc.conts {
				t.Errorf("%d continuations, want %d", conts, tc.conts)
			}
		})
	}
}

// TestBadAtOnce: a bad line is answered without waiting for more input
// (issue #21: an unterminated quoted string made go-imap read on for 30 s
// and answer NO [SERVERBUG]). The client writes one line and waits.
func TestBadAtOnce(t *testing.T) {
	for _, line := range []string{
		"a CREATE \"imaptest\r\n",
		"a SEARCH " + strings.Repeat("(", 100) + "\r\n",
		"a FETCH 1 BODY[HEADER.FIELDS (From\r\n",
		"a LOGIN \"x\\q\" {5}\r\n",
	} {
		pr, pw := io.Pipe()
		r := NewReader(bufio.NewReader(pr), Limits{})
		done := make(chan error, 1)
		go func() { _, err := r.ReadCommand(); done <- err }()
		go pw.Write([]byte(line))
		select {
		case err := <-done:
			var se *SyntaxError
			if !errors.As(err, &se) || se.Tag != "a" {
				t.Errorf("%q: got %v, want a tagged syntax error", line, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%q: no answer: the reader waits for more input", line)
		}
		pw.Close()
	}
}

// TestContinueBeforeLiteral: the continuation request is asked for before
// any literal byte is read, and a refused one ends the command without
// reading on (the client, told NO, sends no literal).
func TestContinueBeforeLiteral(t *testing.T) {
	pr, pw := io.Pipe()
	r := NewReader(bufio.NewReader(pr), Limits{})
	asked := make(chan int64, 1)
	r.Continue = func(n int64) error { asked <- n; return nil }
	done := make(chan string, 1)
	go func() { c, err := r.ReadCommand(); done <- render(c, err) }()
	go pw.Write([]byte("a LOGIN {5}\r\n"))
	select {
	case n := <-asked:
		if n != 5 {
			t.Fatalf("Continue(%d), want 5", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Continue not called before the literal was sent")
	}
	go pw.Write([]byte("alice x\r\n"))
	if got := <-done; got != `a LOGIN L"alice" x` {
		t.Fatalf("got %s", got)
	}

	r.Continue = func(n int64) error { return &SyntaxError{Text: "no", TooBig: true} }
	go func() { c, err := r.ReadCommand(); done <- render(c, err) }()
	go pw.Write([]byte("b LOGIN {5}\r\n"))
	select {
	case got := <-done:
		if got != "TOOBIG(b)" {
			t.Fatalf("got %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("refused continuation: the reader waits for the literal")
	}
	pw.Close()
}

// TestPendingNotRead: a command whose streamed literal the session did not
// read (it answered NO before) leaves the stream at the next command.
func TestPendingNotRead(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("a APPEND Nope {5+}\r\nhello ~{2+}\r\nxy\r\nb NOOP\r\n")), Limits{})
	c, err := r.ReadCommand()
	if err != nil || c.Pending == nil {
		t.Fatalf("got %s", render(c, err))
	}
	c, err = r.ReadCommand()
	if got := render(c, err); got != "b NOOP" {
		t.Fatalf("next command %s, want b NOOP", got)
	}
}

func TestReadLine(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("AGFsaWNlAHB3\r\nDONE\n"+strings.Repeat("x", 100)+"\r\nb NOOP\r\n")), Limits{MaxLine: 64})
	for _, want := range []string{"AGFsaWNlAHB3", "DONE"} {
		if got, err := r.ReadLine(); err != nil || got != want {
			t.Fatalf("ReadLine = %q, %v; want %q", got, err, want)
		}
	}
	var se *SyntaxError
	if _, err := r.ReadLine(); !errors.As(err, &se) {
		t.Fatalf("long line: %v, want a syntax error", err)
	}
	if c, err := r.ReadCommand(); render(c, err) != "b NOOP" {
		t.Fatalf("after a long line: %s", render(c, err))
	}
}
