package storage

import (
	"fmt"
	"hash/maphash"
	"sync"

	"github.com/cockroachdb/pebble/v2"
)

// keyFilter is an in-memory Bloom filter over every blobref/ and dedupe/
// key of the committed database. Apply looks up one of each per delivered
// message and, mail being unique, nearly always finds nothing; a Pebble
// Get that finds nothing still builds an iterator over the memtables and
// every level. When the filter says a key is absent it is: the Get is
// skipped (Batch.lookup).
//
// It is exact in the only direction that matters: every key present in
// the database is in the filter, because the filter is built from a scan
// at Open and after Restore (under the write lock, no batch open), and
// every Batch.set of such a key adds it before the batch can commit.
// Deleted keys stay in it (a Bloom filter cannot forget): they only make
// a later miss take the Pebble path. The filter grows by adding parts,
// each twice the last, so that the false-positive rate stays near
// filterFPRate; past maxFilterBytes it stops answering (every lookup goes
// to Pebble, as before) until the next Open.
type keyFilter struct {
	mu    sync.RWMutex
	seed  maphash.Seed
	parts []*bloomPart
	bytes int
	off   bool
}

type bloomPart struct {
	bits   []uint64
	n, cap int
}

const (
	filterBitsPerKey = 12 // with filterProbes: about 0.3% false positives
	filterProbes     = 8
	filterMinKeys    = 1 << 16
	maxFilterBytes   = 256 << 20
)

// filtered reports whether a key's family goes through the filter.
func filtered(key []byte) bool {
	return len(key) > 0 && (Family(key[0]) == FamilyBlobRef || Family(key[0]) == FamilyDedupe)
}

func newKeyFilter(expected int) *keyFilter {
	f := &keyFilter{seed: maphash.MakeSeed()}
	f.grow(max(filterMinKeys, 2*expected))
	return f
}

func (f *keyFilter) grow(capacity int) {
	words := (capacity*filterBitsPerKey + 63) / 64
	if f.bytes+8*words > maxFilterBytes {
		f.off = true
		f.parts = nil
		return
	}
	f.parts = append(f.parts, &bloomPart{bits: make([]uint64, words), cap: capacity})
	f.bytes += 8 * words
}

func (f *keyFilter) probes(key []byte) (h1, h2 uint32) {
	h := maphash.Bytes(f.seed, key)
	return uint32(h), uint32(h>>32) | 1
}

func (f *keyFilter) add(key []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.off {
		return
	}
	p := f.parts[len(f.parts)-1]
	if p.n >= p.cap {
		f.grow(2 * p.cap)
		if f.off {
			return
		}
		p = f.parts[len(f.parts)-1]
	}
	h1, h2 := f.probes(key)
	nbits := uint32(len(p.bits) * 64)
	for i := uint32(0); i < filterProbes; i++ {
		b := (h1 + i*h2) % nbits
		p.bits[b/64] |= 1 << (b % 64)
	}
	p.n++
}

// absent reports whether key is certainly not in the database.
func (f *keyFilter) absent(key []byte) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.off {
		return false
	}
	h1, h2 := f.probes(key)
next:
	for _, p := range f.parts {
		nbits := uint32(len(p.bits) * 64)
		for i := uint32(0); i < filterProbes; i++ {
			b := (h1 + i*h2) % nbits
			if p.bits[b/64]&(1<<(b%64)) == 0 {
				continue next
			}
		}
		return false // maybe present in this part
	}
	return true
}

// buildKeyFilter scans the blobref/ and dedupe/ keys of pdb.
func buildKeyFilter(pdb *pebble.DB) (*keyFilter, error) {
	// Two passes (count, then add) so that the filter is one part sized
	// for what is there, without holding the keys.
	each := func(fn func(k []byte)) error {
		for _, fam := range []Family{FamilyBlobRef, FamilyDedupe} {
			it, err := pdb.NewIter(&pebble.IterOptions{LowerBound: []byte{byte(fam)}, UpperBound: []byte{byte(fam) + 1}})
			if err != nil {
				return fmt.Errorf("storage: key filter: %w", err)
			}
			for ok := it.First(); ok; ok = it.Next() {
				fn(it.Key())
			}
			if err := it.Close(); err != nil {
				return fmt.Errorf("storage: key filter: %w", err)
			}
		}
		return nil
	}
	n := 0
	if err := each(func([]byte) { n++ }); err != nil {
		return nil, err
	}
	f := newKeyFilter(n)
	if err := each(f.add); err != nil {
		return nil, err
	}
	return f, nil
}
