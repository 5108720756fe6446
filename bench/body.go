package bench

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Body kinds.
const (
	BodyRandom = "random" // text part + random base64 attachment (default)
	BodyText   = "text"   // repetitive text, compresses ~100×
	BodyCorpus = "corpus" // the files of Config.CorpusDir
)

// words make the text part look like prose.
var words = strings.Fields(`the of and to a in is it you that he was for on are with as his they be at one
have this from or had by hot word but what some we can out other were all there when up use your how said an
each she which do their time if will way about many then them write would like so these her long make thing see
him two has look more day could go come did number sound no most people my over know water than call first who
may down side been now find any new work part take get place made live where after back little only round man
year came show every good me give our under name very through just form sentence great think say help low line`)

// bodies makes messages. It is safe for concurrent use.
type bodies struct {
	kind   string
	size   int
	from   string
	corpus [][]byte // normalised to CRLF, Message-ID lines removed
	seq    atomic.Uint64
	run    string // distinguishes runs in Message-IDs
}

func newBodies(kind string, size int, corpusDir, from string) (*bodies, error) {
	b := &bodies{kind: kind, size: size, from: from, run: fmt.Sprintf("%x", time.Now().UnixNano())}
	switch kind {
	case BodyRandom, BodyText:
		if size < 512 {
			return nil, fmt.Errorf("size %d: want at least 512 bytes", size)
		}
	case BodyCorpus:
		if corpusDir == "" {
			return nil, errors.New("body corpus needs a directory (--body corpus DIR)")
		}
		var err error
		if b.corpus, err = loadCorpus(corpusDir); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("body %q: want random, text or corpus", kind)
	}
	return b, nil
}

// loadCorpus reads every regular file under dir (sorted, so runs repeat).
func loadCorpus(dir string) ([][]byte, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("corpus %s: %w", dir, err)
	}
	sort.Strings(paths)
	var out [][]byte
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		if m := stripMessageID(crlf(raw)); len(m) > 0 {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("corpus %s: no messages (want one RFC 5322 file per message)", dir)
	}
	return out, nil
}

// crlf normalises line ends to CRLF.
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// stripMessageID removes Message-ID fields (and their continuation lines)
// from the header block, so that each replay gets its own.
func stripMessageID(m []byte) []byte {
	end := bytes.Index(m, []byte("\r\n\r\n"))
	if end < 0 {
		return m
	}
	var out []byte
	lines := bytes.SplitAfter(m[:end+2], []byte("\r\n"))
	skip := false
	for _, l := range lines {
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			if !skip {
				out = append(out, l...)
			}
			continue
		}
		skip = len(l) >= 11 && strings.EqualFold(string(l[:11]), "message-id:")
		if !skip {
			out = append(out, l...)
		}
	}
	return append(out, m[end+2:]...)
}

// next returns a new message for rcpt, with its own Message-ID.
func (b *bodies) next(rng *rand.Rand, rcpt string) []byte {
	n := b.seq.Add(1)
	id := fmt.Sprintf("<%s.%d.%x@bench.continuum>", b.run, n, rng.Uint64())
	if b.kind == BodyCorpus {
		m := b.corpus[int(n-1)%len(b.corpus)]
		out := make([]byte, 0, len(m)+64)
		out = append(out, "Message-ID: "+id+"\r\n"...)
		return append(out, m...)
	}
	var buf bytes.Buffer
	buf.Grow(b.size + 256)
	date := time.Now().Format(time.RFC1123Z)
	fmt.Fprintf(&buf, "From: Bench <%s>\r\nTo: <%s>\r\nSubject: bench message %d\r\nDate: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n", b.from, rcpt, n, date, id)
	if b.kind == BodyText {
		buf.WriteString("Content-Type: text/plain; charset=us-ascii\r\n\r\n")
		line := "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
		for buf.Len()+len(line) <= b.size {
			buf.WriteString(line)
		}
		return buf.Bytes()
	}
	const boundary = "=_bench_boundary"
	fmt.Fprintf(&buf, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary, boundary)
	// About a fifth of the message is prose, the rest the attachment.
	textEnd := buf.Len() + b.size/5
	col := 0
	for buf.Len() < textEnd {
		w := words[rng.IntN(len(words))]
		if col+len(w) > 72 {
			buf.WriteString("\r\n")
			col = 0
		} else if col > 0 {
			buf.WriteByte(' ')
			col++
		}
		buf.WriteString(w)
		col += len(w)
	}
	fmt.Fprintf(&buf, "\r\n--%s\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"data%d.bin\"\r\n\r\n", boundary, n)
	tail := fmt.Sprintf("--%s--\r\n", boundary)
	raw := make([]byte, 57) // one 76-character base64 line
	enc := make([]byte, 76)
	for buf.Len()+78+len(tail) <= b.size {
		for i := 0; i < len(raw); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < len(raw); j++ {
				raw[i+j] = byte(v >> (8 * j))
			}
		}
		base64.StdEncoding.Encode(enc, raw)
		buf.Write(enc)
		buf.WriteString("\r\n")
	}
	buf.WriteString(tail)
	return buf.Bytes()
}
