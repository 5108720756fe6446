package search

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
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

// Usable reports whether a Folded query can narrow a search (it has at
// least one trigram).
func Usable(q string) bool { return utf8.RuneCountInString(q) >= 3 }

// Candidates returns, in ascending order, the UIDs ≤ hw of the mailbox
// whose text holds every trigram of every query (each already Folded and
// Usable): a superset of the messages that match, to be verified.
func (v *View) Candidates(mbox uint64, hw uint32, queries []string) ([]uint32, error) {
	var tris []uint32
	for _, q := range queries {
		tris = append(tris, trigramSet(q)...)
	}
	slices.Sort(tris)
	tris = slices.Compact(tris)
	if len(tris) == 0 {
		return nil, fmt.Errorf("search: no trigram in the queries")
	}
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
		p := postingPrefix(mbox, t)
		it, err := v.snap.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: postingPrefix(mbox, t+1)})
		if t == ^uint32(0) {
			it, err = v.snap.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: binary.BigEndian.AppendUint64([]byte{famPosting}, mbox+1)})
		}
		if err != nil {
			return nil, err
		}
		its[i], prefixes[i] = it, p
	}
	// Leapfrog join: seek every list to the largest UID seen until all
	// agree; cost follows the shortest list, not the mailbox.
	var out []uint32
	target := uint32(1)
	agree := 0
	for i := 0; ; i = (i + 1) % len(its) {
		key := binary.BigEndian.AppendUint32(append([]byte(nil), prefixes[i]...), target)
		if !its[i].SeekGE(key) {
			return out, its[i].Error()
		}
		uid := binary.BigEndian.Uint32(its[i].Key()[13:])
		if uid > hw {
			return out, nil
		}
		if uid != target {
			target, agree = uid, 0
		}
		agree++
		if agree == len(its) {
			out = append(out, uid)
			if uid == ^uint32(0) {
				return out, nil
			}
			target, agree = uid+1, 0
		}
	}
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
