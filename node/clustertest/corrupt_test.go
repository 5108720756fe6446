package clustertest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// corruption is one way a data directory goes bad while its node is down.
type corruption struct {
	name string
	// apply damages node dir (the node is stopped) and says exactly what
	// it changed.
	apply func(dir string) (string, error)
}

// newest returns the file matching pattern with the highest name.
func newest(pattern string) (string, error) {
	m, err := filepath.Glob(pattern)
	if err != nil {
		return "", err
	}
	if len(m) == 0 {
		return "", fmt.Errorf("no file matches %s", pattern)
	}
	sort.Strings(m)
	return m[len(m)-1], nil
}

// largest returns the largest file matching pattern.
func largest(pattern string) (string, error) {
	m, err := filepath.Glob(pattern)
	if err != nil {
		return "", err
	}
	best, size := "", int64(-1)
	for _, p := range m {
		if fi, err := os.Stat(p); err == nil && fi.Size() > size {
			best, size = p, fi.Size()
		}
	}
	if best == "" {
		return "", fmt.Errorf("no file matches %s", pattern)
	}
	return best, nil
}

func truncateHalf(p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", err
	}
	if err := os.Truncate(p, fi.Size()/2); err != nil {
		return "", err
	}
	return fmt.Sprintf("truncated %s from %d to %d bytes", p, fi.Size(), fi.Size()/2), nil
}

// dropLastManifestRecord truncates a pebble MANIFEST (LevelDB record
// format: 32 KiB blocks of chunks, each with a 7-byte header: CRC, length,
// type 1 full / 2 first / 3 middle / 4 last) at the start of its last
// record: the newest version edit disappears whole, as if never written.
func dropLastManifestRecord(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	const block, hdr = 32 << 10, 7
	last, records := -1, 0
	for off := 0; off+hdr <= len(b); {
		if rem := block - off%block; rem < hdr {
			off += rem
			continue
		}
		n := int(binary.LittleEndian.Uint16(b[off+4:]))
		typ := b[off+6]
		if typ == 0 && n == 0 {
			break // zeroed tail
		}
		if typ == 1 || typ == 2 {
			last = off
			records++
		}
		off += hdr + n
	}
	if last <= 0 || records < 2 {
		return "", fmt.Errorf("%s: %d records, nothing to drop", p, records)
	}
	if err := os.Truncate(p, int64(last)); err != nil {
		return "", err
	}
	return fmt.Sprintf("dropped the last of %d records of %s: truncated from %d to %d bytes", records, p, len(b), last), nil
}

// flipAt XORs 0xff into the byte at off of p (negative: from the end).
func flipAt(p string, off int64) (string, error) {
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if off < 0 {
		off += fi.Size()
	}
	if off < 0 || off >= fi.Size() {
		return "", fmt.Errorf("%s: offset %d outside %d bytes", p, off, fi.Size())
	}
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return "", err
	}
	old := b[0]
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		return "", err
	}
	return fmt.Sprintf("flipped byte %d of %s (%d bytes) from %#02x to %#02x", off, p, fi.Size(), old, b[0]), f.Sync()
}

// flipRaftLogValue opens node dir's raft log with pebble directly and
// rewrites one entry's value with one byte of its command data flipped
// (the record's CRC then no longer matches). which picks the entry: "last"
// or "middle" of the stored range.
func flipRaftLogValue(dir, which string) (string, error) {
	db, err := pebble.Open(filepath.Join(dir, "raft-log"), &pebble.Options{FormatMajorVersion: pebble.FormatWALSyncChunks})
	if err != nil {
		return "", err
	}
	defer db.Close()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{'l'}, UpperBound: []byte{'l' + 1}})
	if err != nil {
		return "", err
	}
	var first, last uint64
	if it.First() {
		first = binary.BigEndian.Uint64(it.Key()[1:])
	}
	if it.Last() {
		last = binary.BigEndian.Uint64(it.Key()[1:])
	}
	it.Close()
	if last == 0 {
		return "", errors.New("raft log is empty")
	}
	idx := last
	if which == "middle" {
		idx = first + (last-first)/2
	}
	key := binary.BigEndian.AppendUint64([]byte{'l'}, idx)
	v, closer, err := db.Get(key)
	if err != nil {
		return "", err
	}
	val := append([]byte(nil), v...)
	closer.Close()
	// The CRC is the last 4 bytes; flip one in the middle of the rest.
	off := (len(val) - 4) / 2
	val[off] ^= 0x01
	if err := db.Set(key, val, pebble.Sync); err != nil {
		return "", err
	}
	return fmt.Sprintf("flipped bit 0 of byte %d of the %d-byte value of raft log entry %d (log holds %d..%d)", off, len(val), idx, first, last), nil
}

