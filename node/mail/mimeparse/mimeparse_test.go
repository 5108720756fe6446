package mimeparse

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// crlf turns the readable "\n" of a test message into the CRLF of the wire.
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

// bodyOf returns what follows the first blank line of msg.
func bodyOf(msg string) string {
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := strings.Index(msg, sep); i >= 0 {
			return msg[i+len(sep):]
		}
	}
	return ""
}

// between returns the text of msg after the first from and up to the next
// until, for expected bodies that are long.
func between(msg, from, until string) string {
	i := strings.Index(msg, from)
	if i < 0 {
		panic("between: no " + from)
	}
	rest := msg[i+len(from):]
	j := strings.Index(rest, until)
	if j < 0 {
		panic("between: no " + until)
	}
	return rest[:j]
}

var (
	msgPlain = crlf(`Return-Path: <alice@example.com>
Received: from mail.example.com (mail.example.com [192.0.2.1])
	by mx.example.org with ESMTPS id 4Yd2;
	Mon, 13 Jan 2025 10:15:02 +0100
From: Alice Example <alice@example.com>
To: Bob <bob@example.org>, carol@example.net
Cc: "Dave, Jr." <dave@example.com>
Subject: Lunch on
 Friday?
Date: Mon, 13 Jan 2025 10:15:00 +0100
Message-ID: <20250113101500.1234@example.com>
In-Reply-To: <prev@example.org>

Hi Bob,

Are you free on Friday?

Alice
`)

	msgAlternative = crlf(`From: Alice <alice@example.com>
To: bob@example.org
Subject: Newsletter
Date: Tue, 14 Jan 2025 08:00:00 -0500
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1_alt"

This is a multi-part message in MIME format.

--b1_alt
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

Caf=C3=A9 opens at 8.
See you there.
--b1_alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: Quoted-Printable

<p>Caf=C3=A9 opens at 8.</p>
<p>See you there.</p>

--b1_alt--
epilogue text
`)

	attachment = crlf(`JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k
ZT4+CnN0cmVhbQp4nCvkMlAwUDC1NDDUMzK3tFBIzuUyUADCXC4DIyMjAAAi5gQpCmVuZHN0cmVh
bQplbmRvYmoK`)

	msgMixed = crlf(`From: =?UTF-8?Q?Ren=C3=A9e?= <renee@example.com>
To: team@example.com
Subject: Q4 report
Date: Wed, 15 Jan 2025 17:30:00 +0000
Message-ID: <q4@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed;
 boundary="----=_Part_0_1234.5678"

------=_Part_0_1234.5678
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: 8bit

Report attached.
------=_Part_0_1234.5678
Content-Type: application/pdf;
 name*=UTF-8''na%C3%AFve%20report.pdf
Content-Transfer-Encoding: BASE64
Content-Disposition: ATTACHMENT;
 filename*0*=UTF-8''na%C3%AFve%20;
 filename*1="report.pdf";
 size=1234
Content-ID: <part2@example.com>
Content-Description: =?UTF-8?Q?Quarterly_r=C3=A9sum=C3=A9?=
Content-Language: en, fr
Content-Location: http://example.com/report.pdf
Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==

`) + attachment + crlf(`
------=_Part_0_1234.5678--
`)

	innerMessage = crlf(`From: Alice <alice@example.com>
To: Bob <bob@example.org>
Subject: Lunch
Date: Mon, 13 Jan 2025 10:15:00 +0100
Message-ID: <inner@example.com>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain

Friday?
--inner
Content-Type: text/html

<b>Friday?</b>
--inner--
`)

	msgForward = crlf(`From: bob@example.org
To: alice@example.com
Subject: Fwd: Lunch
Date: Thu, 16 Jan 2025 09:00:00 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: text/plain

See below.

--outer
Content-Type: message/rfc822
Content-Disposition: inline

`) + innerMessage + crlf(`
--outer--
`)

	msgEncoded = "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\r\n" +
		"To: =?UTF-8?B?5bGx55Sw5aSq6YOO?= <taro@example.jp>, =?KOI8-R?B?8NLJ18XU?= <ivan@example.ru>\r\n" +
		"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n =?ISO-8859-1?Q?_und_M=FCnchen?=\r\n" +
		"Date: Fri, 17 Jan 2025 12:00:00 +0100\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"Grüße!\r\n"

	msgMissing = crlf(`X-Mailer: test

just a body`)

	msgNoBlank = crlf(`From: a@example.com
Subject: no body
`)

	msgBareLF = `Subject: bare LF
Content-Type: multipart/mixed; boundary=lf

--lf
Content-Type: text/plain

one
two
--lf
Content-Type: text/plain

three
--lf--
`

	msgUnterminated = crlf(`Content-Type: multipart/mixed; boundary=x

--x
Content-Type: text/plain

unterminated
last line
`)

	msgDigest = crlf(`Content-Type: multipart/digest; boundary=d

--d

From: a@example.com
Subject: one

first
--d
Content-Type: text/plain

not a message
--d--
`)

	msgLenient = crlf(`From: undisclosed, Carol <carol@example.net>, <dave@example.com>
Subject: caf` + "\xe9" + `
Date: Thu, 20 Nov 1997 09:55:06 EST
Content-Type: multipart/mixed; boundary=----=_NextPart_000; boundary=other

------=_NextPart_000
Content-Type: text/plain; charset=windows-1252; format=flowed

hi
------=_NextPart_000--
`)
)

