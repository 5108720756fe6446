package search_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/node/search"
)

// FuzzExtract: any message that mimeparse accepts gives a Doc without
// panicking, in valid UTF-8, whose fields and body are substrings of
// Text (so the trigrams of Text cover every criterion).
func FuzzExtract(f *testing.F) {
	f.Add("Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nhello")
	f.Add("Content-Type: text/html\r\n\r\n<p>a<script>b</script>c")
	f.Add("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nFrom: y\r\n\r\nz\r\n--x--\r\n")
	f.Add("Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=E9=\r\n=ZZ")
	f.Fuzz(func(t *testing.T, msg string) {
		parsed, err := mimeparse.Parse([]byte(msg), mimeparse.DefaultLimits())
		if err != nil {
			return
		}
		d := search.Extract([]byte(msg), parsed)
		text := d.Text()
		if !utf8.ValidString(text) {
			t.Fatalf("text not UTF-8: %q", text)
		}
		if !strings.Contains(text, d.Body) {
			t.Fatalf("body not in text")
		}
		for _, fl := range d.Fields {
			if !d.MatchHeader(fl.Name, fl.Value) || !d.MatchText(fl.Value) {
				t.Fatalf("field %q not matched", fl)
			}
		}
	})
}
