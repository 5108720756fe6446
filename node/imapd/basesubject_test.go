package imapd

import "testing"

// TestBaseSubject: RFC 5256 §2.1's extraction, step by step.
func TestBaseSubject(t *testing.T) {
	for _, x := range []struct {
		in, want string
		reply    bool
	}{
		{"hello", "hello", false},
		{"  hello \t  world  ", "hello world", false},    // (1) whitespace
		{"Re: hello", "hello", true},                     // (3)
		{"RE:   Fwd: re:hello", "hello", true},           // (3) repeated
		{"fw: hello", "hello", true},                     // fw
		{"Re[2]: hello", "hello", true},                  // blob inside subj-refwd
		{"[list] Re: hello", "hello", true},              // blob before subj-refwd
		{"[list] hello", "hello", false},                 // (4) blob
		{"[list]", "[list]", false},                      // (4) nothing left: kept
		{"hello (fwd)", "hello", true},                   // (2)
		{"hello (FWD)  (fwd) ", "hello", true},           // (2) repeated
		{"[fwd: hello]", "hello", true},                  // (6)
		{"[Fwd: Re: [list] hello (fwd)]", "hello", true}, // (6) then (2)–(5) again
		{"Re hello", "Re hello", false},                  // no colon: not a leader
		{"Reply: hello", "Reply: hello", false},          // "re" must be followed by ":"
		{"", "", false},
	} {
		got, reply := baseSubject(x.in)
		if got != x.want || reply != x.reply {
			t.Errorf("baseSubject(%q) = %q, %v; want %q, %v", x.in, got, reply, x.want, x.reply)
		}
	}
}

// TestMsgIDs: msg-ids are taken from between angle brackets; anything
// else in the field is ignored.
func TestMsgIDs(t *testing.T) {
	got := msgIDs(" <a@x> (comment) <b @ y>\r\n\t<nohost> <c@z")
	if len(got) != 2 || got[0] != "a@x" || got[1] != "b@y" {
		t.Errorf("msgIDs = %q", got)
	}
}
