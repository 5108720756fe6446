package search

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// history is a random life of one token's postings: operands in time
// order, each UID added in one operand and perhaps removed in a later one.
func history(r *rand.Rand, uids, operands int) (ops [][]byte, live []uint32) {
	adds := make([][]uint32, operands)
	removes := make([][]uint32, operands)
	for u := uint32(1); u <= uint32(uids); u++ {
		a := r.IntN(operands)
		adds[a] = append(adds[a], u)
		if r.IntN(3) == 0 && a < operands-1 {
			d := a + 1 + r.IntN(operands-a-1)
			removes[d] = append(removes[d], u)
			continue
		}
		live = append(live, u)
	}
	for i := range operands {
		ops = append(ops, encodePostings(nil, adds[i], removes[i]))
	}
	return ops, live
}

// mergeOps combines ops (time order) as Pebble does: the operand it meets
// first, then newer or older ones.
func mergeOps(t *testing.T, r *rand.Rand, ops [][]byte, includesBase bool) []byte {
	t.Helper()
	start := r.IntN(len(ops))
	vm, err := postingsMerger.Merge(nil, ops[start])
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := start, start
	for lo > 0 || hi < len(ops)-1 {
		if lo > 0 && (hi == len(ops)-1 || r.IntN(2) == 0) {
			lo--
			err = vm.MergeOlder(ops[lo])
		} else {
			hi++
			err = vm.MergeNewer(ops[hi])
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := vm.(pebble.DeletableValueMerger); ok {
		t.Fatal("the merger drops keys: Pebble v2.1.7's compaction panics on that after a SET")
	}
	val, _, err := vm.Finish(includesBase)
	if err != nil {
		t.Fatal(err)
	}
	return val
}

func liveOf(t *testing.T, val []byte) []uint32 {
	t.Helper()
	adds, _, err := decodePostings(val, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return adds
}

// TestPostingsMergerAnyGrouping: however compactions group a token's
// operands (any contiguous run, merged in any direction, with or without
// the oldest), a read afterwards sees exactly the UIDs added and not
// removed.
func TestPostingsMergerAnyGrouping(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 3))
	for trial := range 300 {
		ops, live := history(r, 1+r.IntN(300), 1+r.IntN(12))
		for len(ops) > 0 {
			got := liveOf(t, mergeOps(t, r, ops, true))
			if !slices.Equal(got, live) {
				t.Fatalf("trial %d (seed %d): read %v, want %v", trial, seed, got, live)
			}
			if len(ops) == 1 {
				break
			}
			// A compaction of operands i..j (the oldest included when i == 0).
			i := r.IntN(len(ops))
			j := i + r.IntN(len(ops)-i)
			v := mergeOps(t, r, ops[i:j+1], i == 0)
			ops = slices.Insert(append(slices.Clone(ops[:i]), ops[j+1:]...), i, v)
		}
	}
}

func TestPostingsDecodeRejectsGarbage(t *testing.T) {
	for _, v := range [][]byte{nil, {5}, {1, 0x80}, {0, 0, 0}, {2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 0}} {
		if _, _, err := decodePostings(v, nil, nil); !errors.Is(err, errBadPostings) {
			t.Errorf("%x: err %v, want errBadPostings", v, err)
		}
	}
	if _, err := postingsMerger.Merge(nil, []byte{7}); err == nil {
		t.Error("Merge of a malformed operand: no error")
	}
}

// TestPostingsInPebble: operands written across flushes and compactions
// of a real database read back as the model says, after a reopen too.
func TestPostingsInPebble(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 5))
	dir := t.TempDir()
	open := func() *pebble.DB {
		db, removed, err := openDB(dir, &pebble.Options{Logger: quietPebble{}, MemTableSize: 1 << 20})
		if err != nil || removed {
			t.Fatalf("openDB: removed %v, %v", removed, err)
		}
		return db
	}
	db := open()
	model := map[string]map[uint32]bool{}
	next := uint32(1)
	check := func(when string) {
		t.Helper()
		for tok, set := range model {
			var want []uint32
			for u := range set {
				want = append(want, u)
			}
			slices.Sort(want)
			var got []uint32
			v, closer, err := db.Get(tokenKey(1, tok))
			if err == nil {
				got = liveOf(t, v)
				closer.Close()
			} else if !errors.Is(err, pebble.ErrNotFound) {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%s: token %s: %v, want %v (seed %d)", when, tok, got, want, seed)
			}
		}
	}
	for round := range 40 {
		post := stepPostings{}
		for range 1 + r.IntN(50) {
			tok := fmt.Sprintf("w%d", r.IntN(20))
			if model[tok] == nil {
				model[tok] = map[uint32]bool{}
			}
			if len(model[tok]) > 0 && r.IntN(3) == 0 {
				for u := range model[tok] { // remove one live UID
					post.change(tok).removes = append(post.change(tok).removes, u)
					delete(model[tok], u)
					break
				}
				continue
			}
			post.change(tok).adds = append(post.change(tok).adds, next)
			model[tok][next] = true
			next++
		}
		b := db.NewBatch()
		if err := post.write(b, 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		b.Close()
		switch round % 7 {
		case 2, 5:
			if err := db.Flush(); err != nil {
				t.Fatal(err)
			}
		case 6:
			if err := db.Compact(t.Context(), []byte{0}, []byte{0xff}, true); err != nil {
				t.Fatal(err)
			}
		}
		check(fmt.Sprintf("round %d", round))
	}
	db.Close()
	db = open()
	defer db.Close()
	check("after reopening")
}

