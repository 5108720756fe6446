package raftlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

var quiet = slog.New(slog.DiscardHandler)

// openStore opens a store in dir and closes it when the test ends.
func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mkLog(index, term uint64) *raft.Log {
	return &raft.Log{
		Index:      index,
		Term:       term,
		Type:       raft.LogCommand,
		Data:       fmt.Appendf(nil, "entry %d term %d", index, term),
		AppendedAt: time.Unix(1_700_000_000, int64(index)),
	}
}

func mkLogs(lo, hi, term uint64) []*raft.Log {
	var out []*raft.Log
	for i := lo; i <= hi; i++ {
		out = append(out, mkLog(i, term))
	}
	return out
}

func sameLog(a, b *raft.Log) bool {
	return a.Index == b.Index && a.Term == b.Term && a.Type == b.Type &&
		bytes.Equal(a.Data, b.Data) && bytes.Equal(a.Extensions, b.Extensions) &&
		a.AppendedAt.Equal(b.AppendedAt)
}

func wantIndexes(t *testing.T, s *Store, first, last uint64) {
	t.Helper()
	f, err := s.FirstIndex()
	if err != nil {
		t.Fatalf("FirstIndex: %v", err)
	}
	l, err := s.LastIndex()
	if err != nil {
		t.Fatalf("LastIndex: %v", err)
	}
	if f != first || l != last {
		t.Fatalf("FirstIndex, LastIndex = %d, %d; want %d, %d", f, l, first, last)
	}
}

// wantConsistent checks that the cached ends equal what is in the database
// and that every index in [first, last] is readable: the state raft expects
// after any crash.
func wantConsistent(t *testing.T, s *Store) (first, last uint64) {
	t.Helper()
	first, _ = s.FirstIndex()
	last, _ = s.LastIndex()
	if err := s.loadIndexes(); err != nil {
		t.Fatalf("loadIndexes: %v", err)
	}
	if f, l := s.first.Load(), s.last.Load(); f != first || l != last {
		t.Fatalf("cached ends %d, %d; database has %d, %d", first, last, f, l)
	}
	if (first == 0) != (last == 0) || first > last {
		t.Fatalf("bad ends %d, %d", first, last)
	}
	for i := first; first != 0 && i <= last; i++ {
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatalf("GetLog(%d) inside [%d, %d]: %v", i, first, last, err)
		}
	}
	return first, last
}

func wantPresent(t *testing.T, s *Store, lo, hi uint64, present bool) {
	t.Helper()
	for i := lo; i <= hi; i++ {
		var l raft.Log
		err := s.GetLog(i, &l)
		switch {
		case present && err != nil:
			t.Fatalf("GetLog(%d): %v", i, err)
		case present && !sameLog(&l, mkLog(i, l.Term)):
			t.Fatalf("GetLog(%d) = %+v", i, l)
		case !present && !errors.Is(err, raft.ErrLogNotFound):
			t.Fatalf("GetLog(%d) = %v; want raft.ErrLogNotFound", i, err)
		}
	}
}

func TestEmptyStore(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	wantIndexes(t, s, 0, 0)
	for _, i := range []uint64{0, 1, math.MaxUint64} {
		var l raft.Log
		if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Errorf("GetLog(%d) = %v; want raft.ErrLogNotFound", i, err)
		}
	}
	if err := s.StoreLogs(nil); err != nil {
		t.Fatalf("StoreLogs(nil): %v", err)
	}
	if err := s.DeleteRange(1, 10); err != nil {
		t.Fatalf("DeleteRange on empty: %v", err)
	}
	wantIndexes(t, s, 0, 0)
}

func TestStoreLogRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xAB}, 1<<20)
	tests := []struct {
		name string
		log  raft.Log
	}{
		{"minimal", raft.Log{Index: 1}},
		{"command", *mkLog(2, 3)},
		{"empty data", raft.Log{Index: 3, Term: 1, Type: raft.LogNoop}},
		{"extensions", raft.Log{Index: 4, Term: 2, Type: raft.LogCommand, Data: []byte("d"), Extensions: []byte{0, 1, 2}}},
		{"configuration", raft.Log{Index: 5, Term: 2, Type: raft.LogConfiguration, Data: []byte{9, 9}}},
		{"big", raft.Log{Index: 6, Term: 2, Data: big}},
		{"max", raft.Log{Index: math.MaxUint64, Term: math.MaxUint64, Type: math.MaxUint8,
			AppendedAt: time.Unix(0, math.MaxInt64)}},
		{"pre-epoch", raft.Log{Index: 7, Term: 1, AppendedAt: time.Unix(-1, 0)}},
	}
	s := openStore(t, t.TempDir(), Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.StoreLog(&tt.log); err != nil {
				t.Fatalf("StoreLog: %v", err)
			}
			got := raft.Log{Data: []byte("stale"), Extensions: []byte("stale")}
			if err := s.GetLog(tt.log.Index, &got); err != nil {
				t.Fatalf("GetLog: %v", err)
			}
			if !sameLog(&got, &tt.log) {
				t.Fatalf("GetLog = %+v; want %+v", got, tt.log)
			}
		})
	}
}

