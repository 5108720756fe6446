package imapd_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const multipartMsg = "From: Sender <sender@remote.test>\r\n" +
	"To: Alice <alice@example.test>\r\n" +
	"Subject: =?utf-8?q?Caf=C3=A9?= report\r\n" +
	"Date: Tue, 03 Jan 2006 10:00:00 +0100\r\n" +
	"Message-ID: <multi@remote.test>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"XYZ\"\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--XYZ\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"Hello Alice, the needle is here.\r\n" +
	"--XYZ\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"Content-Disposition: attachment; filename=\"a.bin\"\r\n" +
	"\r\n" +
	"AAECAwQF\r\n" +
	"--XYZ--\r\n"

// TestCommands drives the core commands over the wire on a follower and
// checks what each returns: FETCH items from the parsed record, sections
// at their offsets, STORE/SEARCH/COPY/MOVE/EXPUNGE effects and numbering.
func TestCommands(t *testing.T) {
	e := newEnv(t, nil)
	e.deliver(0, alice, testMessage("m1", "first", "plain body one"))
	e.deliver(0, alice, multipartMsg)
	e.deliver(0, alice, testMessage("m3", "third", "another body"))

	c := login(t, e.addrs[1], alice)

	// CAPABILITY after login lists what the issue asks for.
	caps := c.ok("CAPABILITY")
	for _, want := range []string{"IMAP4rev2", "IMAP4rev1", "IDLE", "UIDPLUS", "MOVE", "NAMESPACE", "SPECIAL-USE",
		"LITERAL+", "UNSELECT", "ESEARCH", "STATUS=SIZE", "APPENDLIMIT=", "BINARY", "LIST-EXTENDED", "LIST-STATUS", "SASL-IR"} {
		if !strings.Contains(caps[0], " "+want) {
			t.Errorf("CAPABILITY lacks %s: %q", want, caps[0])
		}
	}

	// LIST shows the default mailboxes with their special use.
	list := c.ok(`LIST "" "*"`)
	for _, want := range []string{` INBOX`, `\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`} {
		if find(list, want) == "" {
			t.Errorf("LIST lacks %s: %q", want, list)
		}
	}
	ns := c.ok("NAMESPACE")
	if find(ns, `NAMESPACE (("" "/")) NIL NIL`) == "" {
		t.Errorf("NAMESPACE = %q", ns)
	}

	sel := c.ok("SELECT INBOX")
	if find(sel, "* 3 EXISTS") == "" || respCode(sel, "UIDNEXT") != "4" || respCode(sel, "UIDVALIDITY") == "" {
		t.Fatalf("SELECT = %q", sel)
	}
	if find(sel, `PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)`) == "" {
		t.Errorf("SELECT PERMANENTFLAGS: %q", sel)
	}

	// FETCH answered from the parsed record.
	f := c.ok("FETCH 2 (UID FLAGS RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)")
	if len(f) != 1 {
		t.Fatalf("FETCH = %q", f)
	}
	for _, want := range []string{"UID 2", "FLAGS ()", fmt.Sprintf("RFC822.SIZE %d", len(multipartMsg)),
		`"Tue, 03 Jan 2006 10:00:00 +0100"`, `"<multi@remote.test>"`, `(("Sender" NIL "sender" "remote.test"))`,
		`("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 32 1`,
		`("application" "octet-stream" NIL NIL NIL "base64" 8 NIL ("attachment" ("filename" "a.bin"))`, `"mixed" ("boundary" "XYZ")`} {
		if !strings.Contains(f[0], want) {
			t.Errorf("FETCH lacks %s:\n%s", want, f[0])
		}
	}
	// Café is sent RFC 2047-encoded (the library Q-encodes non-ASCII).
	if !strings.Contains(f[0], "Caf") {
		t.Errorf("FETCH ENVELOPE subject: %s", f[0])
	}

	// Sections are slices of the stored bytes.
	mimeHdr := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\n"
	fieldsHdr := "Subject: =?utf-8?q?Caf=C3=A9?= report\r\nMessage-ID: <multi@remote.test>\r\n\r\n"
	body := c.ok("FETCH 2 (BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[HEADER.FIELDS (Subject Message-ID)] BODY.PEEK[]<0.10> BINARY.PEEK[2] BINARY.SIZE[2])")
	for _, want := range []string{
		"BODY[1] {32}\nHello Alice, the needle is here.",
		fmt.Sprintf("BODY[2.MIME] {%d}\n%s", len(mimeHdr), mimeHdr),
		fmt.Sprintf("BODY[HEADER.FIELDS (\"Subject\" \"Message-ID\")] {%d}\n%s", len(fieldsHdr), fieldsHdr),
		"BODY[]<0> {10}\nFrom: Send",
		"BINARY[2] ~{6}\n\x00\x01\x02\x03\x04\x05",
		"BINARY.SIZE[2] 6",
	} {
		if !strings.Contains(body[0], want) {
			t.Errorf("FETCH sections lack %q:\n%q", want, body[0])
		}
	}
	// PEEK left \Seen alone; BODY[TEXT] sets it and reports FLAGS.
	if l := c.ok("FETCH 1 (FLAGS)"); !strings.Contains(l[0], "FLAGS ()") {
		t.Errorf("after PEEK: %q", l)
	}
	txt := c.ok("FETCH 1 BODY[TEXT]")
	if !strings.Contains(txt[0], `\Seen`) || !strings.Contains(txt[0], "plain body one") {
		t.Errorf("FETCH BODY[TEXT] = %q", txt)
	}

	// STORE answers with the new flags, and FLAGS since $Important is a
	// new keyword (RFC 9051 §7.3.5), with PERMANENTFLAGS where the
	// protocol layer can send it (the own layer; go-imap cannot).
	st := c.ok(`STORE 2 +FLAGS (\Flagged $Important)`)
	if len(st) < 2 || len(st) > 3 || !strings.Contains(st[0], `\Flagged`) || !strings.Contains(st[0], `$Important`) ||
		!strings.HasPrefix(st[1], "* FLAGS (") || !strings.Contains(st[1], "$Important") ||
		len(st) == 3 && (!strings.HasPrefix(st[2], "* OK [PERMANENTFLAGS (") || !strings.Contains(st[2], "$Important")) {
		t.Errorf("STORE = %q", st)
	}
	if st := c.ok(`UID STORE 3 +FLAGS.SILENT (\Answered)`); len(st) != 0 {
		t.Errorf("STORE.SILENT = %q", st)
	}

	// SEARCH over flags, sizes, headers, text, UIDs, dates.
	for _, tc := range []struct{ q, want string }{
		{`SEARCH FLAGGED`, "* SEARCH 2"},
		{`SEARCH UNSEEN`, "* SEARCH 2 3"},
		{`SEARCH SEEN`, "* SEARCH 1"},
		{`SEARCH ANSWERED`, "* SEARCH 3"},
		{`SEARCH KEYWORD $Important`, "* SEARCH 2"},
		{`SEARCH SUBJECT third`, "* SEARCH 3"},
		{`SEARCH HEADER Message-ID multi@`, "* SEARCH 2"},
		{`SEARCH FROM sender`, "* SEARCH 1 2 3"},
		{`SEARCH BODY NEEDLE`, "* SEARCH 2"},
		{`SEARCH TEXT "another body"`, "* SEARCH 3"},
		{`SEARCH LARGER 400`, "* SEARCH 2"},
		{`SEARCH NOT LARGER 400`, "* SEARCH 1 3"},
		{`SEARCH OR SUBJECT first SUBJECT third`, "* SEARCH 1 3"},
		{`SEARCH 2:*`, "* SEARCH 2 3"},
		{`UID SEARCH UID 1,3`, "* SEARCH 1 3"},
		{`SEARCH SENTBEFORE 3-Jan-2006`, "* SEARCH 1 3"},
		{`SEARCH SINCE 1-Jan-2020`, "* SEARCH 1 2 3"},
		{`SEARCH BEFORE 1-Jan-2020`, "* SEARCH"},
		{`SEARCH RETURN (MIN MAX COUNT) UNSEEN`, "* ESEARCH (TAG "},
	} {
		u := c.ok("%s", tc.q)
		if len(u) != 1 || strings.TrimSpace(u[0]) != tc.want && !strings.HasPrefix(u[0], tc.want) {
			t.Errorf("%s = %q, want %q", tc.q, u, tc.want)
		}
	}
	if u := c.ok(`SEARCH RETURN (MIN MAX COUNT) UNSEEN`); !strings.Contains(u[0], "MIN 2 MAX 3 COUNT 2") {
		t.Errorf("ESEARCH = %q", u)
	}

	// COPY and MOVE report COPYUID; MOVE expunges with sequence numbers.
	cp := c.expect("OK [COPYUID ", "COPY 1:2 Archive")
	if len(cp) != 0 {
		t.Errorf("COPY untagged %q", cp)
	}
	mv := c.ok("MOVE 1 Trash")
	if find(mv, "[COPYUID ") == "" || find(mv, "* 1 EXPUNGE") == "" {
		t.Errorf("MOVE = %q", mv)
	}
	// Now INBOX holds UIDs 2, 3 as sequence 1, 2.
	if u := c.ok("FETCH 1:* (UID)"); len(u) != 2 || !strings.Contains(u[0], "UID 2") || !strings.Contains(u[1], "UID 3") {
		t.Errorf("after MOVE: %q", u)
	}
	c.ok(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	if u := c.ok("EXPUNGE"); len(u) != 1 || u[0] != "* 2 EXPUNGE" {
		t.Errorf("EXPUNGE = %q", u)
	}

	// APPEND returns APPENDUID and the session sees the message at once.
	app := "Subject: appended\r\n\r\nhello\r\n"
	c.send("a100 APPEND INBOX (\\Seen) {%d}\r\n", len(app))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("APPEND continuation = %q", l)
	}
	c.send("%s\r\n", app)
	u, done := c.until("a100")
	if !strings.HasPrefix(done, "OK [APPENDUID ") || find(u, "* 2 EXISTS") == "" {
		t.Errorf("APPEND = %q %q", u, done)
	}
	if !strings.Contains(done, " 4]") {
		t.Errorf("APPENDUID UID want 4: %q", done)
	}

	st2 := c.ok("STATUS Archive (MESSAGES UIDNEXT UNSEEN SIZE DELETED)")
	if !strings.Contains(st2[0], "MESSAGES 2") || !strings.Contains(st2[0], "UIDNEXT 3") || !strings.Contains(st2[0], "DELETED 0") {
		t.Errorf("STATUS = %q", st2)
	}
	// LIST-STATUS and LIST-EXTENDED selection.
	ls := c.ok(`LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES))`)
	if find(ls, `"Archive"`) == "" || find(ls, `STATUS "Archive" (MESSAGES 2)`) == "" || find(ls, ` INBOX`) != "" {
		t.Errorf("LIST (SPECIAL-USE) = %q", ls)
	}

	// CREATE / RENAME / DELETE / SUBSCRIBE round trip.
	c.ok("CREATE Work/2024")
	c.expect("NO [ALREADYEXISTS]", "CREATE Work/2024")
	c.ok("RENAME Work/2024 Work/2025")
	c.ok("SUBSCRIBE Work/2025")
	if l := c.ok(`LSUB "" "Work/*"`); find(l, "Work/2025") == "" {
		t.Errorf("LSUB = %q", l)
	}
	c.ok("DELETE Work/2025")
	c.expect("NO [NONEXISTENT]", "DELETE Work/2025")
	c.expect("NO [TRYCREATE]", "COPY 1 Nowhere")
	c.ok("UNSELECT")
	c.ok("LOGOUT")
	_ = time.Second
}
