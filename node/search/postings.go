package search

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Postings as merge operands (format 4).
//
// A token's postings in a mailbox are one key, 't' <mailbox><token> 0x00,
// whose value is a list of UIDs. An indexing step does not read it: it
// writes one Pebble merge operand per token it touched, holding the UIDs
// the step added and those it removed, and Pebble combines operands when
// the key is read or compacted (postingsMerger). A step of n messages
// sharing a word thus costs one key for that word, not n: in format 3
// every posting was a key of its own (~200 per message), and inserting,
// flushing and compacting them was most of the indexer's cost.
//
// An operand is two ascending UID lists, added then removed, each a
// uvarint count and uvarint deltas. Combining is set arithmetic, so the
// order operands meet in does not matter: a UID is added at most once in
// a mailbox's life (UIDs are not reused under one UIDVALIDITY; a mailbox
// dropped or a wiped index deletes its keys with a range tombstone that
// merges do not see past), so an addition and a removal of one UID cancel
// wherever they meet, and a removal is kept until the merge includes the
// oldest operand, after which nothing older can hold the UID.

// postingsMergerName is recorded in the index database's OPTIONS file;
// Pebble refuses to open a database written with another merger, so an
// index of an older format is removed before Open (openDB).
const postingsMergerName = "continuum.search.postings.v1"

var postingsMerger = &pebble.Merger{
	Name: postingsMergerName,
	Merge: func(_, value []byte) (pebble.ValueMerger, error) {
		m := &postingsMerge{}
		return m, m.add(value)
	},
}

// postingsMerge combines operands (a pebble.ValueMerger).
type postingsMerge struct {
	adds, removes []uint32
	sorted        bool // adds and removes are each ascending without duplicates
	operands      int
}

func (m *postingsMerge) add(value []byte) error {
	adds, removes, err := decodePostings(value, m.adds, m.removes)
	if err != nil {
		return err
	}
	m.adds, m.removes = adds, removes
	m.operands++
	return nil
}

func (m *postingsMerge) MergeNewer(value []byte) error { return m.add(value) }
func (m *postingsMerge) MergeOlder(value []byte) error { return m.add(value) }

// Finish returns the combined lists. A list left empty stays as a key of
// two bytes, as a vocabulary entry stays after its last message: Pebble
// v2.1.7's compaction iterator panics ("skip=true, but iterator is at
// iterPosNext") when a DeletableValueMerger drops a merge that met a SET,
// so this merger never drops a key.
func (m *postingsMerge) Finish(includesBase bool) ([]byte, io.Closer, error) {
	adds, removes := cancelPostings(m.adds, m.removes, m.operands > 1)
	if includesBase {
		removes = nil
	}
	return encodePostings(nil, adds, removes), nil, nil
}

// cancelPostings sorts (when unsorted may hold several operands' lists)
// and removes the UIDs both added and removed from both lists.
func cancelPostings(adds, removes []uint32, unsorted bool) ([]uint32, []uint32) {
	if unsorted {
		if !slices.IsSorted(adds) {
			slices.Sort(adds)
		}
		adds = slices.Compact(adds)
		if !slices.IsSorted(removes) {
			slices.Sort(removes)
		}
		removes = slices.Compact(removes)
	}
	if len(removes) == 0 || len(adds) == 0 {
		return adds, removes
	}
	var a, r []uint32
	i, j := 0, 0
	for i < len(adds) || j < len(removes) {
		switch {
		case j == len(removes) || (i < len(adds) && adds[i] < removes[j]):
			a = append(a, adds[i])
			i++
		case i == len(adds) || removes[j] < adds[i]:
			r = append(r, removes[j])
			j++
		default: // equal: added and removed
			i++
			j++
		}
	}
	return a, r
}

func appendUIDList(dst []byte, uids []uint32) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(uids)))
	prev := uint32(0)
	for _, u := range uids {
		dst = binary.AppendUvarint(dst, uint64(u-prev))
		prev = u
	}
	return dst
}

// encodePostings appends an operand (or a combined value): adds and
// removes, each ascending.
func encodePostings(dst []byte, adds, removes []uint32) []byte {
	return appendUIDList(appendUIDList(dst, adds), removes)
}

var errBadPostings = errors.New("search: malformed postings value")

func readUIDList(v []byte, out []uint32) ([]uint32, []byte, error) {
	n, k := binary.Uvarint(v)
	if k <= 0 || n > uint64(len(v)) {
		return out, nil, errBadPostings
	}
	v = v[k:]
	prev := uint64(0)
	for range n {
		d, k := binary.Uvarint(v)
		if k <= 0 || prev+d > 1<<32-1 {
			return out, nil, errBadPostings
		}
		v = v[k:]
		prev += d
		out = append(out, uint32(prev))
	}
	return out, v, nil
}

// decodePostings appends a value's added and removed UIDs to adds and
// removes.
func decodePostings(v []byte, adds, removes []uint32) ([]uint32, []uint32, error) {
	adds, rest, err := readUIDList(v, adds)
	if err != nil {
		return adds, removes, err
	}
	removes, rest, err = readUIDList(rest, removes)
	if err == nil && len(rest) != 0 {
		err = errBadPostings
	}
	return adds, removes, err
}

// stepPostings are the postings changes of one indexing step (one
// mailbox), written as one operand per token at the step's end.
type stepPostings map[string]*postingsChange

type postingsChange struct{ adds, removes []uint32 }

func (p stepPostings) change(tok string) *postingsChange {
	c := p[tok]
	if c == nil {
		c = &postingsChange{}
		p[tok] = c
	}
	return c
}

// write adds one merge operand per token to b.
func (p stepPostings) write(b *pebble.Batch, mbox uint64) error {
	var buf []byte
	for tok, c := range p {
		adds, removes := cancelPostings(c.adds, c.removes, true)
		if len(adds) == 0 && len(removes) == 0 {
			continue
		}
		buf = encodePostings(buf[:0], adds, removes)
		if err := b.Merge(tokenKey(mbox, tok), buf, nil); err != nil {
			return err
		}
	}
	return nil
}

// openDB opens the index database with the postings merger. A database
// written with another merger (format 3 and older used Pebble's default)
// cannot be opened with this one: being derived data, it is removed and
// rebuilt.
func openDB(dir string, opts *pebble.Options) (*pebble.DB, bool, error) {
	opts.Merger = postingsMerger
	name, err := mergerOf(dir)
	if err != nil {
		return nil, false, err
	}
	removed := false
	if name != "" && name != postingsMergerName {
		if err := os.RemoveAll(dir); err != nil {
			return nil, false, err
		}
		removed = true
	}
	db, err := pebble.Open(dir, opts)
	return db, removed, err
}

// mergerOf returns the merger name in the newest OPTIONS file of a Pebble
// directory ("" when there is none).
func mergerOf(dir string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "OPTIONS-*"))
	if err != nil || len(files) == 0 {
		return "", err
	}
	slices.Sort(files) // OPTIONS-%06d: the newest sorts last
	f, err := os.Open(files[len(files)-1])
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && strings.TrimSpace(k) == "merger" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", sc.Err()
}
