package failpoint

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The names of the points.
const (
	DeliverDrop     = "mail/deliver-drop"
	ApplyUIDStall   = "fsm/apply-uid-stall"
	ApplyDiverge    = "fsm/apply-diverge"
	RaftDelay       = "raft/transport-delay"
	StorageCommit   = "storage/commit"
	StorageSnapshot = "storage/snapshot"
	ProposeForward  = "propose/forward"
)

// Names lists every point.
var Names = []string{DeliverDrop, ApplyUIDStall, ApplyDiverge, RaftDelay, StorageCommit, StorageSnapshot, ProposeForward}

// Env is the environment variable that arms points.
const Env = "CONTINUUM_FAILPOINTS"

// ErrInjected is the error a failing point returns.
var ErrInjected = errors.New("failpoint: injected failure")

// spec is one armed point.
type spec struct {
	every  uint64
	lo, hi time.Duration
}

// parse reads "name=spec;name=spec".
func parse(s string) (map[string]spec, error) {
	out := map[string]spec{}
	for _, item := range strings.Split(s, ";") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, sp, ok := strings.Cut(item, "=")
		if !ok || !known(name) {
			return nil, fmt.Errorf("failpoint: %q: want NAME=every(N) or NAME=delay(MIN-MAX), NAME one of %s", item, strings.Join(Names, ", "))
		}
		var v spec
		switch {
		case strings.HasPrefix(sp, "every(") && strings.HasSuffix(sp, ")"):
			n, err := strconv.ParseUint(sp[len("every("):len(sp)-1], 10, 64)
			if err != nil || n == 0 {
				return nil, fmt.Errorf("failpoint: %q: every(N) wants N ≥ 1", item)
			}
			v.every = n
		case strings.HasPrefix(sp, "delay(") && strings.HasSuffix(sp, ")"):
			a, b, _ := strings.Cut(sp[len("delay("):len(sp)-1], "-")
			lo, err1 := time.ParseDuration(a)
			hi, err2 := time.ParseDuration(b)
			if err1 != nil || err2 != nil || lo <= 0 || hi < lo {
				return nil, fmt.Errorf("failpoint: %q: delay(MIN-MAX) wants 0 < MIN ≤ MAX", item)
			}
			v.lo, v.hi = lo, hi
		default:
			return nil, fmt.Errorf("failpoint: %q: unknown spec %q", item, sp)
		}
		out[name] = v
	}
	return out, nil
}

func known(name string) bool {
	for _, n := range Names {
		if n == name {
			return true
		}
	}
	return false
}
