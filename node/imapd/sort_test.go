package imapd_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// sortCorpus is delivered to alice's INBOX as messages 1–5 (UIDs 1–5).
// Base subjects (RFC 5256 §2.1): HELLO, HELLO ("[list] Hello (fwd)"),
// WORLD ("Fwd: [list] re: world"), APPLE, HELLO ("[fwd: Hello]").
// Message 4 has no Date: its sent date is its arrival (now), the latest.
var sortCorpus = []struct{ from, to, cc, subject, date string }{
	{"zed@remote.test", "bob@example.test", "", "Re: hello", "Fri, 03 Jan 2020 10:00:00 +0000"},
	{"Amy <Amy@remote.test>", "carl@example.test", "dan@example.test", "[list] Hello (fwd)", "Wed, 01 Jan 2020 10:00:00 +0000"},
	{"bob@remote.test", "al@example.test", "", "Fwd: [list] re: world", "Thu, 02 Jan 2020 10:00:00 +0000"},
	{"amy@remote.test", "zz@example.test", "", "apple", ""},
	{"", "Alice <alice@example.test>", "", "[fwd: Hello]", "Tue, 31 Dec 2019 10:00:00 +0000"},
}

// Bodies chosen so that RFC822.SIZE orders 3, 1, 5, 2, 4.
var sortBodies = []int{300, 900, 100, 1500, 600}

func deliverSortCorpus(e *env) {
	for i, m := range sortCorpus {
		var h strings.Builder
		if m.from != "" {
			fmt.Fprintf(&h, "From: %s\r\n", m.from)
		}
		fmt.Fprintf(&h, "To: %s\r\n", m.to)
		if m.cc != "" {
			fmt.Fprintf(&h, "Cc: %s\r\n", m.cc)
		}
		fmt.Fprintf(&h, "Subject: %s\r\n", m.subject)
		if m.date != "" {
			fmt.Fprintf(&h, "Date: %s\r\n", m.date)
		}
		fmt.Fprintf(&h, "Message-ID: <sort%d@remote.test>\r\n\r\n%s\r\n", i, strings.Repeat("x", sortBodies[i]))
		e.deliver(0, alice, h.String())
	}
	e.waitAll()
}

// TestSort (RFC 5256 §3, RFC 5267 §3): every sort criterion, REVERSE,
// ties by sequence number, UID SORT with search criteria, ESORT's RETURN
// options, and the errors.
func TestSort(t *testing.T) {
	e, addrs := ownEnv(t)
	deliverSortCorpus(e)
	c := login(t, addrs[1], alice)
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " SORT ESORT ") {
		t.Errorf("CAPABILITY = %q, want SORT ESORT", u)
	}
	c.ok("SELECT INBOX")
	for _, x := range []struct{ cmd, want string }{
		{"SORT (SUBJECT) UTF-8 ALL", "* SORT 4 1 2 5 3"},
		{"SORT (DATE) UTF-8 ALL", "* SORT 5 2 3 1 4"},
		{"SORT (REVERSE DATE) UTF-8 ALL", "* SORT 4 1 3 2 5"},
		{"SORT (REVERSE SIZE) US-ASCII ALL", "* SORT 4 2 5 1 3"},
		{"SORT (FROM) UTF-8 ALL", "* SORT 5 2 4 3 1"}, // "", AMY, amy (tie: seq), bob, zed
		{"SORT (FROM REVERSE SIZE) UTF-8 ALL", "* SORT 5 4 2 3 1"},
		{"SORT (TO) UTF-8 ALL", "* SORT 3 5 1 2 4"},
		{"SORT (CC) UTF-8 ALL", "* SORT 1 3 4 5 2"},
		{"SORT (SIZE) UTF-8 ALL", "* SORT 3 1 5 2 4"},
		{"SORT (SUBJECT DATE) UTF-8 ALL", "* SORT 4 5 2 1 3"},
		{"SORT (SUBJECT) UTF-8 SUBJECT nothing-matches", "* SORT"},
		{"UID SORT (SUBJECT) UTF-8 NOT FROM zed", "* SORT 4 2 5 3"},
		{"SORT RETURN (MIN MAX COUNT) (DATE) UTF-8 ALL", `* ESEARCH (TAG "aN") MIN 5 MAX 4 COUNT 5`},
		{"SORT RETURN (ALL) (DATE) UTF-8 ALL", `* ESEARCH (TAG "aN") ALL 5,2:3,1,4`},
		{"UID SORT RETURN () (SUBJECT) UTF-8 ALL", `* ESEARCH (TAG "aN") UID ALL 4,1:2,5,3`},
		{"SORT RETURN (COUNT MIN) (DATE) UTF-8 SUBJECT nothing-matches", `* ESEARCH (TAG "aN") COUNT 0`},
	} {
		u := c.ok("%s", x.cmd)
		want := strings.Replace(x.want, `"aN"`, fmt.Sprintf(`"a%d"`, c.n), 1)
		if len(u) != 1 || u[0] != want {
			t.Errorf("%s = %q, want %q", x.cmd, u, want)
		}
	}
	// ARRIVAL is INTERNALDATE: a message appended with an old one sorts
	// first (the five delivered may share a second: ties go by number).
	old := "Subject: old\r\n\r\nx\r\n"
	c.ok("APPEND INBOX \"01-Jan-2000 00:00:00 +0000\" {%d+}\r\n%s", len(old), old)
	for _, x := range []struct{ cmd, want string }{
		{"SORT (ARRIVAL) UTF-8 UID 1,6", "* SORT 6 1"},
		{"SORT (REVERSE ARRIVAL) UTF-8 UID 1,6", "* SORT 1 6"},
		{"SORT (DATE) UTF-8 UID 1,6", "* SORT 6 1"}, // no Date: INTERNALDATE
	} {
		if u := c.ok("%s", x.cmd); len(u) != 1 || u[0] != x.want {
			t.Errorf("%s = %q, want %q", x.cmd, u, x.want)
		}
	}
	c.expect("BAD", "SORT (FOO) UTF-8 ALL")
	c.expect("BAD", "SORT (REVERSE) UTF-8 ALL")
	c.expect("BAD", "SORT DATE UTF-8 ALL")
	c.expect("BAD", "SORT (DATE) UTF-8")
	c.expect("NO [BADCHARSET", "SORT (DATE) KOI8-R ALL")

	// go-imap v2 as the client.
	ic, err := imapclient.DialInsecure(addrs[2], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login(alice, password).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	nums, err := ic.Sort(&imapclient.SortOptions{
		SearchCriteria: &imap.SearchCriteria{},
		SortCriteria:   []imapclient.SortCriterion{{Key: imapclient.SortKeySubject}, {Key: imapclient.SortKeyDate, Reverse: true}},
	}).Wait()
	if err != nil || !slices.Equal(nums, []uint32{4, 1, 2, 5, 6, 3}) { // 6: "old", appended above
		t.Errorf("go-imap SORT (SUBJECT REVERSE DATE) = %v, %v; want [4 1 2 5 6 3]", nums, err)
	}
	uids, err := ic.UIDSort(&imapclient.SortOptions{
		SearchCriteria: &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "hello"}}},
		SortCriteria:   []imapclient.SortCriterion{{Key: imapclient.SortKeySize}},
	}).Wait()
	if err != nil || !slices.Equal(uids, []uint32{1, 5, 2}) {
		t.Errorf("go-imap UID SORT (SIZE) SUBJECT hello = %v, %v; want [1 5 2]", uids, err)
	}
}

