package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// FuzzReadCommand: any input, with any streamed literals read or not,
// parses without panic, within the bounds, and a bad line never swallows
// the next one: when the fuzzed line has no literal header, the command
// after it is always read intact.
func FuzzReadCommand(f *testing.F) {
	for _, s := range []string{
		"a NOOP", "a LOGIN {5+}\r\nalice pw", "a FETCH 1:* (BODY.PEEK[HEADER.FIELDS (From)]<0.10> FLAGS)",
		"a CREATE \"imaptest", "a SEARCH ((((ALL))))", "a APPEND INBOX (\\Seen) {3+}\r\nabc", "a APPEND X ~{2+}\r\n\x00\x00",
		"a SELECT [Gmail]/All", "\"", "a {", "a X ~{1}", "a X BODY[", "a X \"\\",
	} {
		f.Add([]byte(s), true)
	}
	lim := Limits{MaxLine: 200, MaxDepth: 8, MaxLiteral: 100, MaxCommand: 300, MaxDiscard: 1000, MaxStream: 500}
	f.Fuzz(func(t *testing.T, data []byte, readPending bool) {
		const sentinel = "zz9 NOOP\r\n"
		checkResync := !bytes.ContainsAny(data, "{\r\n")
		in := append(append([]byte{}, data...), "\r\n"+sentinel...)
		r := NewReader(bufio.NewReader(bytes.NewReader(in)), lim)
		r.Continue = func(int64) error { return nil }
		sawSentinel, fatal := false, false
		for i := 0; i < 1000; i++ {
			c, err := r.ReadCommand()
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			var se *SyntaxError
			if errors.As(err, &se) {
				if se.Fatal {
					fatal = true // more than MaxDiscard to skip: the session closes
					break
				}
				continue
			}
			if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if c.Tag == "zz9" && c.Name == "NOOP" {
				sawSentinel = true
			}
			checkBounds(t, c.Args, lim, 0)
			for c != nil && c.Pending != nil {
				if c.Pending.Size > lim.MaxStream {
					t.Fatalf("streamed literal of %d over MaxStream", c.Pending.Size)
				}
				if !readPending {
					break
				}
				io.Copy(io.Discard, c.Pending)
				c, err = r.More(c)
				if err != nil {
					break
				}
				checkBounds(t, c.Args, lim, 0)
			}
		}
		if checkResync && !fatal && !sawSentinel {
			t.Fatalf("the command after %q was lost", data)
		}
	})
}

func checkBounds(t *testing.T, vs []Value, lim Limits, depth int) {
	t.Helper()
	if depth > lim.MaxDepth {
		t.Fatalf("nesting %d over MaxDepth %d", depth, lim.MaxDepth)
	}
	for _, v := range vs {
		if v.Kind == String && int64(len(v.Str)) > lim.MaxLiteral && v.Literal {
			t.Fatalf("literal of %d over MaxLiteral", len(v.Str))
		}
		if v.Kind == Atom && strings.ContainsAny(v.Str, " \r\n(){\"") {
			t.Fatalf("atom %q holds a delimiter", v.Str)
		}
		checkBounds(t, v.List, lim, depth+1)
		checkBounds(t, v.Section, lim, depth+1)
	}
}