func TestStoreLogsBatch(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	if err := s.StoreLogs(mkLogs(1, 100, 1)); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 1, 100)
	wantPresent(t, s, 1, 100, true)
	wantPresent(t, s, 101, 101, false)

	// The next batch extends the range.
	if err := s.StoreLogs(mkLogs(101, 164, 2)); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 1, 164)

	if err := s.StoreLogs([]*raft.Log{mkLog(165, 2), nil}); err == nil {
		t.Fatal("StoreLogs with a nil entry succeeded")
	}
	wantIndexes(t, s, 1, 164)
}

func TestDeleteRange(t *testing.T) {
	tests := []struct {
		name        string
		min, max    uint64
		first, last uint64
		gone        [2]uint64 // inclusive range no longer present; {0, 0} for none
	}{
		{"compact prefix", 1, 10, 11, 20, [2]uint64{1, 10}},
		{"compact prefix from 0", 0, 4, 5, 20, [2]uint64{1, 4}},
		{"truncate suffix", 15, 20, 1, 14, [2]uint64{15, 20}},
		{"truncate suffix to max", 15, math.MaxUint64, 1, 14, [2]uint64{15, 20}},
		{"single last", 20, 20, 1, 19, [2]uint64{20, 20}},
		{"single first", 1, 1, 2, 20, [2]uint64{1, 1}},
		{"middle", 5, 8, 1, 20, [2]uint64{5, 8}},
		{"everything", 1, 20, 0, 0, [2]uint64{1, 20}},
		{"everything and more", 0, math.MaxUint64, 0, 0, [2]uint64{1, 20}},
		{"beyond", 21, 30, 1, 20, [2]uint64{}},
		{"empty range", 10, 9, 1, 20, [2]uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{})
			if err := s.StoreLogs(mkLogs(1, 20, 1)); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRange(tt.min, tt.max); err != nil {
				t.Fatalf("DeleteRange(%d, %d): %v", tt.min, tt.max, err)
			}
			check := func(s *Store) {
				t.Helper()
				wantIndexes(t, s, tt.first, tt.last)
				for i := uint64(1); i <= 20; i++ {
					gone := tt.gone != [2]uint64{} && i >= tt.gone[0] && i <= tt.gone[1]
					wantPresent(t, s, i, i, !gone)
				}
			}
			check(s)

			// The ends survive a restart, recomputed from the keys.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			check(openStore(t, dir, Options{}))
		})
	}
}

// TestConflictTruncation follows what a follower does on a conflicting
// AppendEntries: delete the suffix, then store the leader's entries.
func TestConflictTruncation(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	if err := s.StoreLogs(mkLogs(1, 20, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(15, 20); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(mkLogs(15, 17, 2)); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 1, 17)
	var l raft.Log
	if err := s.GetLog(16, &l); err != nil || l.Term != 2 {
		t.Fatalf("GetLog(16) = term %d, %v; want term 2", l.Term, err)
	}
	wantPresent(t, s, 18, 20, false)
}

// TestDeleteEverythingThenRestart follows a user snapshot restore on a
// monotonic store: the whole log goes, and the next entry follows the
// snapshot index.
func TestDeleteEverythingThenRestart(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	if !s.IsMonotonic() {
		t.Fatal("IsMonotonic = false")
	}
	if err := s.StoreLogs(mkLogs(1, 50, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 50); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 0, 0)
	if err := s.StoreLog(mkLog(1001, 3)); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 1001, 1001)
	s.Close()
	s = openStore(t, dir, Options{})
	wantIndexes(t, s, 1001, 1001)
}

