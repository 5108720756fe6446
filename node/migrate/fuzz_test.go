package migrate

import (
	"bufio"
	"bytes"
	"context"
	"slices"
	"testing"
	"time"
)

// FuzzMbox: whatever the message, writing it as mboxrd and reading it back
// gives the same bytes and flags (for messages in the form the cluster
// stores: CRLF line ends, ending in a line end, no flag fields of their
// own at the end of the header), and reading never panics.
func FuzzMbox(f *testing.F) {
	for _, m := range testMessages() {
		f.Add(m.Data)
	}
	f.Add([]byte("Subject: x\r\n\r\nFrom a@b Mon Jan  3 10:00:00 2005\r\n\r\nFrom b\r\n"))
	f.Add([]byte("From x Mon Jan  3 10:00:00 2005\n\n>From\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Reading arbitrary bytes must not panic.
		readMbox(context.Background(), bytes.NewReader(data), "fuzz", func(*Message) error { return nil }, func(string, string) {})

		if !bytes.Contains(data, []byte("\r\n")) || !bytes.HasSuffix(data, []byte("\n")) {
			return
		}
		if stripped, _ := takeMboxFlags(data); !bytes.Equal(stripped, data) {
			return
		}
		flags := []string{`\Seen`, `\Flagged`, "$Label1"}
		var buf bytes.Buffer
		w := bufio.NewWriter(&buf)
		writeMboxMessage(w, &Message{Data: data, Flags: flags, Date: time.Unix(1e9, 0)})
		writeMboxMessage(w, &Message{Data: []byte("Subject: next\r\n\r\n"), Date: time.Unix(1e9, 0)})
		w.Flush()
		var got []*Message
		err := readMbox(context.Background(), &buf, "fuzz", func(m *Message) error { got = append(got, m); return nil }, func(id, r string) { t.Errorf("%s: %s", id, r) })
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("%d messages back, want 2:\n%q", len(got), buf.Bytes())
		}
		if !bytes.Equal(got[0].Data, data) {
			t.Fatalf("bytes\n%q\nwant\n%q", got[0].Data, data)
		}
		if _, nl := headerEnd(data); nl != "" {
			if end, _ := headerEnd(data); end >= 0 && !slices.Equal(sortedFlags(got[0].Flags), sortedFlags(flags)) {
				t.Fatalf("flags %q, want %q", got[0].Flags, flags)
			}
		}
	})
}