// TestSortDisplay (RFC 5957): DISPLAYFROM and DISPLAYTO sort by the name a
// client shows — the display name (RFC 2047 decoded), else mailbox@host —
// where FROM and TO sort by the mailbox alone.
func TestSortDisplay(t *testing.T) {
	e, addrs := ownEnv(t)
	for _, h := range []struct{ from, to string }{
		{"Zoe Adams <adams@remote.test>", "bob@example.test"},                    // ZOE ADAMS / BOB@EXAMPLE.TEST
		{"=?UTF-8?Q?Bj=C3=B6rn?= <zz@remote.test>", "Robert <bob@example.test>"}, // BJöRN / ROBERT
		{"mike@remote.test", "undisclosed-recipients:;"},                         // MIKE@REMOTE.TEST / ""
		{`"" <carl@remote.test>`, "Aaron <bob@example.test>"},                    // CARL@REMOTE.TEST / AARON
	} {
		e.deliver(0, bob, fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: s\r\n\r\nbody\r\n", h.from, h.to))
	}
	e.waitAll()
	c := login(t, addrs[1], bob)
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " SORT=DISPLAY ") {
		t.Errorf("CAPABILITY = %q, want SORT=DISPLAY", u)
	}
	c.ok("SELECT INBOX")
	for _, x := range []struct{ cmd, want string }{
		{"SORT (FROM) UTF-8 ALL", "* SORT 1 4 3 2"},        // ADAMS CARL MIKE ZZ
		{"SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 2 4 3 1"}, // BJöRN CARL@… MIKE@… ZOE ADAMS
		{"SORT (REVERSE DISPLAYFROM) UTF-8 ALL", "* SORT 1 3 4 2"},
		{"SORT (TO) UTF-8 ALL", "* SORT 3 1 2 4"},        // "" then BOB ×3, by number
		{"SORT (DISPLAYTO) UTF-8 ALL", "* SORT 3 4 1 2"}, // "" AARON BOB@… ROBERT
		{"UID SORT (DISPLAYTO DISPLAYFROM) UTF-8 NOT UID 3", "* SORT 4 1 2"},
	} {
		if u := c.ok("%s", x.cmd); len(u) != 1 || u[0] != x.want {
			t.Errorf("%s = %q, want %q", x.cmd, u, x.want)
		}
	}
}