func TestGetLogOutsideRange(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	if err := s.StoreLogs(mkLogs(10, 20, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(10, 12); err != nil {
		t.Fatal(err)
	}
	wantIndexes(t, s, 13, 20)
	for _, i := range []uint64{0, 1, 9, 10, 12, 21, 22, math.MaxUint64} {
		var l raft.Log
		if err := s.GetLog(i, &l); !errors.Is(err, raft.ErrLogNotFound) {
			t.Errorf("GetLog(%d) = %v; want raft.ErrLogNotFound", i, err)
		}
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	if err := s.StoreLogs(mkLogs(5, 40, 7)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]byte("LastVoteCand"), []byte("n2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v; want ErrClosed", err)
	}
	var l raft.Log
	if err := s.GetLog(5, &l); !errors.Is(err, ErrClosed) {
		t.Fatalf("GetLog after Close = %v; want ErrClosed", err)
	}

	s = openStore(t, dir, Options{})
	wantIndexes(t, s, 5, 40)
	wantPresent(t, s, 5, 40, true)
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
		t.Fatalf("GetUint64(CurrentTerm) = %d, %v; want 7", v, err)
	}
	if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "n2" {
		t.Fatalf("Get(LastVoteCand) = %q, %v; want n2", v, err)
	}
}

func TestStableStore(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})

	t.Run("missing", func(t *testing.T) {
		v, err := s.Get([]byte("nope"))
		if v != nil || err != ErrKeyNotFound || err.Error() != "not found" {
			t.Fatalf("Get(missing) = %q, %v; want nil, exactly ErrKeyNotFound", v, err)
		}
		n, err := s.GetUint64([]byte("nope"))
		if n != 0 || err != ErrKeyNotFound {
			t.Fatalf("GetUint64(missing) = %d, %v; want 0, ErrKeyNotFound", n, err)
		}
	})

	t.Run("round trip", func(t *testing.T) {
		for _, tc := range []struct{ key, val []byte }{
			{[]byte("k"), []byte("v")},
			{[]byte("k"), []byte("overwritten")},
			{[]byte("empty"), []byte{}},
			{[]byte{}, []byte("empty key")},
			{[]byte{0, 0xff}, bytes.Repeat([]byte("x"), 1<<16)},
		} {
			if err := s.Set(tc.key, tc.val); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(tc.key)
			if err != nil || !bytes.Equal(got, tc.val) {
				t.Fatalf("Get(%q) = %q, %v; want %q", tc.key, got, err, tc.val)
			}
		}
		for _, n := range []uint64{0, 1, math.MaxUint64} {
			if err := s.SetUint64([]byte("u"), n); err != nil {
				t.Fatal(err)
			}
			if got, err := s.GetUint64([]byte("u")); err != nil || got != n {
				t.Fatalf("GetUint64 = %d, %v; want %d", got, err, n)
			}
		}
	})

	t.Run("not uint64", func(t *testing.T) {
		if err := s.Set([]byte("short"), []byte{1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUint64([]byte("short")); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("GetUint64(3 bytes) = %v; want ErrCorrupt", err)
		}
	})

	t.Run("disjoint from log", func(t *testing.T) {
		// A stable key that looks like a log key stays out of the log range.
		if err := s.Set(appendLogKey(nil, 1), []byte("x")); err != nil {
			t.Fatal(err)
		}
		wantIndexes(t, s, 0, 0)
	})
}

