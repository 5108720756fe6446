package search_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/node/search"
)

func TestFold(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Hello  World", "hello world"},
		{"STRASSE", "strasse"},
		{"Straße", "strasse"},
		{"ΣΊΣΥΦΟΣ", "σίσυφοσ"},
		{"ﬁnance", "finance"},
		{"ｆｕｌｌ", "full"},
		{"Ångström", "ångström"},
		{"line\r\n\tbreak", "line break"},
		{"İstanbul", "i̇stanbul"},
	} {
		if got := search.Fold(tc.in); got != tc.want {
			t.Errorf("Fold(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func extract(t *testing.T, msg string) *search.Doc {
	t.Helper()
	parsed, err := mimeparse.Parse([]byte(msg), mimeparse.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	return search.Extract([]byte(msg), parsed)
}

func TestExtract(t *testing.T) {
	msg := "From: =?iso-8859-1?q?J=F6rg_M=FCller?= <jm@example.org>\r\n" +
		"Subject: =?utf-8?b?w5xiZXJtw6TDn2lnZSBSZWNobnVuZw==?=\r\n" +
		"To: a@example.test\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		"Gr=FC=DFe aus M=FCn=\r\nchen\r\n" +
		"--b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"PHA+PGI+Qm9sZDwvYj4gdGV4dDxzY3JpcHQ+c2VjcmV0PC9zY3JpcHQ+PC9wPg==\r\n" +
		"--b\r\nContent-Type: application/pdf; name=\"=?utf-8?q?Rechnung_M=C3=A4rz.pdf?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		"JVBERi0xLjQK\r\n" +
		"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner subject\r\n\r\ninner body\r\n" +
		"--b--\r\n"
	d := extract(t, msg)
	for _, tc := range []struct {
		what string
		ok   bool
	}{
		{"from jörg", d.MatchHeader("FROM", search.Fold("jörg müller"))},
		{"subject decoded", d.MatchHeader("subject", search.Fold("übermäßige"))},
		{"qp + latin-1 body", d.MatchBody(search.Fold("GRÜSSE aus münchen"))},
		{"html text", d.MatchBody(search.Fold("bold text"))},
		{"no script", !d.MatchBody("secret")},
		{"no markup", !d.MatchBody("<b>")},
		{"attachment name", d.MatchBody(search.Fold("rechnung märz.pdf"))},
		{"attachment bytes not indexed", !d.MatchBody("jvberi")},
		{"attached message header", d.MatchBody("inner subject")},
		{"attached message body", d.MatchBody("inner body")},
		{"text spans header", d.MatchText("to: a@example.test")},
		{"body is not header", !d.MatchBody("a@example.test")},
		{"empty header value matches field", d.MatchHeader("To", "")},
		{"missing field", !d.MatchHeader("Cc", "")},
	} {
		if !tc.ok {
			t.Errorf("%s: doc %+v", tc.what, d)
		}
	}
}

// TestIndexMatchesScan is the property test: a random corpus, random
// queries, and the indexed path must return exactly the scan's UIDs —
// after the first build, after more deliveries and expunges followed
// incrementally, after a restart that catches up from the state, and after
// a reindex.
func TestIndexMatchesScan(t *testing.T) {
	seed := uint64(rand.Int64())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	h := newHarness(t, t.TempDir())
	h.setup()
	n := 0
	deliver := func(k int) {
		var msgs [][]byte
		for range k {
			n++
			attach := 0
			if r.IntN(3) == 0 {
				attach = 512 + r.IntN(2048)
			}
			msgs = append(msgs, randomMessage(r, n, attach))
		}
		h.deliver(msgs...)
	}
	compare := func(phase string, queries int) {
		t.Helper()
		h.waitIndexed()
		hits, textQueries := 0, 0
		for range queries {
			qs := []query{randomQuery(r)}
			if r.IntN(4) == 0 {
				qs = append(qs, randomQuery(r))
			}
			want, got := h.scan(qs), h.indexed(qs)
			if !slices.Equal(want, got) {
				t.Fatalf("%s: %v: scan %v, index %v (seed %d)", phase, qs, want, got, seed)
			}
			if allText(qs) {
				if got := h.matched(qs); !slices.Equal(want, got) {
					t.Fatalf("%s: %v: scan %v, Matching %v (seed %d)", phase, qs, want, got, seed)
				}
				textQueries++
			}
			if len(want) > 0 {
				hits++
			}
		}
		t.Logf("%s: %d queries (%d TEXT-only, also through Matching), %d with hits, %d messages", phase, queries, textQueries, hits, len(h.messages()))
	}
	for range 5 {
		deliver(40)
	}
	compare("built", 300)

	// Incremental: more mail, expunges, and searches racing the indexer.
	for range 5 {
		deliver(10)
		msgs := h.messages()
		var gone []uint32
		for range 5 {
			gone = append(gone, msgs[r.IntN(len(msgs))].Uid)
		}
		h.expunge(gone...)
		qs := []query{randomQuery(r)}
		if want, got := h.scan(qs), h.indexed(qs); !slices.Equal(want, got) {
			t.Fatalf("racing the indexer: %v: scan %v, index %v (seed %d)", qs, want, got, seed)
		}
		tq := []query{{kind: "text", value: randomQuery(r).value}}
		if want, got := h.scan(tq), h.matched(tq); !slices.Equal(want, got) {
			t.Fatalf("racing the indexer: %v: scan %v, Matching %v (seed %d)", tq, want, got, seed)
		}
	}
	compare("incremental", 200)

	// Restart with the index closed while mail arrived: it catches up.
	h.closeIndex()
	deliver(30)
	h.expunge(h.messages()[0].Uid)
	h.openIndex()
	compare("caught up after restart", 200)

	if err := h.index.Reindex(); err != nil {
		t.Fatal(err)
	}
	qs := []query{randomQuery(r)}
	if want, got := h.scan(qs), h.indexed(qs); !slices.Equal(want, got) {
		t.Fatalf("during reindex: %v: scan %v, index %v", qs, want, got)
	}
	tq := []query{{kind: "text", value: randomQuery(r).value}}
	if want, got := h.scan(tq), h.matched(tq); !slices.Equal(want, got) {
		t.Fatalf("during reindex: %v: scan %v, Matching %v", tq, want, got)
	}
	compare("reindexed", 100)
}

func allText(qs []query) bool {
	for _, q := range qs {
		if q.kind != "text" {
			return false
		}
	}
	return true
}

// TestExtractReaderMatchesExtract: the indexer's streaming extraction of a
// large message (only the ranges Extract reads are kept) gives the same
// Doc as Extract on the whole message: random corpus messages, a message
// with a 3 MB attachment, and one whose text part is over MaxRawText.
func TestExtractReaderMatchesExtract(t *testing.T) {
	seed := uint64(rand.Int64())
	r := rand.New(rand.NewPCG(seed, 9))
	var msgs [][]byte
	for n := range 200 {
		attach := 0
		if r.IntN(2) == 0 {
			attach = 256 + r.IntN(4096)
		}
		msgs = append(msgs, randomMessage(r, n, attach))
	}
	msgs = append(msgs, randomMessage(r, 1000, 3<<20))
	big := "Subject: big text\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
		strings.Repeat("caf=C3=A9 na=C3=AFve r=C3=A9sum=C3=A9 =\r\n", search.MaxRawText/40+1000) + "\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@y.test\r\n\r\ninner body\r\n--b--\r\n"
	msgs = append(msgs, []byte(big))
	for i, m := range msgs {
		parsed, err := mimeparse.Parse(m, mimeparse.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		want := search.Extract(m, parsed)
		got, err := search.ExtractReader(bytes.NewReader(m), int64(len(m)), parsed)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(want.Fields, got.Fields) || want.Body != got.Body {
			t.Fatalf("message %d (seed %d): ExtractReader differs:\nfields %q\n  vs   %q\nbody %d bytes vs %d", i, seed, want.Fields, got.Fields, len(want.Body), len(got.Body))
		}
	}
	if d, _ := search.ExtractReader(bytes.NewReader([]byte(big)), int64(len(big)), nil); d == nil {
		t.Fatal("no Doc without a parsed record")
	}
}

// TestDataAsTextIsVerifiedNotTokenised: a text/plain body that is really
// data (2 MiB of base64, every 76-character line a new token) would write
// about 180 MB of vocabulary keys per message. It must be indexed with its
// Doc and no token (listed for verification, MaxDocIndexBytes), answer
// searches exactly, and leave when expunged.
func TestDataAsTextIsVerifiedNotTokenised(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := newHarness(t, t.TempDir())
	h.setup()
	dataMessage := func(i int) ([]byte, string) {
		raw := make([]byte, 1536<<10) // 2 MiB once in base64
		for j := range raw {
			raw[j] = byte(r.Uint32())
		}
		body := b64raw(raw)
		msg := fmt.Sprintf("From: a@example.test\r\nTo: a@example.test\r\nSubject: dump %d\r\nMessage-ID: <dump%d@example.test>\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n%s", i, i, body)
		// A piece from the middle of one line: the query.
		line := strings.Split(body, "\r\n")[1000+i]
		return []byte(msg), line[20:44]
	}
	var pieces []string
	var msgs [][]byte
	for i := range 3 {
		m, p := dataMessage(i)
		msgs, pieces = append(msgs, m), append(pieces, p)
	}
	msgs = append(msgs, []byte("From: b@example.test\r\nSubject: prose\r\nMessage-ID: <prose@example.test>\r\n\r\nA short letter about the harbour.\r\n"))
	h.deliver(msgs...)
	h.waitIndexed()

	v := h.index.View()
	hw, _, ok, err := v.Indexed(h.inbox)
	if err != nil || !ok || hw != 4 {
		t.Fatalf("Indexed: hw %d ok %v err %v, want every message", hw, ok, err)
	}
	for i, p := range pieces {
		q := search.Fold(p)
		sure, maybe, err := v.TokenMatches(h.inbox, hw, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(sure) != 0 || !slices.Equal(maybe, []uint32{1, 2, 3}) {
			t.Fatalf("piece of message %d: sure %v maybe %v, want no token posting and the three data messages to verify", i+1, sure, maybe)
		}
		qs := []query{{kind: "text", value: p}}
		if want, got := h.scan(qs), h.matched(qs); !slices.Equal(want, got) || !slices.Equal(got, []uint32{uint32(i + 1)}) {
			t.Fatalf("piece of message %d: scan %v, Matching %v", i+1, want, got)
		}
	}
	// The prose message is tokenised as before.
	if sure, _, err := v.TokenMatches(h.inbox, hw, search.Fold("harbour")); err != nil || !slices.Equal(sure, []uint32{4}) {
		t.Fatalf("harbour: sure %v err %v, want [4]", sure, err)
	}
	v.Close()
	if err := h.index.Flush(); err != nil {
		t.Fatal(err)
	}
	// Three Docs of ~2 MiB of base64 (zstd keeps ~75%) and a few keys; the
	// tokens would have been hundreds of MB.
	if st := h.index.Stats(); st.DiskBytes > 24<<20 {
		t.Fatalf("index holds %d bytes for 6 MiB of data-as-text", st.DiskBytes)
	}

	h.expunge(2)
	h.waitIndexed()
	v = h.index.View()
	defer v.Close()
	if _, maybe, err := v.TokenMatches(h.inbox, 4, search.Fold(pieces[0])); err != nil || !slices.Equal(maybe, []uint32{1, 3}) {
		t.Fatalf("after expunging 2: maybe %v err %v, want [1 3]", maybe, err)
	}
	qs := []query{{kind: "text", value: pieces[1]}}
	if want, got := h.scan(qs), h.matched(qs); !slices.Equal(want, got) || len(got) != 0 {
		t.Fatalf("expunged message's piece: scan %v, Matching %v, want none", want, got)
	}
}
