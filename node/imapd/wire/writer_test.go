package wire

import (
	"bufio"
	"strings"
	"testing"
)

func written(f func(w *Writer), utf8 bool) string {
	var sb strings.Builder
	bw := bufio.NewWriter(&sb)
	w := NewWriter(bw)
	w.UTF8 = utf8
	f(w)
	w.Flush()
	return sb.String()
}

func TestWriter(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(w *Writer)
		utf8 bool
		want string
	}{
		{"quoted", func(w *Writer) { w.String(`a "b" \c`) }, false, `"a \"b\" \\c"`},
		{"empty", func(w *Writer) { w.String("") }, false, `""`},
		{"CRLF as literal", func(w *Writer) { w.String("a\r\nb") }, false, "{4}\r\na\r\nb"},
		{"8-bit as literal without UTF8", func(w *Writer) { w.String("é") }, false, "{2}\r\né"},
		{"8-bit quoted with UTF8", func(w *Writer) { w.String("é") }, true, `"é"`},
		// RFC 9051 §9: a string's CHAR8 excludes NUL, and literal8 is for
		// BINARY content only (Literal with binary set), so NUL is dropped.
		{"NUL dropped from a string", func(w *Writer) { w.String("a\x00b") }, false, "{2}\r\nab"},
		{"astring atom", func(w *Writer) { w.AString("INBOX") }, false, "INBOX"},
		{"astring NIL quoted", func(w *Writer) { w.AString("nil") }, false, `"nil"`},
		{"astring space", func(w *Writer) { w.AString("a b") }, false, `"a b"`},
		{"astring wildcard", func(w *Writer) { w.AString("a*") }, false, `"a*"`},
		{"mailbox mutf7", func(w *Writer) { w.Mailbox("Entwürfe") }, false, `"Entw&APw-rfe"`},
		{"mailbox utf8", func(w *Writer) { w.Mailbox("Entwürfe") }, true, `"Entwürfe"`},
		{"mailbox ampersand", func(w *Writer) { w.Mailbox("a&b") }, false, `"a&-b"`},
		{"empty mailbox", func(w *Writer) { w.Mailbox("") }, false, `""`},
		{"nstring nil", func(w *Writer) { w.NString(nil) }, false, "NIL"},
		{"status", func(w *Writer) { w.Status("a1", "OK", "READ-ONLY", "EXAMINE done") }, false, "a1 OK [READ-ONLY] EXAMINE done\r\n"},
		{"status untagged", func(w *Writer) { w.Status("", "BAD", "", "Unterminated quoted string") }, false, "* BAD Unterminated quoted string\r\n"},
		{"text cannot inject a line", func(w *Writer) { w.Status("a", "NO", "", "x\r\n* OK y") }, false, "a NO x  * OK y\r\n"},
		{"empty text", func(w *Writer) { w.Status("a", "OK", "", "") }, false, "a OK Done\r\n"},
		{"continuation", func(w *Writer) { w.Continuation("Ready") }, false, "+ Ready\r\n"},
		{"binary literal", func(w *Writer) { w.Literal(3, strings.NewReader("xyz"), true) }, false, "~{3}\r\nxyz"},
		{"number", func(w *Writer) { w.Number(18446744073709551615) }, false, "18446744073709551615"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := written(tc.f, tc.utf8); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWriterReaderRoundTrip: what Writer encodes as a string, Reader
// parses back to the same bytes.
func TestWriterReaderRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "a\r\nb", "é", strings.Repeat("x", 2000), "{5}", "NIL"} {
		line := written(func(w *Writer) { w.Raw("a X ").String(s).CRLF() }, false)
		got, _ := readAll(t, line, Limits{})
		if len(got) != 1 {
			t.Fatalf("%q: %v", s, got)
		}
		r := NewReader(bufio.NewReader(strings.NewReader(line)), Limits{})
		c, err := r.ReadCommand()
		if err != nil || len(c.Args) != 1 || c.Args[0].Kind != String || c.Args[0].Str != s {
			t.Errorf("%q → %q → %s", s, line, render(c, err))
		}
	}
}