// TestRaftSeesEmptyState checks the "not found" contract through raft's own
// code path: HasExistingState calls GetUint64 and compares err.Error().
func TestRaftSeesEmptyState(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{})
	snaps := raft.NewInmemSnapshotStore()
	if ok, err := raft.HasExistingState(s, s, snaps); err != nil || ok {
		t.Fatalf("HasExistingState(fresh) = %v, %v; want false, nil", ok, err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
		t.Fatal(err)
	}
	if ok, err := raft.HasExistingState(s, s, snaps); err != nil || !ok {
		t.Fatalf("HasExistingState(term 1) = %v, %v; want true, nil", ok, err)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	if err := s.Verify(); err != nil {
		t.Fatalf("Verify of an empty log: %v", err)
	}
	if err := s.StoreLogs(mkLogs(1, 20, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 5); err != nil { // compaction leaves no gap
		t.Fatal(err)
	}
	if err := s.Verify(); err != nil {
		t.Fatalf("Verify of a good log: %v", err)
	}
	s.Close()
	db, err := pebble.Open(dir, &pebble.Options{FormatMajorVersion: formatMajorVersion, Logger: pebbleLogger{quiet}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Delete(appendLogKey(nil, 12), pebble.Sync); err != nil { // a hole
		t.Fatal(err)
	}
	db.Close()
	unseal(t, dir)
	s = openStore(t, dir, Options{})
	if err := s.Verify(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify of a log with a hole = %v; want ErrCorrupt", err)
	}
}

func TestCorruptValue(t *testing.T) {
	valid := func(index uint64) []byte { return appendLog(nil, mkLog(index, 1)) }
	withCRC := func(body []byte) []byte {
		return binary.BigEndian.AppendUint32(body, crc32.Checksum(body, crcTable))
	}
	tests := []struct {
		name  string
		value []byte
	}{
		{"garbage", []byte("this is not a raft log entry at all")},
		{"empty", []byte{}},
		{"one byte", []byte{logFormatV1}},
		{"bit flip in data", func() []byte { v := valid(5); v[len(v)-8] ^= 1; return v }()},
		{"bit flip in crc", func() []byte { v := valid(5); v[len(v)-1] ^= 0x80; return v }()},
		{"truncated", valid(5)[:10]},
		{"unknown version", func() []byte { v := valid(5); return withCRC(append([]byte{2}, v[1:len(v)-crcLen]...)) }()},
		{"other index", valid(6)},
		{"length past end", withCRC([]byte{logFormatV1, 5, 1, 0, 0, 0xff, 0xff, 0x03})},
		{"trailing bytes", func() []byte { v := valid(5); return withCRC(append(v[:len(v)-crcLen:len(v)-crcLen], 0)) }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{})
			if err := s.StoreLogs(mkLogs(1, 10, 1)); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			// Write behind the store's back, through pebble directly.
			db, err := pebble.Open(dir, &pebble.Options{
				FormatMajorVersion: formatMajorVersion,
				Logger:             pebbleLogger{quiet},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Set(appendLogKey(nil, 5), tt.value, pebble.Sync); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			unseal(t, dir)

			s = openStore(t, dir, Options{})
			wantIndexes(t, s, 1, 10)
			var l raft.Log
			err = s.GetLog(5, &l)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("GetLog(corrupt) = %v; want ErrCorrupt", err)
			}
			t.Logf("error: %v", err)
			if err := s.Verify(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Verify of a log with a corrupt entry = %v; want ErrCorrupt", err)
			}
			wantPresent(t, s, 4, 4, true)
			wantPresent(t, s, 6, 6, true)
		})
	}
}

// TestCrash simulates power loss with a crashable in-memory filesystem:
// CrashClone keeps exactly what was fsync'd (pebble v2.1 has no
// NewStrictMem/SetIgnoreSyncs/ResetToSyncedState; this is its replacement).
func TestCrash(t *testing.T) {
	const dir = "raft"

	t.Run("synced writes survive", func(t *testing.T) {
		fs := vfs.NewCrashableMem()
		s := openStore(t, dir, Options{FS: fs})
		if err := s.StoreLogs(mkLogs(1, 10, 1)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetUint64([]byte("CurrentTerm"), 1); err != nil {
			t.Fatal(err)
		}
		crash1 := fs.CrashClone(vfs.CrashCloneCfg{})
		if err := s.StoreLogs(mkLogs(11, 20, 2)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRange(1, 5); err != nil {
			t.Fatal(err)
		}
		crash2 := fs.CrashClone(vfs.CrashCloneCfg{})

		r1 := openStore(t, dir, Options{FS: crash1})
		wantIndexes(t, r1, 1, 10)
		wantConsistent(t, r1)
		if v, err := r1.GetUint64([]byte("CurrentTerm")); err != nil || v != 1 {
			t.Fatalf("CurrentTerm after crash = %d, %v", v, err)
		}

		r2 := openStore(t, dir, Options{FS: crash2})
		wantIndexes(t, r2, 6, 20)
		wantConsistent(t, r2)
		wantPresent(t, r2, 1, 5, false)
	})

	t.Run("unsynced tail is lost, store stays consistent", func(t *testing.T) {
		fs := vfs.NewCrashableMem()
		s := openStore(t, dir, Options{FS: fs})
		if err := s.StoreLogs(mkLogs(1, 10, 1)); err != nil {
			t.Fatal(err)
		}
		s.wo = pebble.NoSync // as if the next writes were never fsync'd
		for i := uint64(11); i <= 30; i += 5 {
			if err := s.StoreLogs(mkLogs(i, i+4, 1)); err != nil {
				t.Fatal(err)
			}
		}
		wantIndexes(t, s, 1, 30)

		r := openStore(t, dir, Options{FS: fs.CrashClone(vfs.CrashCloneCfg{})})
		wantIndexes(t, r, 1, 10)
		wantConsistent(t, r)
	})

	t.Run("partial unsynced data", func(t *testing.T) {
		// Some unsynced blocks make it to disk and some don't; whatever
		// survives, the synced prefix is there, batches are whole, and
		// the ends match the keys.
		for seed := int64(0); seed < 20; seed++ {
			fs := vfs.NewCrashableMem()
			s := openStore(t, dir, Options{FS: fs})
			if err := s.StoreLogs(mkLogs(1, 10, 1)); err != nil {
				t.Fatal(err)
			}
			s.wo = pebble.NoSync
			// 80 KiB unsynced: more than pebble's 32 KiB WAL buffer, so
			// some of it reaches the file (unsynced) and CrashClone has
			// 4 KiB blocks to keep or drop; less than the first
			// memtable, so no flush syncs it behind our back.
			for i := uint64(11); i <= 90; i += 8 {
				logs := mkLogs(i, i+7, 1)
				for _, l := range logs {
					l.Data = append(l.Data, make([]byte, 1<<10)...)
				}
				if err := s.StoreLogs(logs); err != nil {
					t.Fatal(err)
				}
			}
			clone := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(uint64(seed), 0))})
			s.Close()

			r := openStore(t, dir, Options{FS: clone})
			first, last := wantConsistent(t, r)
			t.Logf("seed %d: survived [%d, %d]", seed, first, last)
			if first != 1 || last < 10 || last > 90 || (last-10)%8 != 0 {
				t.Fatalf("seed %d: ends %d, %d; want 1 and 10 + whole batches of 8", seed, first, last)
			}
			r.Close()
		}
	})
}

// TestConcurrentAppendAndCompact runs raft's two writers at once: the main
// goroutine appending and the snapshot goroutine compacting a prefix.
func TestConcurrentAppendAndCompact(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{NoSync: true})
	const batches, per = 200, 8
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for b := uint64(0); b < batches; b++ {
			if err := s.StoreLogs(mkLogs(b*per+1, b*per+per, 1)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for range 100 {
			last, _ := s.LastIndex()
			if last > 64 {
				if err := s.DeleteRange(0, last-64); err != nil {
					t.Error(err)
					return
				}
			}
			first, _ := s.FirstIndex()
			last, _ = s.LastIndex()
			if first > last {
				t.Errorf("first %d > last %d", first, last)
				return
			}
		}
	}()
	wg.Wait()
	_, last := wantConsistent(t, s)
	if last != batches*per {
		t.Fatalf("LastIndex = %d; want %d", last, batches*per)
	}
}

// countFSM counts applied commands; its snapshot is the count.
type countFSM struct {
	mu sync.Mutex
	n  uint64
}

func (f *countFSM) Apply(*raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return f.n
}

func (f *countFSM) count() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *countFSM) Snapshot() (raft.FSMSnapshot, error) { return countSnap(f.count()), nil }

func (f *countFSM) Restore(r io.ReadCloser) error {
	defer r.Close()
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return err
	}
	f.mu.Lock()
	f.n = binary.BigEndian.Uint64(b[:])
	f.mu.Unlock()
	return nil
}

