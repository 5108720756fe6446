package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/continuum-mail/continuum/node/imapd/wire"
	"github.com/continuum-mail/continuum/node/mail/mimeparse"
)

// FuzzBodyStructure is docs/TESTPLAN.md §5's BODYSTRUCTURE builder target: any
// message the MIME parser accepts is rendered, through bodyStructure and
// writeBodyStructure, as one well-formed IMAP list, with and without
// extension data, in UTF-8 and in 7-bit mode. The oracle is a parser
// nobody here wrote: go-imap v2's client must read the rendering, sent as
// a FETCH response, as a body structure; and no NUL or literal8 appears
// (IMAP strings cannot hold NUL).
func FuzzBodyStructure(f *testing.F) {
	for _, m := range []string{
		"Subject: x\r\n\r\nbody\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi\r\n--b\r\nContent-Type: application/pdf; name=\"a \\\"b\\\".pdf\"\r\nContent-Disposition: attachment; filename*=UTF-8''%C3%A9t%C3%A9.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n",
		"Content-Type: message/rfc822\r\n\r\nFrom: \"A (b)\" <a@b>\r\nTo: group: c@d, e@f;\r\nSubject: =?utf-8?q?=C3=A9?=\r\n\r\ninner\r\n",
		"Content-Type: multipart/alternative; boundary=\"x\"\r\nContent-Language: en, fr\r\nContent-Location: http://x/{5}\r\n\r\n--x\r\n\r\na\r\n--x\r\nContent-Type: text/html\r\n\r\n<b>b</b>\r\n--x--\r\n",
		"Content-Type: text/plain; charset=\"\r\n\tutf-8\"; format=flowed\r\nContent-ID: <\x00id>\r\nContent-Description: caf\xc3\xa9 \xff\r\n\r\nx",
	} {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := mimeparse.Parse(data, mimeparse.DefaultLimits())
		if err != nil {
			if !errors.Is(err, mimeparse.ErrTooComplex) {
				t.Fatalf("Parse: %v", err)
			}
			return
		}
		bs := bodyStructure(m.GetRoot(), 0)
		for _, ext := range []bool{false, true} {
			for _, utf8 := range []bool{false, true} {
				var out bytes.Buffer
				bw := bufio.NewWriter(&out)
				w := wire.NewWriter(bw)
				writeBodyStructure(w, bs, ext, utf8)
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
				item := "BODY"
				if ext {
					item = "BODYSTRUCTURE"
				}
				if err := parseAsClient(item, out.String()); err != nil {
					t.Fatalf("ext=%v utf8=%v: go-imap's client cannot read the rendering: %v\n%q", ext, utf8, err, out.String())
				}
				if bytes.IndexByte(out.Bytes(), 0) >= 0 || bytes.Contains(out.Bytes(), []byte("~{")) {
					t.Fatalf("ext=%v utf8=%v: a NUL or a literal8 in a BODYSTRUCTURE (strings cannot hold NUL): %q", ext, utf8, out.String())
				}
			}
		}
	})
}

// parseAsClient serves "* 1 FETCH (item rendering)" to a go-imap v2 client
// and reports whether it decoded a body structure from it.
func parseAsClient(item, rendering string) error {
	srv, cli := net.Pipe()
	defer srv.Close()
	got := make(chan bool, 1)
	c := imapclient.New(cli, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Fetch: func(msg *imapclient.FetchMessageData) {
			ok := false
			for it := msg.Next(); it != nil; it = msg.Next() {
				if _, is := it.(imapclient.FetchItemDataBodyStructure); is {
					ok = true
				}
			}
			got <- ok
		},
	}})
	defer c.Close()
	go func() {
		io.WriteString(srv, "* OK ready\r\n* 1 FETCH ("+item+" "+rendering+")\r\n")
		io.Copy(io.Discard, srv)
	}()
	select {
	case ok := <-got:
		if !ok {
			return errors.New("no body structure in the FETCH data")
		}
		return nil
	case <-c.Closed():
		return errors.New("the client closed the connection (a decoding error)")
	case <-time.After(5 * time.Second):
		return errors.New("no FETCH data decoded within 5 s")
	}
}