// TestOpenDBRemovesOtherMerger: an index written with Pebble's default
// merger (format 3) cannot be opened with the postings merger; openDB
// removes it (derived data) and opens an empty one.
func TestOpenDBRemovesOtherMerger(t *testing.T) {
	dir := t.TempDir()
	old, err := pebble.Open(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil {
		t.Fatal(err)
	}
	old.Set([]byte("k"), []byte("v"), pebble.Sync)
	old.Close()
	if name, _ := mergerOf(dir); name == "" || name == postingsMergerName {
		t.Fatalf("merger of the old database: %q", name)
	}
	db, removed, err := openDB(dir, &pebble.Options{Logger: quietPebble{}})
	if err != nil || !removed {
		t.Fatalf("openDB: removed %v, %v", removed, err)
	}
	defer db.Close()
	if _, _, err := db.Get([]byte("k")); !errors.Is(err, pebble.ErrNotFound) {
		t.Fatalf("old key after removal: %v", err)
	}
	if name, _ := mergerOf(dir); name != postingsMergerName {
		t.Fatalf("merger now %q", name)
	}
}

// FuzzPostingsMerge: any bytes as an operand are refused or decoded, never
// a panic; two operands that decode combine into a value that decodes.
func FuzzPostingsMerge(f *testing.F) {
	f.Add(encodePostings(nil, []uint32{1, 5, 9}, []uint32{3}), encodePostings(nil, []uint32{3, 10}, nil))
	f.Add([]byte{0, 0}, []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0})
	f.Fuzz(func(t *testing.T, a, b []byte) {
		_, _, errA := decodePostings(a, nil, nil)
		_, _, errB := decodePostings(b, nil, nil)
		vm, err := postingsMerger.Merge(nil, a)
		if (err == nil) != (errA == nil) {
			t.Fatalf("Merge(a) err %v, decode err %v", err, errA)
		}
		if err != nil || errB != nil {
			return
		}
		if err := vm.MergeNewer(b); err != nil {
			t.Fatal(err)
		}
		for _, base := range []bool{false, true} {
			v, _, err := vm.Finish(base)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := decodePostings(v, nil, nil); err != nil {
				t.Fatalf("combined value does not decode: %v", err)
			}
		}
	})
}