// corruptions are the F14 cases, each applied to a stopped follower.
var corruptions = []corruption{
	{"state CURRENT-STATE garbage", func(dir string) (string, error) {
		p := filepath.Join(dir, "state", "CURRENT-STATE")
		return "wrote \"state-00000x\\n\" over " + p, os.WriteFile(p, []byte("state-00000x\n"), 0o644)
	}},
	{"state MANIFEST truncated", func(dir string) (string, error) {
		p, err := newest(filepath.Join(dir, "state", "state-*", "MANIFEST-*"))
		if err != nil {
			return "", err
		}
		return truncateHalf(p)
	}},
	{"state MANIFEST last record dropped", func(dir string) (string, error) {
		p, err := newest(filepath.Join(dir, "state", "state-*", "MANIFEST-*"))
		if err != nil {
			return "", err
		}
		return dropLastManifestRecord(p)
	}},
	{"state newest sst truncated", func(dir string) (string, error) {
		p, err := largest(filepath.Join(dir, "state", "state-*", "*.sst"))
		if err != nil {
			return "", err
		}
		return truncateHalf(p)
	}},
	{"state largest sst bit flip mid-file", func(dir string) (string, error) {
		p, err := largest(filepath.Join(dir, "state", "state-*", "*.sst"))
		if err != nil {
			return "", err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		return flipAt(p, fi.Size()/3)
	}},
	{"raft-log MANIFEST truncated", func(dir string) (string, error) {
		p, err := newest(filepath.Join(dir, "raft-log", "MANIFEST-*"))
		if err != nil {
			return "", err
		}
		return truncateHalf(p)
	}},
	{"raft-log MANIFEST last record dropped", func(dir string) (string, error) {
		p, err := newest(filepath.Join(dir, "raft-log", "MANIFEST-*"))
		if err != nil {
			return "", err
		}
		return dropLastManifestRecord(p)
	}},
	{"raft-log last entry value flipped", func(dir string) (string, error) { return flipRaftLogValue(dir, "last") }},
	{"raft-log middle entry value flipped", func(dir string) (string, error) { return flipRaftLogValue(dir, "middle") }},
}

// lastExit returns the detail of node i's last exit event.
func (c *Cluster) lastExit(i int) string {
	evs := c.events.all()
	for k := len(evs) - 1; k >= 0; k-- {
		if evs[k].Kind == "exit" && evs[k].index == i {
			return evs[k].Detail
		}
	}
	return ""
}

// copyDir copies src to dst (cp -a: the node is stopped).
func copyDir(src, dst string) error {
	os.RemoveAll(dst)
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -a %s %s: %v: %s", src, dst, err, out)
	}
	return nil
}

// errorLines returns the ERROR-level and panic lines of a log excerpt.
func errorLines(log string, max int) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "level=ERROR") || strings.HasPrefix(l, "panic") || strings.HasPrefix(l, "continuum serve: ") {
			if len(l) > 400 {
				l = l[:400] + "…"
			}
			out = append(out, l)
			if len(out) == max {
				break
			}
		}
	}
	return out
}

// detectWithin bounds how long a damaged node may run before it stops:
// start-up checks refuse at once; the scrub's first pass starts 1 s after
// start and reads the test's few MB at scrub-rate (32 MiB/s) in well under
// a second; the rest is process start and the exit.
const detectWithin = 10 * time.Second

// damageResult is what one damaged start did.
type damageResult struct {
	name, what string
	exited     bool
	exit       string
	errors     []string
	how        string // "start-up check", "scrub or read (quarantined)", or ""
	served     string // what a node that kept running answered
	verified   bool   // running, and its state matched its shutdown seal
	took       time.Duration
}

