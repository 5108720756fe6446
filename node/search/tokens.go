package search

import (
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
)

// Token postings: exact answers for queries without white space.
//
// A token is a maximal run of a Doc.Text without white space (or NUL). A
// query q holding neither occurs in a text exactly when it occurs inside
// one of the text's tokens: an occurrence cannot straddle a separator it
// does not contain. So the messages whose TEXT holds q are exactly the
// union of the postings of the mailbox's vocabulary tokens that contain
// q, with no message to verify: substring semantics kept, and the cost of
// a common word is reading its posting lists, not verifying every
// message's text. The vocabulary is found by its own trigram index (or, for
// a query under three runes, a scan of the mailbox's vocabulary).
//
// Tokens longer than MaxToken bytes are not indexed as tokens; a message
// holding one is listed under 'l' and is always a candidate to verify. So
// is a message whose tokens would cost more than MaxDocIndexBytes of index
// keys (a text part that is really data: base64 or a hex dump sent as
// text/plain, where every line is a new token and each token brings one
// vocabulary key per trigram): it keeps its Doc but adds no token at all.
// Its searches are still exact (verified on the Doc); the indexer's work
// and batch for one message stay bounded.
// Vocabulary entries ('v', 'g') are never removed when their last message
// goes (they are then simply tokens with no posting); a mailbox drop or a
// reindex clears them.

// MaxToken is the longest token (bytes) kept in the vocabulary.
const MaxToken = 128

// MaxDocIndexBytes bounds the token index keys one message may write, as
// if every token were new to the mailbox: its postings, vocabulary entries
// and their trigrams (tokenCost). 2 KB of prose costs about 50 KB, a
// 300 KB text about 5 MB; 2 MiB of base64 as text/plain would cost 180 MB
// and is verified instead.
const MaxDocIndexBytes = 8 << 20

// tokenCost is an upper bound on the index key bytes a token t costs: its
// posting (14+len), vocabulary entry (9+len) and one vocabulary trigram
// key (13+len) per trigram.
func tokenCost(t string) int {
	grams := max(utf8.RuneCountInString(t)-2, 0)
	return 23 + 2*len(t) + grams*(13+len(t))
}

// Key families of the token index.
const (
	famVocab = 'v' // 'v' <mailbox u64><token>                empty
	famGram  = 'g' // 'g' <mailbox u64><trigram u32><token>   empty
	famToken = 't' // 't' <mailbox u64><token> 0x00          UID lists, merged (postings.go)
	famLong  = 'l' // 'l' <mailbox u64><uid u32>              empty
)

func isSep(r rune) bool { return r == 0 || unicode.IsSpace(r) }

// Tokenizable reports whether a Folded query can be answered exactly from
// the token postings: not empty, no white space, no NUL.
func Tokenizable(q string) bool { return q != "" && strings.IndexFunc(q, isSep) < 0 }

// tokens returns the distinct tokens of text of at most MaxToken bytes,
// and whether the message must be listed under 'l' (verified on every
// search): a longer token was present, or the tokens would cost more than
// MaxDocIndexBytes (out is then nil: none is indexed).
func tokens(text string) (out []string, verify bool) {
	seen := map[string]struct{}{}
	cost := 0
	for _, t := range strings.FieldsFunc(text, isSep) {
		if len(t) > MaxToken {
			verify = true
			continue
		}
		if _, ok := seen[t]; !ok {
			seen[t] = struct{}{}
			out = append(out, t)
			if cost += tokenCost(t); cost > MaxDocIndexBytes {
				return nil, true
			}
		}
	}
	return out, verify
}

func mboxKey(fam byte, mbox uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 32), fam), mbox)
}

func vocabKey(mbox uint64, tok string) []byte { return append(mboxKey(famVocab, mbox), tok...) }

func gramKey(mbox uint64, tri uint32, tok string) []byte {
	return append(binary.BigEndian.AppendUint32(mboxKey(famGram, mbox), tri), tok...)
}

func tokenKey(mbox uint64, tok string) []byte {
	return append(append(mboxKey(famToken, mbox), tok...), 0)
}

func longKey(mbox uint64, uid uint32) []byte {
	return binary.BigEndian.AppendUint32(mboxKey(famLong, mbox), uid)
}

// addTokens records a message's token postings in the step's post (written
// at the step's end), and writes the vocabulary entries of tokens the
// mailbox did not have yet (vocab caches, for the batch being built, the
// tokens already added to it; x.known those the database holds).
func (x *Index) addTokens(b *pebble.Batch, mbox uint64, uid uint32, text string, vocab map[string]struct{}) error {
	toks, verify := tokens(text)
	for _, t := range toks {
		c := x.post.change(t)
		c.adds = append(c.adds, uid)
		vk := vocabKey(mbox, t)
		if _, ok := vocab[string(vk)]; ok {
			continue
		}
		if _, ok := x.known[string(vk)]; ok {
			continue
		}
		var err error
		if x.whole == mbox {
			err = pebble.ErrNotFound // the cache holds the whole vocabulary
		} else {
			var closer io.Closer
			if _, closer, err = x.db.Get(vk); err == nil {
				closer.Close()
			}
		}
		if err == nil {
			if x.known == nil {
				x.known = map[string]struct{}{}
			}
			if len(x.known) < maxKnown {
				x.known[string(vk)] = struct{}{}
			}
			continue
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return err
		}
		vocab[string(vk)] = struct{}{}
		if err := b.Set(vk, nil, nil); err != nil {
			return err
		}
		for _, tri := range trigramSet(t) {
			if err := b.Set(gramKey(mbox, tri, t), nil, nil); err != nil {
				return err
			}
		}
	}
	if verify {
		return b.Set(longKey(mbox, uid), nil, nil)
	}
	return nil
}

