package canon

import (
	"errors"
	"strings"
	"testing"
)

// The table pins the rules (package doc): each row is an input and its
// canonical form, or "" for a refusal. A change here is a change to which
// replicated commands succeed.

func TestEmail(t *testing.T) {
	for _, tc := range []struct{ in, want, domain string }{
		{"Alice@Example.TEST", "alice@example.test", "example.test"},
		{"a.b+tag@x.test", "a.b+tag@x.test", "x.test"},
		{"!#$%&'*+-/=?^_`{|}~@x.test", "!#$%&'*+-/=?^_`{|}~@x.test", "x.test"},
		{"a@b@x.test", "", ""},     // "@" is not atext: split at the last one
		{"x.test", "", ""},         // no "@"
		{"@x.test", "", ""},        // empty local part
		{"a@", "", ""},             // empty domain
		{".a@x.test", "", ""},      // leading dot
		{"a.@x.test", "", ""},      // trailing dot
		{"a..b@x.test", "", ""},    // doubled dot
		{"\"a b\"@x.test", "", ""}, // quoted local part
		{"a b@x.test", "", ""},     // space
		{" a@x.test", "", ""},      // callers trim
		{"jörg@x.test", "", ""},    // UTF-8 local part (RFC 6531): refused
		{"a@bücher.test", "", ""},  // UTF-8 domain: callers convert to punycode
		{"a@xn--bcher-kva.test", "a@xn--bcher-kva.test", "xn--bcher-kva.test"},
		{"a@x.test.", "", ""}, // trailing dot in the domain
		{strings.Repeat("a", 64) + "@x.test", strings.Repeat("a", 64) + "@x.test", "x.test"},
		{strings.Repeat("a", 65) + "@x.test", "", ""},
		{"a@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + "." + strings.Repeat("e", 61), "", ""}, // 255 octets, the domain 251
	} {
		got, d, err := Email(tc.in)
		if got != tc.want || d != tc.domain || (err == nil) != (tc.want != "") {
			t.Errorf("Email(%q) = %q, %q, %v; want %q, %q", tc.in, got, d, err, tc.want, tc.domain)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Email(%q): %v does not wrap ErrInvalid", tc.in, err)
		}
	}
}

func TestDomain(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Example.TEST", "example.test"},
		{"a-b.c1.test", "a-b.c1.test"},
		{"localhost", "localhost"},
		{"-a.test", ""},
		{"a-.test", ""},
		{"a..test", ""},
		{"a_b.test", ""},
		{"", ""},
		{strings.Repeat("a", 63) + ".test", strings.Repeat("a", 63) + ".test"},
		{strings.Repeat("a", 64) + ".test", ""},
		{strings.Repeat("a.", 126) + "a", strings.Repeat("a.", 126) + "a"}, // 253 octets
		{strings.Repeat("a.", 127), ""},
	} {
		got, err := Domain(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("Domain(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestMailboxName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"inbox", "INBOX"},
		{"InBoX/Sub", "INBOX/Sub"},
		{"Archive/inbox", "Archive/inbox"}, // only the first level is INBOX
		{"Sent Items", "Sent Items"},
		{"Entwürfe", "Entwürfe"},
		{"ınbox", "ınbox"}, // dotless i: not ASCII INBOX
		{"a//b", ""},
		{"/a", ""},
		{"a/", ""},
		{"a/./b", ""},
		{"a/../b", ""},
		{"a*", ""},
		{"a%", ""},
		{"a\tb", ""},
		{"a\x7fb", ""},
		{"a\u0085b", ""}, // C1 control
		{"a\ufffdb", ""},
		{"a\xffb", ""}, // not UTF-8
		{"", ""},
		{strings.Repeat("a", 512), strings.Repeat("a", 512)},
		{strings.Repeat("a", 513), ""},
		{strings.Repeat("a/", 31) + "a", strings.Repeat("a/", 31) + "a"},
		{strings.Repeat("a/", 32) + "a", ""},
	} {
		got, err := MailboxName(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("MailboxName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestRecipient: what Email accepts, Recipient returns alike; a UTF-8 local
// part is accepted for lookup only.
func TestRecipient(t *testing.T) {
	for _, in := range []string{"Alice@Example.TEST", "a.b+tag@x.test", "a@b@x.test", ".a@x.test", "a..b@x.test", "\"a b\"@x.test", "a@bücher.test", "a@x.test."} {
		e1, d1, err1 := Email(in)
		e2, d2, err2 := Recipient(in)
		if e1 != e2 || d1 != d2 || (err1 == nil) != (err2 == nil) {
			t.Errorf("%q: Email = %q, %q, %v; Recipient = %q, %q, %v", in, e1, d1, err1, e2, d2, err2)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"Jörg@X.test", "jörg@x.test"},
		{"δοκιμή@x.test", "δοκιμή@x.test"},
		{"jö..rg@x.test", ""},
		{"jö rg@x.test", ""},
		{"j\xffrg@x.test", ""},
	} {
		got, _, err := Recipient(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("Recipient(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if _, _, err := Email(tc.in); err == nil {
			t.Errorf("Email(%q) accepted a UTF-8 local part", tc.in)
		}
	}
}
