package imapd_test

import (
	"fmt"
	"strings"
	"testing"
)

// threadCorpus is delivered to alice's INBOX as messages 1–9, one day
// apart in the order given.
var threadCorpus = []struct{ id, refs, inReplyTo, subject string }{
	{"a", "", "", "topic"},
	{"b", "", "<a@x.test>", "Re: topic"},
	{"c", "<a@x.test> <b@x.test>", "", "Re: topic"},
	{"d", "", "", "other"},
	{"e", "<zz@x.test>", "", "Re: other"}, // its parent was never seen
	{"f", "<a@x.test>", "", "Re: topic"},
	{"g", "<m1@x.test>", "", "lonely"}, // g and h share a missing parent
	{"h", "<m1@x.test>", "", "lonely"},
	{"i", "", "", "Re: lonely"},
}

// TestThread (RFC 5256 §4): ORDEREDSUBJECT and REFERENCES over a corpus
// that exercises parents from In-Reply-To and References, a missing
// parent (a dummy pruned at the top), a dummy kept at the top with two
// children, and the merge by base subject (a reply under the original, a
// message under a dummy); UID THREAD with search criteria; errors.
func TestThread(t *testing.T) {
	e, addrs := ownEnv(t)
	for i, m := range threadCorpus {
		h := fmt.Sprintf("From: s@remote.test\r\nTo: alice@example.test\r\nSubject: %s\r\nDate: %02d Jan 2020 10:00:00 +0000\r\nMessage-ID: <%s@x.test>\r\n", m.subject, i+1, m.id)
		if m.refs != "" {
			h += "References: " + m.refs + "\r\n"
		}
		if m.inReplyTo != "" {
			h += "In-Reply-To: " + m.inReplyTo + "\r\n"
		}
		e.deliver(0, alice, h+"\r\nbody\r\n")
	}
	e.waitAll()
	c := login(t, addrs[2], alice)
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " THREAD=ORDEREDSUBJECT THREAD=REFERENCES ") {
		t.Errorf("CAPABILITY = %q, want both THREAD algorithms", u)
	}
	c.ok("SELECT INBOX")
	for _, x := range []struct{ cmd, want string }{
		{"THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD (1 (2)(3)(6))(4 5)(7 (8)(9))"},
		{"THREAD REFERENCES UTF-8 ALL", "* THREAD (1 (2 3)(6))(4 5)((7)(8)(9))"},
		{"UID THREAD REFERENCES UTF-8 NOT SUBJECT lonely", "* THREAD (1 (2 3)(6))(4 5)"},
		// Without b, c's References still put it under a.
		{"THREAD REFERENCES UTF-8 NOT HEADER Message-ID b@x.test", "* THREAD (1 (3)(6))(4 5)((7)(8)(9))"},
		{"THREAD ORDEREDSUBJECT US-ASCII SUBJECT other", "* THREAD (4 5)"},
		{"THREAD REFERENCES UTF-8 SUBJECT nothing-matches", "* THREAD"},
	} {
		if u := c.ok("%s", x.cmd); len(u) != 1 || u[0] != x.want {
			t.Errorf("%s = %q, want %q", x.cmd, u, x.want)
		}
	}
	c.expect("BAD", "THREAD FOO UTF-8 ALL")
	c.expect("BAD", "THREAD REFERENCES UTF-8")
	c.expect("NO [BADCHARSET", "THREAD REFERENCES KOI8-R ALL")
	// Expunge 1: the messages numbered after it shift; a is now a dummy
	// with children b and f (kept: two children at the top level).
	c.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	c.ok("EXPUNGE")
	if u := c.ok("THREAD REFERENCES UTF-8 ALL"); len(u) != 1 || u[0] != "* THREAD ((1 2)(5))(3 4)((6)(7)(8))" {
		t.Errorf("THREAD REFERENCES after expunging the root = %q", u)
	}
	if u := c.ok("UID THREAD REFERENCES UTF-8 ALL"); len(u) != 1 || u[0] != "* THREAD ((2 3)(6))(4 5)((7)(8)(9))" {
		t.Errorf("UID THREAD REFERENCES after expunging the root = %q", u)
	}
}
