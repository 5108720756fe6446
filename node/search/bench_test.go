package search_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/search"
)

// benchVocab is a synthetic language: 20,000 words of 2-4 syllables,
// drawn with a Zipf distribution, so trigram lists have realistic skew.
func benchVocab(r *rand.Rand) []string {
	syl := strings.Fields("ka ri to mo na lu sen dar vi el or an te pa shi gu ber lo ne fa qui zo ma ti ro")
	out := make([]string, 20_000)
	for i := range out {
		var sb strings.Builder
		for range 2 + r.IntN(3) {
			sb.WriteString(syl[r.IntN(len(syl))])
		}
		out[i] = sb.String()
	}
	return out
}

// benchFixedHits is how many messages carry "quixotical", whatever the
// mailbox size: the fixed-hit-count comparison between sizes.
const benchFixedHits = 10

// benchMessage: unique Message-ID, ~150 words of text, an attachment of
// attach random bytes in base64; one in rare carries the word
// "zanzibarite"; benchFixedHits of the total carry "quixotical".
func benchMessage(r *rand.Rand, z *rand.Zipf, vocab []string, n, total, attach, rare int) []byte {
	var sb strings.Builder
	w := func(k int) string {
		ws := make([]string, k)
		for i := range ws {
			ws[i] = vocab[z.Uint64()]
		}
		return strings.Join(ws, " ")
	}
	fmt.Fprintf(&sb, "Message-ID: <%d.%x@bench.test>\r\nFrom: %s <s%d@remote.test>\r\nTo: a@example.test\r\nSubject: %s\r\n",
		n, r.Uint64(), w(2), r.IntN(1000), w(5))
	sb.WriteString("Date: Mon, 30 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	body := w(150)
	if n%rare == 0 {
		body += " zanzibarite"
	}
	if n%(total/benchFixedHits) == total/benchFixedHits/2 {
		body += " quixotical"
	}
	sb.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + wrap(body))
	raw := make([]byte, attach)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	fmt.Fprintf(&sb, "--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"%s.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s--b1--\r\n",
		w(1), b64raw(raw))
	return []byte(sb.String())
}

// BenchmarkSearchText: SEARCH TEXT "zanzibarite" (in 0.1% of the
// messages) and TEXT of a common word, on mailboxes of 10,000 and 100,000
// messages (CONTINUUM_SEARCH_BENCH_SIZES), built through the state machine
// (not SMTP) and indexed as a node does, with the work IMAP SEARCH does
// after its view of the mailbox is known: node/mail.TextSearch narrowing,
// the message record read and each candidate verified. Also reports the
// indexing cost per message and the index size against the mail.
func BenchmarkSearchText(b *testing.B) {
	sizes := []int{10_000, 100_000}
	if v := os.Getenv("CONTINUUM_SEARCH_BENCH_SIZES"); v != "" {
		sizes = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			sizes = append(sizes, n)
		}
	}
	for _, n := range sizes {
		h := buildMailbox(b, n)
		svc := mail.New(h.db, nil, nil, mail.Options{Logger: quiet})
		svc.SetIndex(h.index)
		msgs := h.messages()
		uids := make([]uint32, len(msgs))
		for i, m := range msgs {
			uids[i] = m.Uid
		}
		snap := h.db.Snapshot()
		box, err := snap.Mailbox(h.user, h.inbox)
		snap.Close()
		if err != nil {
			b.Fatal(err)
		}
		search1 := func(b *testing.B, word string, scanOnly bool) int {
			q := search.Fold(word)
			ts, err := svc.TextSearch(h.inbox, box.UidValidity, scanOnly)
			if err != nil {
				b.Fatal(err)
			}
			defer ts.Close()
			pos, err := ts.Narrow(uids, []string{q})
			if err != nil {
				b.Fatal(err)
			}
			snap := h.db.Snapshot()
			defer snap.Close()
			hits := 0
			for _, p := range pos {
				m, err := snap.Message(h.inbox, uids[p])
				if err != nil {
					b.Fatal(err)
				}
				d, err := ts.Doc(snap, m)
				if err != nil {
					b.Fatal(err)
				}
				if d.MatchText(q) {
					hits++
				}
			}
			return hits
		}
		// matching is the path of TextSearch.Matching (archive search; IMAP
		// SEARCH for top-level TEXT criteria once its call site uses it):
		// sure UIDs are mapped to the session's positions with no read,
		// maybe UIDs and those above the watermark are read and verified.
		matching := func(b *testing.B, word string) int {
			q := search.Fold(word)
			ts, err := svc.TextSearch(h.inbox, box.UidValidity, false)
			if err != nil {
				b.Fatal(err)
			}
			defer ts.Close()
			sure, maybe, hw, indexed, err := ts.Matching([]string{q})
			if err != nil {
				b.Fatal(err)
			}
			if !indexed {
				b.Fatal("mailbox not indexed")
			}
			snap := h.db.Snapshot()
			defer snap.Close()
			hits := 0
			verify := func(uid uint32) {
				m, err := snap.Message(h.inbox, uid)
				if err != nil {
					b.Fatal(err)
				}
				d, err := ts.Doc(snap, m)
				if err != nil {
					b.Fatal(err)
				}
				if d.MatchText(q) {
					hits++
				}
			}
			for _, u := range sure {
				if _, ok := slices.BinarySearch(uids, u); ok {
					hits++
				}
			}
			for _, u := range maybe {
				if _, ok := slices.BinarySearch(uids, u); ok {
					verify(u)
				}
			}
			for j := sort.Search(len(uids), func(k int) bool { return uids[k] > hw }); j < len(uids); j++ {
				verify(uids[j])
			}
			return hits
		}
		for _, tc := range []struct {
			name, word string
			scan, tok  bool
		}{
			{"rare", "zanzibarite", false, false},
			{"rare/matching", "zanzibarite", false, true},
			{"rare-prefix", "zanzibar", false, false},
			{"rare-prefix/matching", "zanzibar", false, true},
			{"fixed10", "quixotical", false, false},
			{"fixed10/matching", "quixotical", false, true},
			{"fixed10-infix/matching", "uixotic", false, true},
			{"common", vocabAt(0), false, false},
			{"common/matching", vocabAt(0), false, true},
			// Phrases: narrowed by the pieces' token postings (format 3;
			// by trigram postings before), every candidate verified.
			{"phrase-common", vocabAt(0) + " " + vocabAt(1), false, false},
			{"phrase-rare", vocabAt(0) + " zanzibarite", false, false},
			{"rare-scan", "zanzibarite", true, false},
		} {
			if tc.scan && n > 10_000 {
				continue
			}
			b.Run(fmt.Sprintf("messages=%d/%s", n, tc.name), func(b *testing.B) {
				hits := 0
				for b.Loop() {
					if tc.tok {
						hits = matching(b, tc.word)
					} else {
						hits = search1(b, tc.word, tc.scan)
					}
				}
				b.ReportMetric(float64(hits), "hits")
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/search")
			})
		}
	}
}