// removeTokens records the removal of a message's postings in the step's
// post.
func (x *Index) removeTokens(b *pebble.Batch, mbox uint64, uid uint32, text string) error {
	toks, verify := tokens(text)
	for _, t := range toks {
		c := x.post.change(t)
		c.removes = append(c.removes, uid)
	}
	if verify {
		return b.Delete(longKey(mbox, uid), nil)
	}
	return nil
}

// TokenMatches answers a Tokenizable query q (Folded) for the mailbox's
// messages with a UID ≤ hw: sure holds exactly the UIDs whose Doc.Text
// contains q among the messages without an over-long token; maybe the
// messages with one (to verify). Both ascending and disjoint.
func (v *View) TokenMatches(mbox uint64, hw uint32, q string) (sure, maybe []uint32, err error) {
	if !Tokenizable(q) {
		return nil, nil, errors.New("search: query not tokenizable")
	}
	var toks []string
	if len(q) <= MaxToken {
		if toks, err = v.vocabulary(mbox, q); err != nil {
			return nil, nil, err
		}
	}
	for _, t := range toks {
		if sure, err = v.postings(sure, mbox, t, hw); err != nil {
			return nil, nil, err
		}
	}
	if len(toks) > 1 {
		slices.Sort(sure)
		sure = slices.Compact(sure)
	}
	if maybe, err = v.appendUIDs(nil, mboxKey(famLong, mbox), mboxKey(famLong, mbox+1), hw); err != nil {
		return nil, nil, err
	}
	// A message with a long token may also hold q in a short one: it is
	// then sure, not maybe.
	if len(maybe) > 0 && len(sure) > 0 {
		maybe = slices.DeleteFunc(maybe, func(u uint32) bool { _, ok := slices.BinarySearch(sure, u); return ok })
	}
	return sure, maybe, nil
}

// postings appends the UIDs ≤ hw of token tok's postings, ascending.
func (v *View) postings(out []uint32, mbox uint64, tok string, hw uint32) ([]uint32, error) {
	val, closer, err := v.snap.Get(tokenKey(mbox, tok))
	if errors.Is(err, pebble.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return out, err
	}
	defer closer.Close()
	start := len(out)
	out, _, err = readUIDList(val, out)
	if err != nil {
		return out[:start], err
	}
	for i := start; i < len(out); i++ {
		if out[i] > hw {
			return out[:i], nil
		}
	}
	return out, nil
}

// appendUIDs appends the UIDs ≤ hw of keys in [lo, hi) (each ending in a
// UID).
func (v *View) appendUIDs(out []uint32, lo, hi []byte, hw uint32) ([]uint32, error) {
	it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return out, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		uid := binary.BigEndian.Uint32(k[len(k)-4:])
		if uid > hw {
			break
		}
		out = append(out, uid)
	}
	return out, it.Error()
}

// vocabulary returns the mailbox's tokens that contain q.
func (v *View) vocabulary(mbox uint64, q string) ([]string, error) {
	tris := trigramSet(q)
	var out []string
	if len(tris) == 0 {
		// Under three runes: every token is a candidate.
		lo := mboxKey(famVocab, mbox)
		it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: mboxKey(famVocab, mbox+1)})
		if err != nil {
			return nil, err
		}
		defer it.Close()
		for it.First(); it.Valid(); it.Next() {
			if t := string(it.Key()[len(lo):]); strings.Contains(t, q) {
				out = append(out, t)
			}
		}
		return out, it.Error()
	}
	// Leapfrog join of the query's trigram lists over the vocabulary,
	// keyed by the token itself.
	its := make([]*pebble.Iterator, len(tris))
	prefixes := make([][]byte, len(tris))
	defer func() {
		for _, it := range its {
			if it != nil {
				it.Close()
			}
		}
	}()
	for i, t := range tris {
		p := binary.BigEndian.AppendUint32(mboxKey(famGram, mbox), t)
		var hi []byte
		if t == ^uint32(0) {
			hi = mboxKey(famGram, mbox+1)
		} else {
			hi = binary.BigEndian.AppendUint32(mboxKey(famGram, mbox), t+1)
		}
		it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: hi})
		if err != nil {
			return nil, err
		}
		its[i], prefixes[i] = it, p
	}
	target := ""
	agree := 0
	for i := 0; ; i = (i + 1) % len(its) {
		if !its[i].SeekGE(append(append([]byte(nil), prefixes[i]...), target...)) {
			return out, its[i].Error()
		}
		tok := string(its[i].Key()[len(prefixes[i]):])
		if tok != target {
			target, agree = tok, 0
		}
		agree++
		if agree == len(its) {
			if strings.Contains(tok, q) { // trigram hashes can collide; order is not checked
				out = append(out, tok)
			}
			target, agree = tok+"\x00", 0
		}
	}
}
