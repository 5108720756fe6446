package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/continuum-mail/continuum/proto/adminpb"
)

// runReindex asks one live node (--server) to drop its full-text index and
// rebuild it from its state in the background; searches on that node scan
// meanwhile. The index is per node: run it against each node to rebuild.
func runReindex(args []string) error {
	a := newAdminFlags("reindex")
	wait := a.fs.Duration("wait", 0, "wait up to this long for the rebuild to catch up (0: return at once)")
	if _, err := a.parse(args); err != nil {
		return err
	}
	if *wait > 0 && *a.timeout < *wait+10*time.Second {
		*a.timeout = *wait + 10*time.Second
	}
	res, err := call(a, adminpb.AdminClient.Reindex, &adminpb.ReindexRequest{WaitMs: wait.Milliseconds()})
	if err != nil {
		return err
	}
	switch {
	case res.CaughtUp:
		fmt.Printf("node %s: full-text index rebuilt up to log index %d\n", res.Node, res.AppliedIndex)
	case *wait > 0:
		return errors.New(fmt.Sprintf("node %s: rebuild started, not caught up with log index %d after %v (it goes on in the background)", res.Node, res.AppliedIndex, *wait))
	default:
		fmt.Printf("node %s: full-text index rebuilding in the background (to log index %d); searches scan until then\n", res.Node, res.AppliedIndex)
	}
	return nil
}
