package clustertest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// CPU sets: Options.CPUs confines nodes to CPUs of their own, so that a
// measurement can give one group of nodes (the voters) and another (an
// archive replica) separate CPU budgets that stay the same whether the
// other group runs or not: the stand-in, on one machine, for nodes on
// hardware of their own. Each distinct CPU list is one cgroup (the cpuset
// controller, cgroup v1 or v2), created on first use and removed at the
// end of the test; a node joins it at every start (its threads created
// later inherit it). The test process itself stays where it is.

type cpuGroups struct {
	mu     sync.Mutex
	parent string            // the cgroup directory the groups are made in
	v2     bool              // unified hierarchy
	dirs   map[string]string // CPU list → group directory
}

// cpusetParent finds the cpuset hierarchy: cgroup v2 when the unified
// root offers the cpuset controller, else cgroup v1's cpuset mount.
func cpusetParent() (dir string, v2 bool, err error) {
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		if !strings.Contains(" "+string(b)+" ", " cpuset ") {
			return "", false, errors.New("clustertest: cgroup v2 without the cpuset controller")
		}
		return "/sys/fs/cgroup", true, nil
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpuset/cgroup.procs"); err == nil {
		return "/sys/fs/cgroup/cpuset", false, nil
	}
	return "", false, errors.New("clustertest: no cpuset cgroup hierarchy under /sys/fs/cgroup")
}

// group returns the cgroup directory for the CPU list cpus, creating it.
func (g *cpuGroups) group(cpus string) (string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if d, ok := g.dirs[cpus]; ok {
		return d, nil
	}
	if g.parent == "" {
		p, v2, err := cpusetParent()
		if err != nil {
			return "", err
		}
		g.parent, g.v2, g.dirs = p, v2, map[string]string{}
		if v2 {
			// Children get the cpuset controller (the root cgroup is
			// exempt from the no-internal-processes rule).
			if err := os.WriteFile(filepath.Join(p, "cgroup.subtree_control"), []byte("+cpuset"), 0o644); err != nil {
				return "", fmt.Errorf("clustertest: enable cpuset: %w", err)
			}
		}
	}
	d := filepath.Join(g.parent, fmt.Sprintf("clustertest-%d-cpus-%s", os.Getpid(), strings.NewReplacer(",", "_", "-", "to").Replace(cpus)))
	if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("clustertest: cgroup: %w", err)
	}
	if !g.v2 {
		// cgroup v1 starts a cpuset with no memory nodes: every node of
		// the parent.
		mems, err := os.ReadFile(filepath.Join(g.parent, "cpuset.mems"))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(d, "cpuset.mems"), mems, 0o644); err != nil {
			return "", fmt.Errorf("clustertest: cpuset.mems: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(d, "cpuset.cpus"), []byte(cpus), 0o644); err != nil {
		os.Remove(d)
		return "", fmt.Errorf("clustertest: cpuset.cpus %q: %w", cpus, err)
	}
	g.dirs[cpus] = d
	return d, nil
}

// confine moves process pid (all its threads) into the group for cpus.
func (g *cpuGroups) confine(pid int, cpus string) error {
	d, err := g.group(cpus)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("clustertest: move %d to %s: %w", pid, d, err)
	}
	return nil
}

// remove moves whatever still runs in the groups back to the parent and
// removes them.
func (g *cpuGroups) remove() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for _, d := range g.dirs {
		b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		for _, pid := range strings.Fields(string(b)) {
			os.WriteFile(filepath.Join(g.parent, "cgroup.procs"), []byte(pid), 0o644)
		}
		if err := os.Remove(d); err != nil {
			errs = append(errs, err)
		}
	}
	g.dirs = map[string]string{}
	return errors.Join(errs...)
}
