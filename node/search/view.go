package search

import (
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"

	"github.com/continuum-mail/continuum/storage"
)

// View is a consistent read view of the index, for one search. Close it.
type View struct {
	snap *pebble.Snapshot
}

// View returns a consistent view of the index.
func (x *Index) View() *View { return &View{snap: x.db.NewSnapshot()} }

// Close releases the view.
func (v *View) Close() error { return v.snap.Close() }

// Indexed returns the mailbox's watermark: every message of the mailbox
// with a UID ≤ hw, as of any state at or after this view, that existed
// when the view was taken is in the index. Messages above it must be
// scanned. uidValidity lets the caller check the index is of the same
// mailbox incarnation. ok is false when the mailbox is not indexed at all.
func (v *View) Indexed(mbox uint64) (hw, uidValidity uint32, ok bool, err error) {
	val, closer, err := v.snap.Get(cursorKey(mbox))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, err
	}
	defer closer.Close()
	c := decodeCursor(val)
	return c.hw, c.uidValidity, true, nil
}

// Usable reports whether a Folded query can narrow a search (Candidates
// takes it). Kept at three runes or more: shorter queries cost a scan of
// the mailbox's vocabulary for little narrowing.
func Usable(q string) bool { return utf8.RuneCountInString(q) >= 3 }

// Candidates returns, in ascending order, the UIDs ≤ hw of the mailbox
// that may hold every query (each already Folded and Usable): a superset
// of the messages that match, to be verified.
//
// It works from the token postings. A query's pieces (the runs between
// its white space) are free of separators, so in a text that holds the
// query each piece lies inside one token: the messages holding the query
// are among those with, for every piece, a token containing it
// (TokenMatches' sure and maybe). Pieces are taken longest first, and
// the intersection stops once narrowEnough candidates or fewer are left.
// Where the query has no piece, every indexed message is a candidate.
func (v *View) Candidates(mbox uint64, hw uint32, queries []string) ([]uint32, error) {
	var pieces []string
	for _, q := range queries {
		pieces = append(pieces, strings.FieldsFunc(q, isSep)...)
	}
	// Longest (most selective) first; equal pieces side by side.
	slices.SortFunc(pieces, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	pieces = slices.Compact(pieces)
	if len(pieces) == 0 {
		return v.appendUIDs(nil, mboxKey(famDoc, mbox), mboxKey(famDoc, mbox+1), hw)
	}
	var out []uint32
	for i, p := range pieces {
		sure, maybe, err := v.TokenMatches(mbox, hw, p)
		if err != nil {
			return nil, err
		}
		set := mergeUIDs(sure, maybe)
		if i == 0 {
			out = set
		} else {
			out = intersectUIDs(out, set)
		}
		if len(out) <= narrowEnough {
			// Verifying this few costs less than reading the next
			// pieces' postings (a common word's are most of the mailbox).
			break
		}
	}
	return out, nil
}

// narrowEnough is the candidate count at which Candidates stops
// intersecting further pieces' postings.
const narrowEnough = 64

// mergeUIDs is the union of two ascending, disjoint UID lists.
func mergeUIDs(a, b []uint32) []uint32 {
	if len(b) == 0 {
		return a
	}
	out := append(append(make([]uint32, 0, len(a)+len(b)), a...), b...)
	slices.Sort(out)
	return out
}

// intersectUIDs is the intersection of two ascending UID lists.
func intersectUIDs(a, b []uint32) []uint32 {
	out := a[:0]
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// Doc returns the indexed text of a message, or ErrNotFound.
func (v *View) Doc(mbox uint64, uid uint32) (*Doc, error) {
	val, closer, err := v.snap.Get(docKey(mbox, uid))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	defer closer.Close()
	return decodeDocFrame(val)
}

func (d *Doc) encode() []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(d.Fields)))
	for _, f := range d.Fields {
		b = binary.AppendUvarint(b, uint64(len(f.Name)))
		b = append(b, f.Name...)
		b = binary.AppendUvarint(b, uint64(len(f.Value)))
		b = append(b, f.Value...)
	}
	b = binary.AppendUvarint(b, uint64(len(d.Body)))
	return append(b, d.Body...)
}

var errBadDoc = errors.New("search: malformed document record")

func decodeDocFrame(frame []byte) (*Doc, error) {
	b, err := storage.Decompress(frame)
	if err != nil {
		return nil, err
	}
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errBadDoc
	}
	b = b[k:]
	d := &Doc{Fields: make([]Field, 0, n)}
	for range n {
		name, ok1 := str()
		val, ok2 := str()
		if !ok1 || !ok2 {
			return nil, errBadDoc
		}
		d.Fields = append(d.Fields, Field{Name: name, Value: val})
	}
	body, ok := str()
	if !ok {
		return nil, errBadDoc
	}
	d.Body = body
	return d, nil
}
