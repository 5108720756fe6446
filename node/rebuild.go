package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// rebuildMoves are what Rebuild moves out of a data directory: everything
// that holds replicated state or says the node is quarantined.
var rebuildMoves = []string{"state", "raft-log", "snapshots", "index", QuarantineFile}

// Rebuild prepares a stopped node's data directory to be rebuilt from the
// cluster: its state database, Raft log, snapshots and quarantine record
// move into dataDir/damaged-<UTC time> (kept for inspection; discard
// removes them instead). Started again with --join, the node finds no Raft
// state, is re-admitted by the leader as a non-voter, installs the leader's
// snapshot and is promoted once caught up: the wiped-voter path
// (node/cluster/DESIGN.md). It refuses while a process holds the
// databases' locks, that is while the node runs.
func Rebuild(dataDir string, discard bool) (movedTo string, err error) {
	if fi, err := os.Stat(dataDir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("node: rebuild: %s is not a data directory: %v", dataDir, err)
	}
	present := 0
	for _, name := range rebuildMoves {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err == nil {
			present++
		}
	}
	if present == 0 {
		return "", fmt.Errorf("node: rebuild: %s holds no node state (no state, raft-log or snapshots)", dataDir)
	}
	// Pebble holds an exclusive lock on each database's LOCK file while
	// open: taking them proves the node is stopped.
	locks, _ := filepath.Glob(filepath.Join(dataDir, "state", "state-*", "LOCK"))
	locks = append(locks, filepath.Join(dataDir, "raft-log", "LOCK"))
	for _, l := range locks {
		if _, err := os.Stat(l); err != nil {
			continue
		}
		c, err := vfs.Default.Lock(l)
		if err != nil {
			return "", fmt.Errorf("node: rebuild: %s is in use (%v): stop the node first", l, err)
		}
		c.Close()
	}
	dest := filepath.Join(dataDir, "damaged-"+time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(dest, 0o750); err != nil {
		return "", fmt.Errorf("node: rebuild: %w", err)
	}
	for _, name := range rebuildMoves {
		err := os.Rename(filepath.Join(dataDir, name), filepath.Join(dest, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("node: rebuild: moving %s aside: %w", name, err)
		}
	}
	if err := syncDir(dataDir); err != nil {
		return "", fmt.Errorf("node: rebuild: %w", err)
	}
	if discard {
		if err := os.RemoveAll(dest); err != nil {
			return "", fmt.Errorf("node: rebuild: removing the damaged state: %w", err)
		}
		return "", nil
	}
	return dest, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
