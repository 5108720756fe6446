package main

import (
	"bufio"
	"bytes"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/proto/adminpb"
)

func TestWriteMboxMessageQuotesFromLines(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	h := &adminpb.ArchiveHit{From: "a@example.test", InternalDateUnix: 0}
	msg := "Subject: x\r\n\r\nFrom here on\r\n>From quoted\r\nnot From\r\n"
	if err := writeMboxMessage(w, h, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	want := "From a@example.test Thu Jan  1 00:00:00 1970\n" +
		"Subject: x\r\n\r\n>From here on\r\n>>From quoted\r\nnot From\r\n\n"
	if got := buf.String(); got != want {
		t.Errorf("mbox:\n%q\nwant\n%q", got, want)
	}
}

func TestParseDate(t *testing.T) {
	for _, tc := range []struct {
		in    string
		end   bool
		want  int64
		isErr bool
	}{
		{"", false, 0, false},
		{"2026-01-02", false, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).Unix(), false},
		{"2026-01-02", true, time.Date(2026, 1, 2, 23, 59, 59, 0, time.UTC).Unix(), false},
		{"2026-01-02T10:00:00Z", true, time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC).Unix(), false},
		{"yesterday", false, 0, true},
	} {
		got, err := parseDate(tc.in, tc.end)
		if (err != nil) != tc.isErr || got != tc.want {
			t.Errorf("parseDate(%q, %v) = %d, %v; want %d (error %v)", tc.in, tc.end, got, err, tc.want, tc.isErr)
		}
	}
}