type countSnap uint64

func (c countSnap) Persist(sink raft.SnapshotSink) error {
	if _, err := sink.Write(binary.BigEndian.AppendUint64(nil, uint64(c))); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (countSnap) Release() {}

// TestWithRaft runs a real single-node hashicorp/raft on the store: apply,
// snapshot (which compacts the log through DeleteRange), restart from the
// same directory, apply again.
func TestWithRaft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts raft")
	}
	dir := filepath.Join(t.TempDir(), "raft")
	snaps := raft.NewInmemSnapshotStore()
	conf := raft.DefaultConfig()
	conf.LocalID = "n1"
	conf.HeartbeatTimeout = 50 * time.Millisecond
	conf.ElectionTimeout = 50 * time.Millisecond
	conf.LeaderLeaseTimeout = 50 * time.Millisecond
	conf.CommitTimeout = 5 * time.Millisecond
	conf.TrailingLogs = 10
	conf.SnapshotThreshold = 1 << 30 // only the explicit snapshot below
	conf.Logger = hclog.NewNullLogger()

	start := func(s *Store, fsm raft.FSM, bootstrap bool) *raft.Raft {
		t.Helper()
		addr, trans := raft.NewInmemTransport("n1")
		if bootstrap {
			cfg := raft.Configuration{Servers: []raft.Server{{ID: "n1", Address: addr}}}
			if err := raft.BootstrapCluster(conf, s, s, snaps, trans, cfg); err != nil {
				t.Fatalf("BootstrapCluster: %v", err)
			}
		}
		r, err := raft.NewRaft(conf, fsm, s, s, snaps, trans)
		if err != nil {
			t.Fatalf("NewRaft: %v", err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for r.State() != raft.Leader {
			if time.Now().After(deadline) {
				t.Fatal("no leader after 5s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return r
	}
	apply := func(r *raft.Raft, n int) {
		t.Helper()
		for i := range n {
			if err := r.Apply(fmt.Appendf(nil, "cmd %d", i), time.Second).Error(); err != nil {
				t.Fatalf("Apply: %v", err)
			}
		}
	}

	s := openStore(t, dir, Options{})
	fsm := &countFSM{}
	r := start(s, fsm, true)
	apply(r, 100)
	if err := r.Snapshot().Error(); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	first, last := wantConsistent(t, s)
	if first <= 1 || last-first+1 != uint64(conf.TrailingLogs)+1 && last-first+1 != uint64(conf.TrailingLogs) {
		t.Fatalf("after snapshot: log [%d, %d]; want the last ~%d entries", first, last, conf.TrailingLogs)
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, Options{})
	wantIndexes(t, s, first, last)
	fsm = &countFSM{}
	r = start(s, fsm, false)
	apply(r, 1)
	if got := fsm.count(); got != 101 {
		t.Fatalf("FSM count after restart = %d; want 101", got)
	}
	if err := r.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecodeLog(f *testing.F) {
	f.Add(uint64(5), appendLog(nil, mkLog(5, 1)))
	f.Add(uint64(1), appendLog(nil, &raft.Log{Index: 1, Extensions: []byte("x")}))
	f.Add(uint64(0), []byte{})
	f.Fuzz(func(t *testing.T, index uint64, v []byte) {
		var l raft.Log
		err := decodeLog(index, v, &l)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		if err == nil {
			// Whatever decodes must survive a re-encode. (Not byte
			// equality: binary.Uvarint accepts non-minimal encodings.)
			var again raft.Log
			if err := decodeLog(index, appendLog(nil, &l), &again); err != nil || !sameLog(&again, &l) {
				t.Fatalf("re-decoding %+v gave %+v, %v", l, again, err)
			}
		}
	})
}

func BenchmarkStoreLogs(b *testing.B) {
	const batch, size = 64, 4 << 10
	for _, noSync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync=%t", !noSync), func(b *testing.B) {
			s := openStore(b, b.TempDir(), Options{NoSync: noSync})
			data := bytes.Repeat([]byte{0x5a}, size)
			logs := make([]*raft.Log, batch)
			for i := range logs {
				logs[i] = &raft.Log{Term: 1, Type: raft.LogCommand, Data: data, AppendedAt: time.Now()}
			}
			b.SetBytes(batch * size)
			b.ResetTimer()
			next := uint64(1)
			for range b.N {
				for _, l := range logs {
					l.Index = next
					next++
				}
				if err := s.StoreLogs(logs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// unseal checks that the seal of the last clean Close refuses the damaged
// log, then removes the seal, as after a crash (no seal), so the test can
// check what Verify and GetLog make of the damage.
func unseal(t *testing.T, dir string) {
	t.Helper()
	if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a log damaged since its clean Close = %v; want ErrCorrupt (the seal)", err)
	}
	if err := os.Remove(filepath.Join(dir, sealFile)); err != nil {
		t.Fatal(err)
	}
}

// TestSealAfterCleanClose: a clean Close seals, the next Open checks and
// removes the seal, and a clean reopen passes.
func TestSealAfterCleanClose(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{})
	if err := s.StoreLogs(mkLogs(1, 30, 1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := os.Stat(filepath.Join(dir, sealFile)); err != nil {
		t.Fatalf("no seal after a clean Close: %v", err)
	}
	s = openStore(t, dir, Options{})
	if _, err := os.Stat(filepath.Join(dir, sealFile)); !os.IsNotExist(err) {
		t.Fatalf("seal still there after Open: %v", err)
	}
	wantIndexes(t, s, 1, 30)
}