var benchWords []string

func vocabAt(i int) string { return benchWords[i] }

func buildMailbox(b *testing.B, n int) *harness {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	if benchWords == nil {
		benchWords = benchVocab(rand.New(rand.NewPCG(3, 4)))
	}
	z := rand.NewZipf(r, 1.1, 2, uint64(len(benchWords)-1))
	dir := b.TempDir()
	h := newHarness(b, dir)
	h.setup()
	start := time.Now()
	var mailBytes int64
	for i := 0; i < n; i += 256 {
		var batch [][]byte
		for j := i; j < min(n, i+256); j++ {
			m := benchMessage(r, z, benchWords, j+1, n, 4096, 1000)
			mailBytes += int64(len(m))
			batch = append(batch, m)
		}
		h.deliver(batch...)
	}
	applied := time.Since(start)
	h.waitIndexed()
	total := time.Since(start)
	if err := h.index.Flush(); err != nil {
		b.Fatal(err)
	}
	st := h.index.Stats()
	b.Logf("%d messages, %.1f MB of mail: applied in %v, indexed by %v (index lag %v); indexing %.0f µs/message (%d indexed); index %.1f MB = %.2f × the mail, state %.1f MB",
		n, float64(mailBytes)/1e6, applied.Round(time.Millisecond), total.Round(time.Millisecond), (total - applied).Round(time.Millisecond),
		st.IndexSeconds*1e6/float64(max(st.Indexed, 1)), st.Indexed,
		float64(st.DiskBytes)/1e6, float64(st.DiskBytes)/float64(mailBytes), float64(dirBytes(filepath.Join(dir, "state")))/1e6)
	if err := h.index.Compact(); err != nil {
		b.Fatal(err)
	}
	sst := sstBytes(filepath.Join(dir, "index"))
	b.Logf("index compacted: %.1f MB of sstables = %.2f × the mail (%.0f bytes a message)", float64(sst)/1e6, float64(sst)/float64(mailBytes), float64(sst)/float64(n))
	return h
}

func sstBytes(dir string) int64 {
	var total int64
	m, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	for _, f := range m {
		if fi, err := os.Stat(f); err == nil {
			total += fi.Size()
		}
	}
	return total
}

func dirBytes(dir string) int64 {
	var total int64
	filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			total += info.Size()
		}
		return nil
	})
	return total
}
