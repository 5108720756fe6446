package imapd_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"mime"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/imapd"
)

var searchVocab = strings.Fields(`meeting budget quarterly Straße STRASSE café résumé ÉCOLE
	ΣΊΣΥΦΟΣ σίσυφος 日本語 Привет password passport alpha gamma the archive ﬁnance Ångström`)

func searchWords(r *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = searchVocab[r.IntN(len(searchVocab))]
	}
	return strings.Join(w, " ")
}

// searchMessage is a message with an encoded subject and sender, a body
// in one of three encodings (HTML among them) and sometimes a random
// attachment.
func searchMessage(r *rand.Rand, n int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "From: %s <s%d@remote.test>\r\nTo: Alice <alice@example.test>\r\n", mime.QEncoding.Encode("utf-8", searchWords(r, 2)), r.IntN(9))
	if r.IntN(2) == 0 {
		fmt.Fprintf(&sb, "Cc: %s <c%d@remote.test>\r\n", searchWords(r, 1), r.IntN(9))
	}
	fmt.Fprintf(&sb, "Subject: %s\r\nMessage-ID: <%d.%d@remote.test>\r\nMIME-Version: 1.0\r\n", mime.BEncoding.Encode("utf-8", searchWords(r, 3)), n, r.Uint64())
	body := searchWords(r, 10+r.IntN(40))
	text := "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
	switch r.IntN(3) {
	case 1:
		text = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString([]byte(body)) + "\r\n"
	case 2:
		text = "Content-Type: text/html; charset=utf-8\r\n\r\n<p>" + strings.ReplaceAll(body, " ", " <i>") + "</p>\r\n"
	}
	if r.IntN(3) > 0 {
		sb.WriteString(text)
		return sb.String()
	}
	raw := make([]byte, 600)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	fmt.Fprintf(&sb, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n%s--b\r\nContent-Type: application/octet-stream; name=%s.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n",
		text, searchVocab[r.IntN(len(searchVocab))], base64.StdEncoding.EncodeToString(raw))
	return sb.String()
}

// TestSearchIndexAgreesWithScan: on a random corpus, SEARCH through the
// full-text index and SEARCH that scans every message (ScanSearch, the
// oracle) give the same answer to random queries, over IMAP, including
// criteria under NOT and OR, combined with flags, and with messages
// delivered after the index caught up.
func TestSearchIndexAgreesWithScan(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 14))
	e := newEnv(t, nil)
	scanAddr := e.serve(0, func(o *imapd.Options) { o.ScanSearch = true })
	for i := range 60 {
		e.deliver(i%3, alice, searchMessage(r, i))
	}
	e.waitAll()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	n := e.c.Nodes[0]
	if err := n.Index().WaitCaughtUp(ctx, n.FSM().AppliedIndex()); err != nil {
		t.Fatal(err)
	}
	// Some not yet indexed, perhaps: the index path scans those.
	for i := range 5 {
		e.deliver(0, alice, searchMessage(r, 100+i))
	}
	idx, scan := login(t, e.addrs[0], alice), login(t, scanAddr, alice)
	idx.ok("SELECT INBOX")
	scan.ok("SELECT INBOX")
	idx.ok("STORE 1:10 +FLAGS (\\Flagged)")
	scan.ok("NOOP")
	literal := func(s string) string { return fmt.Sprintf("{%d+}\r\n%s", len(s), s) }
	criterion := func() string {
		w := []rune(searchVocab[r.IntN(len(searchVocab))])
		i := r.IntN(len(w))
		v := string(w[i : i+1+r.IntN(len(w)-i)])
		if r.IntN(2) == 0 {
			v = strings.ToUpper(v)
		}
		switch r.IntN(9) {
		case 0, 1:
			return "TEXT " + literal(v)
		case 2:
			return "BODY " + literal(v)
		case 3:
			return "SUBJECT " + literal(v)
		case 4:
			return "FROM " + literal(v)
		case 5:
			return "CC " + literal(v)
		case 6:
			return "NOT TEXT " + literal(v)
		case 7:
			return "OR SUBJECT " + literal(v) + " BODY " + literal(v)
		default:
			return "HEADER To " + literal(v)
		}
	}
	hits := 0
	for q := 0; q < 150; q++ {
		crit := criterion()
		if r.IntN(3) == 0 {
			crit += " " + criterion()
		}
		if r.IntN(5) == 0 {
			crit = "FLAGGED " + crit
		}
		cmd := "UID SEARCH CHARSET UTF-8 " + crit
		got, want := idx.ok("%s", cmd), scan.ok("%s", cmd)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("%q: index %q, scan %q (seed %d)", cmd, got, want, seed)
		}
		if find(got, "* SEARCH ") != "" {
			hits++
		}
	}
	t.Logf("150 queries, %d with hits", hits)
}