// wantPart is one part expected in the tree, at the child indexes at (not
// IMAP section numbers: the child of a message/rfc822 part is index 0).
type wantPart struct {
	at     []int
	typ    string // type/subtype
	params map[string]string
	enc    string
	header string // data[header_start:header_end]; checked when not empty
	body   string // data[body_start:body_end]
	lines  uint64
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		msg   string
		parts []wantPart
		check func(t *testing.T, m *storagepb.ParsedMessage)
	}{
		{
			name: "plain",
			msg:  msgPlain,
			parts: []wantPart{{
				typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit",
				header: msgPlain[:strings.Index(msgPlain, "Hi Bob")],
				body:   "Hi Bob,\r\n\r\nAre you free on Friday?\r\n\r\nAlice\r\n", lines: 5,
			}},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				want := &storagepb.Envelope{
					Date:      "Mon, 13 Jan 2025 10:15:00 +0100",
					Subject:   "Lunch on Friday?",
					From:      []*storagepb.Address{{Name: "Alice Example", Mailbox: "alice", Host: "example.com"}},
					Sender:    []*storagepb.Address{{Name: "Alice Example", Mailbox: "alice", Host: "example.com"}},
					ReplyTo:   []*storagepb.Address{{Name: "Alice Example", Mailbox: "alice", Host: "example.com"}},
					To:        []*storagepb.Address{{Name: "Bob", Mailbox: "bob", Host: "example.org"}, {Mailbox: "carol", Host: "example.net"}},
					Cc:        []*storagepb.Address{{Name: "Dave, Jr.", Mailbox: "dave", Host: "example.com"}},
					InReplyTo: "<prev@example.org>",
					MessageId: "<20250113101500.1234@example.com>",
					DateUnix:  time.Date(2025, 1, 13, 9, 15, 0, 0, time.UTC).Unix(),
				}
				if !proto.Equal(m.Envelope, want) {
					t.Errorf("envelope:\ngot  %v\nwant %v", m.Envelope, want)
				}
			},
		},
		{
			name: "multipart/alternative",
			msg:  msgAlternative,
			parts: []wantPart{
				{typ: "multipart/alternative", params: map[string]string{"boundary": "b1_alt"}, enc: "7bit", body: bodyOf(msgAlternative)},
				{at: []int{0}, typ: "text/plain", params: map[string]string{"charset": "utf-8"}, enc: "quoted-printable",
					header: "Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
					body:   "Caf=C3=A9 opens at 8.\r\nSee you there.", lines: 2},
				{at: []int{1}, typ: "text/html", params: map[string]string{"charset": "utf-8"}, enc: "quoted-printable",
					body: "<p>Caf=C3=A9 opens at 8.</p>\r\n<p>See you there.</p>\r\n", lines: 2},
			},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				if got, want := m.Envelope.DateUnix, time.Date(2025, 1, 14, 13, 0, 0, 0, time.UTC).Unix(); got != want {
					t.Errorf("date_unix = %d, want %d", got, want)
				}
			},
		},
		{
			name: "multipart/mixed with base64 attachment",
			msg:  msgMixed,
			parts: []wantPart{
				{typ: "multipart/mixed", params: map[string]string{"boundary": "----=_Part_0_1234.5678"}, enc: "7bit", body: bodyOf(msgMixed)},
				{at: []int{0}, typ: "text/plain", params: map[string]string{"charset": "ISO-8859-1"}, enc: "8bit",
					body: "Report attached.", lines: 1},
				{at: []int{1}, typ: "application/pdf", params: map[string]string{"name": "naïve report.pdf"}, enc: "base64",
					body: attachment},
			},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				p := m.Root.Children[1]
				got := []any{p.Id, p.Description, p.Md5, p.Disposition, p.DispositionParams, p.Language, p.Location}
				want := []any{"<part2@example.com>", "Quarterly résumé", "Q2hlY2sgSW50ZWdyaXR5IQ==", "attachment",
					map[string]string{"filename": "naïve report.pdf", "size": "1234"}, []string{"en", "fr"}, "http://example.com/report.pdf"}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("attachment fields:\ngot  %q\nwant %q", got, want)
				}
				if got, want := m.Envelope.From[0].Name, "Renée"; got != want {
					t.Errorf("from name = %q, want %q", got, want)
				}
			},
		},
		{
			name: "nested message/rfc822",
			msg:  msgForward,
			parts: []wantPart{
				{typ: "multipart/mixed", params: map[string]string{"boundary": "outer"}, enc: "7bit", body: bodyOf(msgForward)},
				{at: []int{0}, typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit",
					header: "Content-Type: text/plain\r\n\r\n", body: "See below.\r\n", lines: 1},
				{at: []int{1}, typ: "message/rfc822", enc: "7bit", body: innerMessage, lines: 17},
				{at: []int{1, 0}, typ: "multipart/alternative", params: map[string]string{"boundary": "inner"}, enc: "7bit",
					header: innerMessage[:strings.Index(innerMessage, "--inner")], body: bodyOf(innerMessage)},
				{at: []int{1, 0, 0}, typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit", body: "Friday?", lines: 1},
				{at: []int{1, 0, 1}, typ: "text/html", params: map[string]string{"charset": "us-ascii"}, enc: "7bit", body: "<b>Friday?</b>", lines: 1},
			},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				p := m.Root.Children[1]
				if p.Envelope == nil {
					t.Fatal("message/rfc822 part has no envelope")
				}
				if p.Envelope.Subject != "Lunch" || p.Envelope.MessageId != "<inner@example.com>" || p.Envelope.From[0].Name != "Alice" {
					t.Errorf("inner envelope = %v", p.Envelope)
				}
				if p.Disposition != "inline" {
					t.Errorf("disposition = %q, want inline", p.Disposition)
				}
				if m.Envelope.Subject != "Fwd: Lunch" {
					t.Errorf("outer subject = %q", m.Envelope.Subject)
				}
			},
		},
		{
			name: "encoded words in UTF-8, ISO-8859-1 and KOI8-R",
			msg:  msgEncoded,
			parts: []wantPart{{typ: "text/plain", params: map[string]string{"charset": "utf-8"}, enc: "8bit",
				body: "Grüße!\r\n", lines: 1}},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				e := m.Envelope
				if got, want := e.Subject, "Grüße aus Köln und München"; got != want {
					t.Errorf("subject = %q, want %q", got, want)
				}
				wantFrom := []*storagepb.Address{{Name: "André Pirard", Mailbox: "PIRARD", Host: "vm1.ulg.ac.be"}}
				wantTo := []*storagepb.Address{{Name: "山田太郎", Mailbox: "taro", Host: "example.jp"}, {Name: "Привет", Mailbox: "ivan", Host: "example.ru"}}
				if !addressesEqual(e.From, wantFrom) || !addressesEqual(e.To, wantTo) {
					t.Errorf("from = %v, to = %v", e.From, e.To)
				}
			},
		},
		{
			name: "missing headers",
			msg:  msgMissing,
			parts: []wantPart{{typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit",
				header: "X-Mailer: test\r\n\r\n", body: "just a body", lines: 1}},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				if !proto.Equal(m.Envelope, &storagepb.Envelope{}) {
					t.Errorf("envelope = %v, want empty", m.Envelope)
				}
			},
		},
		{
			name: "no blank line is all header",
			msg:  msgNoBlank,
			parts: []wantPart{{typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit",
				header: msgNoBlank, body: ""}},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				if m.Envelope.Subject != "no body" || len(m.Envelope.From) != 1 {
					t.Errorf("envelope = %v", m.Envelope)
				}
			},
		},
		{
			name:  "empty message",
			msg:   "",
			parts: []wantPart{{typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit"}},
		},
		{
			name: "bare LF",
			msg:  msgBareLF,
			parts: []wantPart{
				{typ: "multipart/mixed", params: map[string]string{"boundary": "lf"}, enc: "7bit", body: bodyOf(msgBareLF)},
				{at: []int{0}, typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit",
					header: "Content-Type: text/plain\n\n", body: "one\ntwo", lines: 2},
				{at: []int{1}, typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit", body: "three", lines: 1},
			},
		},
		{
			name: "missing close delimiter",
			msg:  msgUnterminated,
			parts: []wantPart{
				{typ: "multipart/mixed", params: map[string]string{"boundary": "x"}, enc: "7bit", body: bodyOf(msgUnterminated)},
				{at: []int{0}, typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit",
					body: "unterminated\r\nlast line\r\n", lines: 2},
			},
		},
		{
			name: "multipart/digest defaults to message/rfc822",
			msg:  msgDigest,
			parts: []wantPart{
				{typ: "multipart/digest", params: map[string]string{"boundary": "d"}, enc: "7bit", body: bodyOf(msgDigest)},
				{at: []int{0}, typ: "message/rfc822", enc: "7bit", header: "\r\n",
					body: "From: a@example.com\r\nSubject: one\r\n\r\nfirst", lines: 4},
				{at: []int{0, 0}, typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit",
					header: "From: a@example.com\r\nSubject: one\r\n\r\n", body: "first", lines: 1},
				{at: []int{1}, typ: "text/plain", params: map[string]string{"charset": "us-ascii"}, enc: "7bit",
					body: "not a message", lines: 1},
			},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				if got := m.Root.Children[0].Envelope.GetSubject(); got != "one" {
					t.Errorf("digest entry subject = %q, want one", got)
				}
			},
		},
		{
			name: "lenient parameters, addresses, 8-bit subject and zone name",
			msg:  msgLenient,
			parts: []wantPart{
				{typ: "multipart/mixed", params: map[string]string{"boundary": "----=_NextPart_000"}, enc: "7bit", body: bodyOf(msgLenient)},
				{at: []int{0}, typ: "text/plain", params: map[string]string{"charset": "windows-1252", "format": "flowed"}, enc: "7bit",
					body: "hi", lines: 1},
			},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				e := m.Envelope
				wantFrom := []*storagepb.Address{{Mailbox: "undisclosed"}, {Name: "Carol", Mailbox: "carol", Host: "example.net"}, {Mailbox: "dave", Host: "example.com"}}
				if !addressesEqual(e.From, wantFrom) {
					t.Errorf("from = %v, want %v", e.From, wantFrom)
				}
				if got, want := e.Subject, "caf\uFFFD"; got != want {
					t.Errorf("subject = %q, want %q", got, want)
				}
				if got, want := e.DateUnix, time.Date(1997, 11, 20, 14, 55, 6, 0, time.UTC).Unix(); got != want {
					t.Errorf("date_unix = %d, want %d", got, want)
				}
			},
		},
		{
			name: "RFC 2231 parameters in ISO-8859-1",
			msg: crlf(`Content-Type: application/octet-stream; name*=iso-8859-1'fr'caf%E9.txt
Content-Disposition: attachment; filename*0*=ISO-8859-1''caf%E9; filename*1=".txt"

x`),
			parts: []wantPart{{typ: "application/octet-stream", params: map[string]string{"name": "café.txt"}, enc: "7bit", body: "x"}},
			check: func(t *testing.T, m *storagepb.ParsedMessage) {
				if got, want := m.Root.DispositionParams, map[string]string{"filename": "café.txt"}; !reflect.DeepEqual(got, want) {
					t.Errorf("disposition params = %q, want %q", got, want)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.msg)
			m, err := Parse(data, DefaultLimits())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			checkInvariants(t, data, m, DefaultLimits())
			if got, want := countParts(m.Root), len(tt.parts); got != want {
				t.Errorf("got %d parts, want %d", got, want)
			}
			for _, w := range tt.parts {
				p := walk(m.Root, w.at)
				if p == nil {
					t.Errorf("part %v: missing", w.at)
					continue
				}
				if got := p.Type + "/" + p.Subtype; got != w.typ {
					t.Errorf("part %v: type %q, want %q", w.at, got, w.typ)
				}
				if got := p.Params; !(len(got) == 0 && len(w.params) == 0) && !reflect.DeepEqual(got, w.params) {
					t.Errorf("part %v: params %q, want %q", w.at, got, w.params)
				}
				if p.Encoding != w.enc {
					t.Errorf("part %v: encoding %q, want %q", w.at, p.Encoding, w.enc)
				}
				if got := string(data[p.HeaderStart:p.HeaderEnd]); w.header != "" && got != w.header {
					t.Errorf("part %v: header\ngot  %q\nwant %q", w.at, got, w.header)
				}
				if got := string(data[p.BodyStart:p.BodyEnd]); got != w.body {
					t.Errorf("part %v: body\ngot  %q\nwant %q", w.at, got, w.body)
				}
				if p.Size != uint64(len(w.body)) {
					t.Errorf("part %v: size %d, want %d", w.at, p.Size, len(w.body))
				}
				if p.Lines != w.lines {
					t.Errorf("part %v: lines %d, want %d", w.at, p.Lines, w.lines)
				}
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestSection(t *testing.T) {
	nonMultipartInner := crlf(`Content-Type: multipart/mixed; boundary=b

--b
Content-Type: message/rfc822

Subject: inner

text
--b--
`)
	tests := []struct {
		msg  string
		path []int
		body string // data[body_start:body_end] of the part found; "!" for ErrNoSuchPart
	}{
		{msgPlain, nil, bodyOf(msgPlain)},
		{msgPlain, []int{1}, bodyOf(msgPlain)},
		{msgPlain, []int{2}, "!"},
		{msgPlain, []int{1, 1}, "!"},
		{msgPlain, []int{0}, "!"},
		{msgForward, nil, bodyOf(msgForward)},
		{msgForward, []int{1}, "See below.\r\n"},
		{msgForward, []int{2}, innerMessage},
		{msgForward, []int{2, 1}, "Friday?"},
		{msgForward, []int{2, 2}, "<b>Friday?</b>"},
		{msgForward, []int{2, 3}, "!"},
		{msgForward, []int{2, 1, 1}, "!"},
		{msgForward, []int{1, 1}, "!"},
		{msgForward, []int{3}, "!"},
		{nonMultipartInner, []int{1}, "Subject: inner\r\n\r\ntext"},
		{nonMultipartInner, []int{1, 1}, "text"},
		{nonMultipartInner, []int{1, 2}, "!"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%.12q/%v", tt.msg, tt.path), func(t *testing.T) {
			data := []byte(tt.msg)
			m, err := Parse(data, DefaultLimits())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			p, err := Section(data, m, tt.path)
			if tt.body == "!" {
				if !errors.Is(err, ErrNoSuchPart) {
					t.Errorf("Section: got %v, %v; want ErrNoSuchPart", p, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Section: %v", err)
			}
			if got := string(data[p.BodyStart:p.BodyEnd]); got != tt.body {
				t.Errorf("body\ngot  %q\nwant %q", got, tt.body)
			}
		})
	}

	t.Run("record does not match data", func(t *testing.T) {
		data := []byte(msgPlain)
		m, err := Parse(data, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Section(data[:10], m, []int{1}); !errors.Is(err, ErrMismatch) {
			t.Errorf("Section on short data: %v, want ErrMismatch", err)
		}
	})
}

func TestTooComplex(t *testing.T) {
	tests := []struct {
		name string
		msg  string
	}{
		{"500,000 header lines", strings.Repeat("X-Spam: yes\r\n", 500_000) + "\r\nbody"},
		{"one header line over 1 MiB", "Subject: " + strings.Repeat("a", 1<<20) + "\r\n\r\nbody"},
		{"no blank line, over 1 MiB", strings.Repeat("a: b\r\n", 200_000)},
		{"part header over the line limit", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n" +
			strings.Repeat("X: y\r\n", 10_001) + "\r\nbody\r\n--b--\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.msg), DefaultLimits())
			if !errors.Is(err, ErrTooComplex) {
				t.Fatalf("Parse: got %v, %v; want ErrTooComplex", m, err)
			}
		})
	}

	t.Run("at the limits", func(t *testing.T) {
		msg := "Subject: x\r\n" + strings.Repeat("X-Spam: yes\r\n", 9_999) + "\r\nbody"
		if _, err := Parse([]byte(msg), DefaultLimits()); err != nil {
			t.Fatalf("Parse with 10,000 header lines: %v", err)
		}
	})
}

func TestTruncated(t *testing.T) {
	t.Run("10,000 parts", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
		for i := range 10_000 {
			fmt.Fprintf(&b, "--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n", i)
		}
		b.WriteString("--b--\r\n")
		data := []byte(b.String())
		m, err := Parse(data, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		checkInvariants(t, data, m, DefaultLimits())
		if !m.Root.Truncated || len(m.Root.Children) != 999 {
			t.Errorf("root truncated %v with %d children, want true with 999", m.Root.Truncated, len(m.Root.Children))
		}
		if got := string(data[m.Root.Children[998].BodyStart:m.Root.Children[998].BodyEnd]); got != "part 998" {
			t.Errorf("last child body = %q", got)
		}
	})

	nest := func(n int, wrap func(inner string) string) string {
		msg := "Subject: bottom\r\n\r\nhello\r\n"
		for range n {
			msg = wrap(msg)
		}
		return msg
	}
	tests := []struct {
		name string
		msg  string
	}{
		{"message/rfc822 100 deep", nest(100, func(inner string) string {
			return "Subject: wrapper\r\nContent-Type: message/rfc822\r\n\r\n" + inner
		})},
		{"multipart 100 deep", nest(100, func(inner string) string {
			return "Content-Type: multipart/mixed; boundary=\"" + fmt.Sprint(len(inner)) + "\"\r\n\r\n--" +
				fmt.Sprint(len(inner)) + "\r\n" + inner + "\r\n--" + fmt.Sprint(len(inner)) + "--\r\n"
		})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.msg)
			m, err := Parse(data, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, data, m, DefaultLimits())
			depth, p := 1, m.Root
			for len(p.Children) > 0 {
				p = p.Children[0]
				depth++
			}
			if depth != 32 || !p.Truncated {
				t.Errorf("deepest part at depth %d, truncated %v; want 32, true", depth, p.Truncated)
			}
			if p.BodyEnd <= p.BodyStart {
				t.Errorf("truncated part has an empty body [%d,%d)", p.BodyStart, p.BodyEnd)
			}
		})
	}
}

func TestLimitsDefaults(t *testing.T) {
	if got, want := (Limits{}).withDefaults(), DefaultLimits(); got != want {
		t.Errorf("zero Limits = %+v, want %+v", got, want)
	}
	small := Limits{MaxDepth: 2, MaxParts: 3}
	data := []byte(msgForward)
	m, err := Parse(data, small)
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, data, m, small)
	if msg := m.Root.Children[1]; !msg.Truncated || len(msg.Children) != 0 || msg.Envelope != nil {
		t.Errorf("message/rfc822 at depth 2: truncated %v, %d children, envelope %v", msg.Truncated, len(msg.Children), msg.Envelope)
	}
}

// TestDateIgnoresLocalZone checks that a zone name in Date is resolved by
// RFC 5322, not by the node's time.Local, which time.Parse consults.
func TestDateIgnoresLocalZone(t *testing.T) {
	saved := time.Local
	t.Cleanup(func() { time.Local = saved })
	time.Local = time.FixedZone("PST", 3600) // a node whose PST means +0100
	got := dateUnix("Thu, 20 Nov 1997 09:55:06 PST")
	if want := time.Date(1997, 11, 20, 17, 55, 6, 0, time.UTC).Unix(); got != want {
		t.Errorf("date_unix = %d, want %d", got, want)
	}
	got = dateUnix("Thu, 20 Nov 1997 09:55:06 +0100 (PST)")
	if want := time.Date(1997, 11, 20, 8, 55, 6, 0, time.UTC).Unix(); got != want {
		t.Errorf("numeric zone: date_unix = %d, want %d", got, want)
	}
	if got := dateUnix("not a date"); got != 0 {
		t.Errorf("bad date: date_unix = %d, want 0", got)
	}
}

func BenchmarkParse(b *testing.B) {
	data := benchMessage()
	if len(data) < 50<<10 {
		b.Fatalf("benchmark message is %d bytes", len(data))
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, DefaultLimits()); err != nil {
			b.Fatal(err)
		}
	}
}

// benchMessage is a 50 KiB newsletter: text and HTML alternatives and a
// base64 image.
func benchMessage() []byte {
	var b strings.Builder
	b.WriteString(crlf(`Received: from mail.example.com by mx.example.org; Mon, 13 Jan 2025 10:15:02 +0100
From: "Example News" <news@example.com>
To: reader@example.org
Subject: =?UTF-8?Q?This_week=E2=80=99s_news?=
Date: Mon, 13 Jan 2025 10:15:00 +0100
Message-ID: <bench@example.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mixed-1"

--mixed-1
Content-Type: multipart/alternative; boundary="alt-1"

--alt-1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

`))
	for range 60 {
		b.WriteString("The quick brown fox jumps over the lazy dog, again and again.\r\n")
	}
	b.WriteString("\r\n--alt-1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	for range 150 {
		b.WriteString("<p>The quick brown fox jumps over the lazy dog, again and again.</p>\r\n")
	}
	b.WriteString("\r\n--alt-1--\r\n\r\n--mixed-1\r\nContent-Type: image/png; name=\"chart.png\"\r\n" +
		"Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"chart.png\"\r\n\r\n")
	line := strings.Repeat("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk", 2)[:76] + "\r\n"
	for range 500 {
		b.WriteString(line)
	}
	b.WriteString("\r\n--mixed-1--\r\n")
	return []byte(b.String())
}

func walk(p *storagepb.Part, at []int) *storagepb.Part {
	for _, i := range at {
		if p == nil || i >= len(p.Children) {
			return nil
		}
		p = p.Children[i]
	}
	return p
}

func countParts(p *storagepb.Part) int {
	n := 1
	for _, c := range p.Children {
		n += countParts(c)
	}
	return n
}

func addressesEqual(a, b []*storagepb.Address) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}
