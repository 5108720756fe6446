package clustertest

import (
	"encoding/binary"
	"errors"
	"fmt"
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

// TestFaultF14CorruptDataDir: under load, a follower is stopped, one file
// of its data directory damaged (each case of corruptions in turn), and
// started again. It must detect the damage at start: exit non-zero with a
// clear error, never come up to serve or vote on bad data. Then its
// undamaged copy is put back and it rejoins; the others go on with 0 lost.
func TestFaultF14CorruptDataDir(t *testing.T) {
	type result struct {
		name, what string
		exited     bool
		exit       string
		errors     []string
		served     string // what a running node answered
		node       int
		from, to   time.Time // it ran on the damaged directory
		verified   bool      // running, and its state matched its shutdown seal
	}
	var results []result
	runScenario(t, scenario{
		faults: func(r *run) {
			for k, cc := range corruptions {
				l := r.c.WaitLeader(30 * time.Second)
				v := (l + 1 + r.rng.IntN(len(r.c.Nodes)-1)) % len(r.c.Nodes)
				n := r.c.Nodes[v]
				r.hold(r.between(300*time.Millisecond, 800*time.Millisecond))
				if !r.c.Stop(v) {
					r.t.Fatalf("%s hung at stop", n.ID)
				}
				backup := n.DataDir + ".good"
				if err := copyDir(n.DataDir, backup); err != nil {
					r.t.Fatal(err)
				}
				what, err := cc.apply(n.DataDir)
				if err != nil {
					r.t.Fatalf("F14 case %q: %v", cc.name, err)
				}
				res := result{name: cc.name, what: what}
				r.c.StartNode(v)
				started := time.Now()
				start := r.c.starts(v)
				// Detected: the process exits. Give it 10 s; a node that
				// still runs then has accepted the data.
				exited := r.c.wait(v, 8*time.Second)
				res.exited = exited
				log := logSince(r.c, v, start)
				res.errors = errorLines(log, 5)
				if exited {
					res.exit = r.c.lastExit(v)
				} else {
					in, err := r.c.Info(v)
					code, gerr := r.c.Greeting(v, 2*time.Second)
					switch {
					case err != nil:
						res.served = "status: " + err.Error()
					default:
						res.served = fmt.Sprintf("state %s, role %s, leader %q, applied %d; SMTP greeting %d %v", in.State, in.Role, in.LeaderId, in.AppliedIndex, code, gerr)
					}
					// It runs on the damaged directory: leave it so, and
					// let the final check show whether its state differs.
					res.from, res.to = started, time.Now()
					res.node = v
					// Not refused, but checked: the state database matched
					// the seal of its last clean shutdown (storage/seal.go),
					// so the damage removed nothing the node still needed.
					res.verified = strings.Contains(log, "state matches its shutdown seal")
					results = append(results, res)
					r.t.Logf("F14 case %d %q: %s → NOT detected, runs: %s", k+1, cc.name, what, res.served)
					os.RemoveAll(backup)
					continue
				}
				results = append(results, res)
				r.t.Logf("F14 case %d %q: %s → exited %v (%s); served: %s; errors: %q", k+1, cc.name, what, res.exited, res.exit, res.served, res.errors)
				os.RemoveAll(n.DataDir)
				if err := os.Rename(backup, n.DataDir); err != nil {
					r.t.Fatal(err)
				}
				r.c.StartNode(v)
				r.waitAnswering(v)
			}
		},
		check: func(r *run, ops []*Op, f *Figures) {
			for _, res := range results {
				if !res.exited && res.verified {
					r.t.Logf("F14 %q: not refused, and verified: the node's state equals its shutdown seal (%s); the final checks cover it", res.name, res.what)
					continue
				}
				if !res.exited {
					bounced := 0
					for _, op := range ops {
						for _, a := range op.Attempts {
							if a.Node == res.node && a.Code >= 500 && a.Start.After(res.from) {
								bounced++
							}
						}
					}
					r.t.Errorf("F14 %q NOT detected at start: %s; the node came up and served (%s); it answered 5xx to %d SMTP commands since", res.name, res.what, res.served, bounced)
					continue
				}
				if res.exit == "" || res.exit == "<nil>" {
					r.t.Errorf("F14 %q: the node exited with status 0 (%s)", res.name, res.what)
				}
				if len(res.errors) == 0 {
					r.t.Errorf("F14 %q: exited (%s) without an error line in its log", res.name, res.exit)
				}
			}
		},
	})
}
