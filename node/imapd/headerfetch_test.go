package imapd_test

import (
	"fmt"
	"strings"
	"testing"
)

// TestFetchHeaderFieldsOnly: a FETCH whose only body sections are top-level
// header sections reads the stored header block (node/mail HeaderBlock)
// instead of the message; the answers are those of the whole-message path
// (a FETCH that also asks for BODY[TEXT] takes that one).
func TestFetchHeaderFieldsOnly(t *testing.T) {
	e := newEnv(t, nil)
	msg := testMessage("hdr1", "header block", "the body\r\nsecond line")
	hdr := msg[:strings.Index(msg, "\r\n\r\n")+4]
	e.deliver(0, alice, msg)
	e.waitAll()
	c := login(t, e.addrs[1], alice)
	c.ok("SELECT INBOX")

	fields := "Subject: header block\r\nMessage-ID: <hdr1@remote.test>\r\n\r\n"
	notFields := strings.Replace(hdr, "Subject: header block\r\n", "", 1)
	for _, tc := range []struct{ cmd, want string }{
		{"BODY.PEEK[HEADER]", fmt.Sprintf("BODY[HEADER] {%d}\n%s", len(hdr), hdr)},
		{"BODY.PEEK[HEADER.FIELDS (Subject Message-ID)]", fmt.Sprintf("BODY[HEADER.FIELDS (\"Subject\" \"Message-ID\")] {%d}\n%s", len(fields), fields)},
		{"BODY.PEEK[HEADER.FIELDS.NOT (Subject)]", fmt.Sprintf("BODY[HEADER.FIELDS.NOT (\"Subject\")] {%d}\n%s", len(notFields), notFields)},
		{"BODY.PEEK[HEADER]<6.9>", "BODY[HEADER]<6> {9}\n" + hdr[6:15]},
	} {
		only := c.ok("FETCH 1 (%s)", tc.cmd)
		mixed := c.ok("FETCH 1 (%s BODY.PEEK[TEXT])", tc.cmd)
		if len(only) != 1 || !strings.Contains(only[0], tc.want) {
			t.Errorf("FETCH 1 (%s) = %q, want %q in it", tc.cmd, only, tc.want)
		}
		if len(mixed) != 1 || !strings.Contains(mixed[0], tc.want) || !strings.Contains(mixed[0], "the body") {
			t.Errorf("FETCH 1 (%s BODY.PEEK[TEXT]) = %q, want %q in it", tc.cmd, mixed, tc.want)
		}
	}
	if l := c.ok("FETCH 1 (FLAGS)"); !strings.Contains(l[0], "FLAGS ()") {
		t.Errorf("PEEK of header sections set flags: %q", l)
	}
	// Without PEEK the header sections set \Seen, on this path too.
	if l := c.ok("FETCH 1 (BODY[HEADER.FIELDS (Subject)])"); !strings.Contains(l[0], `\Seen`) || !strings.Contains(l[0], "Subject: header block") {
		t.Errorf("FETCH BODY[HEADER.FIELDS (Subject)] = %q", l)
	}
}
