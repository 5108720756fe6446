package wire

import (
	"testing"
	"unicode/utf8"
)

func TestMUTF7(t *testing.T) {
	for _, tc := range []struct{ utf8, mutf7 string }{
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"a&b", "a&-b"},
		{"&", "&-"},
		{"日本語", "&ZeVnLIqe-"},
		{"~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"},
		{"😀", "&2D3eAA-"},
		{"äö", "&AOQA9g-"},
		{"", ""},
	} {
		if got := EncodeMUTF7(tc.utf8); got != tc.mutf7 {
			t.Errorf("EncodeMUTF7(%q) = %q, want %q", tc.utf8, got, tc.mutf7)
		}
		if got, err := DecodeMUTF7(tc.mutf7); err != nil || got != tc.utf8 {
			t.Errorf("DecodeMUTF7(%q) = %q, %v, want %q", tc.mutf7, got, err, tc.utf8)
		}
	}
}

// TestMUTF7Invalid: names from imaptest's mutf7 group and issue #21 that
// are not modified UTF-7 are refused, not guessed at.
func TestMUTF7Invalid(t *testing.T) {
	for _, s := range []string{
		"!#$&'+,-...", // issue #21: "&" not followed by base64 or "-"
		"bad&name",    // unterminated run
		"&",           // unterminated
		"&AOQ-&APY-",  // two runs side by side (canonical is &AOQA9g-)
		"&AGE-",       // "a" encoded: printable ASCII must stand for itself
		"&2D0-",       // high surrogate alone
		"&3gA-",       // low surrogate alone
		"&AOR-",       // nonzero padding bits
		"&AO-",        // half a UTF-16 unit
		"&AOQ=-",      // padding is not used
		"&AOQ/-",      // "/" is "," in modified base64
		"caf\xc3\xa9", // 8-bit bytes
		"tab\there",   // control
		"&ZeVnLIqe",   // no closing "-"
	} {
		if got, err := DecodeMUTF7(s); err == nil {
			t.Errorf("DecodeMUTF7(%q) = %q, want an error", s, got)
		}
	}
}

func TestDecodeMailbox(t *testing.T) {
	for _, tc := range []struct {
		in    string
		utf8  bool
		want  string
		valid bool
	}{
		{"Entw&APw-rfe", false, "Entwürfe", true},
		{"Entwürfe", false, "Entwürfe", true}, // UTF-8 sent without ENABLE: taken as UTF-8
		{"a&b", true, "a&b", true},            // with UTF8=ACCEPT "&" is itself
		{"Entwürfe", true, "Entwürfe", true},
		{"bad&name", false, "", false},
		{"\xff", false, "", false},
		{"\xff", true, "", false},
		{"a\x00b", true, "", false},
		{"a\rb", false, "", false},
	} {
		got, err := DecodeMailbox(tc.in, tc.utf8)
		if (err == nil) != tc.valid || got != tc.want {
			t.Errorf("DecodeMailbox(%q, %v) = %q, %v; want %q, valid %v", tc.in, tc.utf8, got, err, tc.want, tc.valid)
		}
	}
}

// FuzzMUTF7: encoding is reversible, and decoding accepts only canonical
// spellings (decode then encode gives back the input).
func FuzzMUTF7(f *testing.F) {
	for _, s := range []string{"INBOX", "Entw&APw-rfe", "&-", "&ZeVnLIqe-", "&2D3eAA-", "&AOQ-&APY-", "bad&name", "Entwürfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if utf8.ValidString(s) {
			if back, err := DecodeMUTF7(EncodeMUTF7(s)); err != nil || back != s {
				t.Fatalf("round trip %q → %q → %q, %v", s, EncodeMUTF7(s), back, err)
			}
		}
		if dec, err := DecodeMUTF7(s); err == nil {
			if !utf8.ValidString(dec) {
				t.Fatalf("DecodeMUTF7(%q) = %q: invalid UTF-8", s, dec)
			}
			if again := EncodeMUTF7(dec); again != s {
				t.Fatalf("DecodeMUTF7 accepted a non-canonical %q (canonical %q)", s, again)
			}
		}
	})
}