// damage stops a follower, damages its data directory with apply, starts
// it and waits detectWithin for it to refuse or stop. Then it heals the
// node whatever happened, so no case leaves damage behind for the next:
// heal "restore" puts the undamaged copy back, "rebuild" runs `continuum
// node rebuild` and lets the node rejoin from the leader's snapshot.
func damage(r *run, name string, apply func(dir string) (string, error), heal string) damageResult {
	l := r.c.WaitLeader(30 * time.Second)
	v := (l + 1 + r.rng.IntN(len(r.c.Nodes)-1)) % len(r.c.Nodes)
	n := r.c.Nodes[v]
	r.hold(r.between(300*time.Millisecond, 800*time.Millisecond))
	if !r.c.Stop(v) {
		r.t.Fatalf("%s hung at stop", n.ID)
	}
	backup := n.DataDir + ".good"
	if heal == "restore" {
		if err := copyDir(n.DataDir, backup); err != nil {
			r.t.Fatal(err)
		}
	}
	what, err := apply(n.DataDir)
	if err != nil {
		r.t.Fatalf("F14 case %q: %v", name, err)
	}
	res := damageResult{name: name, what: what}
	r.c.StartNode(v)
	started := time.Now()
	start := r.c.starts(v)
	res.exited = r.c.wait(v, detectWithin)
	res.took = time.Since(started)
	log := logSince(r.c, v, start)
	res.errors = errorLines(log, 5)
	if res.exited {
		res.exit = r.c.lastExit(v)
		res.how = "start-up check"
		if strings.Contains(log, "quarantined") {
			res.how = "scrub or read (quarantined)"
		}
	} else {
		in, err := r.c.Info(v)
		code, gerr := r.c.Greeting(v, 2*time.Second)
		if err != nil {
			res.served = "status: " + err.Error()
		} else {
			res.served = fmt.Sprintf("state %s, role %s, leader %q, applied %d; SMTP greeting %d %v", in.State, in.Role, in.LeaderId, in.AppliedIndex, code, gerr)
		}
		// Not refused, but checked: the damaged database matched the seal
		// of its last clean shutdown (storage/seal.go, raftlog/seal.go),
		// so the damage removed nothing the node still needed.
		sealed := "state matches its shutdown seal"
		if strings.Contains(what, "/raft-log/") {
			sealed = "raft log matches its shutdown seal"
		}
		res.verified = strings.Contains(log, sealed)
		if !r.c.Stop(v) {
			r.t.Fatalf("%s hung at stop", n.ID)
		}
	}
	switch heal {
	case "restore":
		os.RemoveAll(n.DataDir)
		if err := os.Rename(backup, n.DataDir); err != nil {
			r.t.Fatal(err)
		}
	case "rebuild":
		if out, err := exec.Command(r.c.Bin, "node", "rebuild", "--data", n.DataDir, "--discard").CombinedOutput(); err != nil {
			r.t.Fatalf("continuum node rebuild: %v: %s", err, out)
		}
	}
	r.c.StartNode(v)
	r.waitAnswering(v)
	// A rebuilt node comes back as a non-voter: the next case must not
	// damage another node while the cluster is one failure from losing its
	// quorum, as no operator would take a second node down then.
	r.c.WaitVoters(len(r.c.Nodes), 120*time.Second)
	return res
}

// judge fails the test for a case that was neither refused, nor stopped in
// order within detectWithin, nor verified equal to its seal.
func judge(t *testing.T, res damageResult) {
	switch {
	case !res.exited && res.verified:
		t.Logf("F14 %q: not refused, and verified: the node's state equals its shutdown seal (%s)", res.name, res.what)
	case !res.exited:
		t.Errorf("F14 %q NOT detected within %v: %s; the node ran and served (%s)", res.name, detectWithin, res.what, res.served)
	case res.exit == "" || res.exit == "<nil>":
		t.Errorf("F14 %q: the node exited with status 0 (%s)", res.name, res.what)
	case len(res.errors) == 0:
		t.Errorf("F14 %q: exited (%s) without an error line in its log", res.name, res.exit)
	default:
		for _, e := range res.errors {
			if strings.HasPrefix(e, "panic") {
				t.Errorf("F14 %q: the node panicked instead of stopping in order: %s", res.name, e)
			}
		}
	}
}

