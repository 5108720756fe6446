package migrate

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func sortedFlags(f []string) []string {
	out := make([]string, len(f))
	for i, s := range f {
		out[i] = strings.ToLower(s)
	}
	slices.Sort(out)
	return out
}

// testMessages covers what mboxrd and Maildir must carry through intact.
func testMessages() []*Message {
	d := time.Date(1999, 12, 31, 23, 59, 58, 0, time.UTC)
	return []*Message{
		{Data: []byte("From: a@x.test\r\nSubject: plain\r\n\r\nbody\r\n"), Flags: []string{`\Seen`, `\Answered`}, Date: d},
		{Data: []byte("Subject: quoting\r\n\r\nFrom here on\r\n>From there\r\n>>From everywhere\r\nFrom\r\n"), Flags: []string{`\Flagged`, "$Label1", "work"}, Date: d.Add(time.Hour)},
		{Data: []byte("Subject: ends with an empty line\r\n\r\nx\r\n\r\n"), Flags: nil, Date: d.Add(2 * time.Hour)},
		{Data: []byte("Subject: meta-like body\r\n\r\nStatus: RO\r\nX-Keywords: no\r\n"), Flags: []string{`\Draft`, `\Deleted`, "$Forwarded"}, Date: d.Add(3 * time.Hour)},
		{Data: []byte("\r\nno header at all\r\n"), Flags: nil, Date: d.Add(4 * time.Hour)},
	}
}

func roundTrip(t *testing.T, sink Sink, src func() Source, boxes []string) {
	t.Helper()
	msgs := testMessages()
	for _, b := range boxes {
		if err := sink.Mailbox(Mailbox{Name: b}); err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if err := sink.Message(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	s := src()
	got, err := s.Mailboxes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mb := range got {
		names = append(names, mb.Name)
	}
	want := slices.Clone(boxes)
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("mailboxes %q, want %q", names, want)
	}
	for _, mb := range got {
		if mb.Messages != len(msgs) {
			t.Errorf("%s: counted %d messages, want %d", mb.Name, mb.Messages, len(msgs))
		}
		i := 0
		err := s.Messages(context.Background(), mb, func(m *Message) error {
			w := msgs[i]
			i++
			if string(m.Data) != string(w.Data) {
				t.Errorf("%s #%d: bytes\n%q\nwant\n%q", mb.Name, i, m.Data, w.Data)
			}
			if !slices.Equal(sortedFlags(m.Flags), sortedFlags(w.Flags)) {
				t.Errorf("%s #%d: flags %q, want %q", mb.Name, i, m.Flags, w.Flags)
			}
			if !m.Date.Equal(w.Date) {
				t.Errorf("%s #%d: date %v, want %v", mb.Name, i, m.Date, w.Date)
			}
			return nil
		}, func(id, reason string) { t.Errorf("skipped %s: %s", id, reason) })
		if err != nil {
			t.Fatal(err)
		}
		if i != len(msgs) {
			t.Errorf("%s: %d messages, want %d", mb.Name, i, len(msgs))
		}
	}
}

var testBoxes = []string{"INBOX", "Work/Projects/2024", "Archiv/Übersicht", "a.b & c", "日本語"}

func TestMboxRoundTrip(t *testing.T) {
	dir := t.TempDir()
	sink, err := NewMboxSink(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, sink, func() Source {
		s, err := NewMboxSource(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, testBoxes)
	b, _ := os.ReadFile(filepath.Join(dir, "INBOX.mbox"))
	for _, want := range []string{"From MAILER-DAEMON Fri Dec 31 23:59:58 1999\n", "\r\n>From here on\r\n>>From there\r\n>>>From everywhere\r\n", "X-Keywords: $Label1 work\r\n", "Status: RO\r\nX-Status: A\r\n\r\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the mbox file lacks %q", want)
		}
	}
}

func TestMboxSingleFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "one")
	sink, err := NewMboxSink(f, true)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, sink, func() Source {
		s, err := NewMboxSource(f, "Old/Mail")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, []string{"Old/Mail"})
}

// TestMboxForeign reads an mbox as mutt or Dovecot write it: LF line ends,
// the flags in Status/X-Status, Dovecot's X-UID and X-IMAPbase.
func TestMboxForeign(t *testing.T) {
	f := filepath.Join(t.TempDir(), "inbox")
	os.WriteFile(f, []byte("From bob@x.test Sat Jan  3 01:05:34 2004\nX-IMAPbase: 1 2\nSubject: one\nStatus: RO\nX-Status: F\nX-UID: 1\n\nhello\n>From me\n\nFrom a@b Mon Feb 14 10:00:00 2005\nSubject: two\n\nbye\n\nFrom the start: an unquoted body line\n"), 0o600)
	s, err := NewMboxSource(f, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []*Message
	err = s.Messages(context.Background(), Mailbox{Name: "INBOX"}, func(m *Message) error { got = append(got, m); return nil }, func(id, r string) { t.Error(id, r) })
	if err != nil || len(got) != 2 {
		t.Fatalf("%d messages, %v", len(got), err)
	}
	if want := "X-IMAPbase: 1 2\r\nSubject: one\r\n\r\nhello\r\nFrom me\r\n"; string(got[0].Data) != want {
		t.Errorf("got %q, want %q", got[0].Data, want)
	}
	if !slices.Equal(sortedFlags(got[0].Flags), []string{`\flagged`, `\seen`}) || got[0].Date.Unix() != 1073091934 {
		t.Errorf("flags %q, date %v", got[0].Flags, got[0].Date)
	}
	if string(got[1].Data) != "Subject: two\r\n\r\nbye\r\n\r\nFrom the start: an unquoted body line\r\n" || len(got[1].Flags) != 0 {
		t.Errorf("second: %q %q", got[1].Data, got[1].Flags)
	}
}

func TestMaildirRoundTrip(t *testing.T) {
	dir := t.TempDir()
	sink, err := NewMaildirSink(dir)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, sink, func() Source {
		s, err := NewMaildirSource(dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, testBoxes)
	kw, _ := os.ReadFile(filepath.Join(dir, ".Work.Projects.2024", "dovecot-keywords"))
	if string(kw) != "0 $Label1\n1 work\n2 $Forwarded\n" {
		t.Errorf("dovecot-keywords %q", kw)
	}
	if _, err := os.Stat(filepath.Join(dir, ".Archiv.&ANw-bersicht", "maildirfolder")); err != nil {
		t.Error(err)
	}
	names, _ := filepath.Glob(filepath.Join(dir, "cur", "*"))
	var flags []string
	for _, n := range names {
		_, f, _ := strings.Cut(n, ":2,")
		flags = append(flags, f)
	}
	slices.Sort(flags)
	if want := []string{"", "", "DPTc", "Fab", "RS"}; !slices.Equal(flags, want) {
		t.Errorf("file name flags %q, want %q", flags, want)
	}
}

func TestModifiedUTF7(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"INBOX", "INBOX"}, {"Übersicht", "&ANw-bersicht"}, {"日本語", "&ZeVnLIqe-"}, {"a&b", "a&-b"}, {"a.b", "a&AC4-b"},
	} {
		got := encodeMUTF7(tc.in)
		if got != tc.want {
			t.Errorf("encode %q = %q, want %q", tc.in, got, tc.want)
		}
		back, err := decodeMUTF7(got)
		if err != nil || back != tc.in {
			t.Errorf("decode %q = %q, %v", got, back, err)
		}
	}
	for _, bad := range []string{"&", "&Jjo", "&A-"} {
		if _, err := decodeMUTF7(bad); err == nil {
			t.Errorf("decode %q: no error", bad)
		}
	}
}
