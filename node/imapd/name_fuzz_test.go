package imapd

import (
	"strings"
	"testing"
)

// FuzzMailboxName holds normalizeName (applied to every mailbox name after
// go-imap has decoded its modified UTF-7, RFC 3501 §5.1.3) to its
// contract: a name it accepts has no NUL, CR, LF or wildcard, no empty,
// "." or ".." level (no path tricks), an upper-case INBOX, and normalising
// it again changes nothing.
func FuzzMailboxName(f *testing.F) {
	for _, s := range []string{"INBOX", "inbox/Sub", "Archive/2024", "../bob", "Other Users/bob", "a//b", "a/./b",
		"*", "%", "a\x00b", "Entw&APw-rfe", "Entwürfe", "INBOX.", "/", "x/", strings.Repeat("a", 1025)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := normalizeName(s)
		if !ok {
			return
		}
		if n == "" || strings.ContainsAny(n, "\x00\r\n*%") || len(n) > 1024 {
			t.Fatalf("normalizeName(%q) = %q: forbidden content", s, n)
		}
		for _, p := range strings.Split(n, "/") {
			if p == "" || p == "." || p == ".." {
				t.Fatalf("normalizeName(%q) = %q: level %q", s, n, p)
			}
		}
		first := strings.SplitN(n, "/", 2)[0]
		if strings.EqualFold(first, "INBOX") && first != "INBOX" {
			t.Fatalf("normalizeName(%q) = %q: INBOX not canonical", s, n)
		}
		if again, ok := normalizeName(n); !ok || again != n {
			t.Fatalf("normalizeName not idempotent: %q → %q → %q (%v)", s, n, again, ok)
		}
	})
}