// sstFlip flips the byte at frac of the largest sstable matching glob
// (under the data directory).
func sstFlip(glob string, frac float64) func(dir string) (string, error) {
	return func(dir string) (string, error) {
		p, err := largest(filepath.Join(dir, glob))
		if err != nil {
			return "", err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		return flipAt(p, int64(float64(fi.Size())*frac))
	}
}

// TestFaultF14CorruptDataDir: under load, a follower is stopped, one file
// of its data directory damaged (each case of corruptions in turn, then
// bit flips across the state's and the log's sstables), and started again.
// It must detect the damage at start, or stop in order (quarantined, exit
// non-zero, no panic) once the scrub reads it, within detectWithin; never
// serve or vote on bad data for longer. After each case its undamaged copy
// is put back, so one case cannot break the next; the others go on with 0
// lost.
func TestFaultF14CorruptDataDir(t *testing.T) {
	cases := append([]corruption(nil), corruptions...)
	for _, f := range []float64{0.1, 0.5, 0.9} {
		cases = append(cases, corruption{fmt.Sprintf("state largest sst bit flip at %.0f%%", f*100), sstFlip("state/state-*/*.sst", f)})
	}
	var results []damageResult
	runScenario(t, scenario{
		faults: func(r *run) {
			for k, cc := range cases {
				res := damage(r, cc.name, cc.apply, "restore")
				results = append(results, res)
				r.t.Logf("F14 case %d %q: %s → exited %v after %v by %s (%s); served: %s; errors: %q",
					k+1, cc.name, res.what, res.exited, res.took.Round(time.Millisecond), res.how, res.exit, res.served, res.errors)
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			for _, res := range results {
				judge(r.t, res)
			}
		},
	})
}

// randomFlip flips one random byte of one random file among a data
// directory's sstables and MANIFESTs, of the state database or the log.
func randomFlip(rng *rand.Rand) func(dir string) (string, error) {
	return func(dir string) (string, error) {
		var files []string
		for _, g := range []string{"state/state-*/*.sst", "state/state-*/MANIFEST-*", "raft-log/*.sst", "raft-log/MANIFEST-*"} {
			m, _ := filepath.Glob(filepath.Join(dir, g))
			for _, p := range m {
				if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
					files = append(files, p)
				}
			}
		}
		if len(files) == 0 {
			return "", errors.New("no sstable or MANIFEST to damage")
		}
		sort.Strings(files)
		p := files[rng.IntN(len(files))]
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		return flipAt(p, rng.Int64N(fi.Size()))
	}
}

// TestFaultF14RandomFlips: CONTINUUM_F14_FLIPS (default 20) times, one
// random byte of a follower's state or log files (sstables, MANIFESTs) is
// flipped while it is stopped; each must be detected within detectWithin
// (refused at start, or quarantined by the scrub), never panic, and the
// node is healed with `continuum node rebuild` and rejoins. The history
// checker and the replica comparison at the end show nothing damaged was
// served and every replica is equal again.
func TestFaultF14RandomFlips(t *testing.T) {
	flips := 20
	if s := os.Getenv("CONTINUUM_F14_FLIPS"); s != "" {
		fmt.Sscan(s, &flips)
	}
	var results []damageResult
	runScenario(t, scenario{
		faults: func(r *run) {
			flip := randomFlip(r.rng)
			for k := 0; k < flips; k++ {
				res := damage(r, fmt.Sprintf("random flip %d", k+1), flip, "rebuild")
				results = append(results, res)
				r.t.Logf("F14 flip %d: %s → exited %v after %v by %s (%s); served: %s; errors: %q",
					k+1, res.what, res.exited, res.took.Round(time.Millisecond), res.how, res.exit, res.served, res.errors)
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			detected := 0
			for _, res := range results {
				judge(r.t, res)
				if res.exited {
					detected++
				}
			}
			r.t.Logf("F14: %d of %d random flips detected and healed by rebuild", detected, len(results))
		},
	})
}
