package imapd

import (
	"strings"
	"testing"
)

// TestFilterHeader: HEADER.FIELDS[.NOT] keeps (or drops) fields by name,
// ASCII case-insensitively, with their continuation lines, and ends in the
// blank line.
func TestFilterHeader(t *testing.T) {
	h := []byte("From: a@b\r\nSUBJECT: one\r\n two\r\nX-Subject: no\r\nSubject : spaced\r\nDate: d\r\n\r\n")
	for _, tc := range []struct {
		names []string
		keep  bool
		want  string
	}{
		{[]string{"subject"}, true, "SUBJECT: one\r\n two\r\nSubject : spaced\r\n\r\n"},
		{[]string{"FROM", "date"}, true, "From: a@b\r\nDate: d\r\n\r\n"},
		{[]string{"Subject"}, false, "From: a@b\r\nX-Subject: no\r\nDate: d\r\n\r\n"},
		{[]string{"Subjec"}, true, "\r\n"},
		{[]string{"Subjecţ"}, true, "\r\n"},
	} {
		if got := string(filterHeader(h, tc.names, tc.keep)); got != tc.want {
			t.Errorf("filterHeader(%v, keep %v) = %q, want %q", tc.names, tc.keep, got, tc.want)
		}
	}
	for _, tc := range []struct {
		b, s string
		want bool
	}{
		{"Message-ID", "message-id", true},
		{"message-iD", "MESSAGE-ID", true},
		{"Message-IDs", "Message-ID", false},
		{"[", "{", false}, // 0x5b and 0x7b differ by 0x20 but are not letters
		{"@", "`", false},
		{"\xc5\xbf", "s", false},
	} {
		if got := equalFoldASCII([]byte(tc.b), tc.s); got != tc.want {
			t.Errorf("equalFoldASCII(%q, %q) = %v", tc.b, tc.s, got)
		}
		if got := equalFoldASCII([]byte(tc.b), tc.s); got != strings.EqualFold(tc.b, tc.s) && tc.b != "\xc5\xbf" {
			t.Errorf("equalFoldASCII(%q, %q) differs from strings.EqualFold", tc.b, tc.s)
		}
	}
}
