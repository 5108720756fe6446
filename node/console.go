package node

import (
	"context"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/node/httpapi"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/storage"
)

// The console's view of this node (node/httpapi): the cluster status the
// admin API computes, cached briefly because every open page and every
// Prometheus scrape asks for it, and this node's store figures.

// statusCacheFor is how long one cluster status is reused. It is part of
// the console's health bound (httpapi.HealthBound).
const statusCacheFor = time.Second

// storeCountFor is how long the content counts are reused: counting walks
// every user's mailboxes.
const storeCountFor = 5 * time.Second

type consoleState struct {
	adminOnce sync.Once
	admin     *admin.Service // the same service the node serves over gRPC

	mu       sync.Mutex // held while computing: concurrent askers share one answer
	status   *adminpb.ClusterStatusResponse
	statusAt time.Time

	countMu sync.Mutex
	counts  httpapi.StoreStats

	collector *clusterCollector // metrics_cluster.go
}

// ClusterStatus is the admin API's cluster status, as `continuum cluster
// status` shows it, from this node's point of view.
func (n *Node) ClusterStatus(ctx context.Context) (*adminpb.ClusterStatusResponse, error) {
	c := &n.console
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != nil && time.Since(c.statusAt) < statusCacheFor {
		return c.status, nil
	}
	c.adminOnce.Do(func() { c.admin = admin.New(n.mail, (*clusterView)(n)) })
	st, err := c.admin.ClusterStatus(ctx, &adminpb.ClusterStatusRequest{})
	if err != nil {
		return nil, err
	}
	c.status, c.statusAt = st, time.Now()
	return st, nil
}

// StoreStats is this node's store: bytes on disk per store, the disk's
// free space, and what the replica holds.
func (n *Node) StoreStats() httpapi.StoreStats {
	c := &n.console
	c.countMu.Lock()
	if !n.draining.Load() && (c.counts.CountedAt.IsZero() || time.Since(c.counts.CountedAt) > storeCountFor) {
		c.counts = countStore(n.db)
	}
	st := c.counts
	c.countMu.Unlock()
	st.AppliedIndex = n.fsm.AppliedIndex()
	for _, store := range []string{"state", "raft-log", "snapshots"} {
		st.Sizes = append(st.Sizes, httpapi.StoreSize{Name: store, Bytes: dirSize(filepath.Join(n.cfg.DataDir, store))})
	}
	st.DiskFreeBytes, st.DiskTotalBytes, _ = diskSpace(n.cfg.DataDir)
	return st
}

// countStore counts domains, users, mailboxes and messages in one
// consistent view of the state database (the per-mailbox counters the FSM
// keeps, so it reads one row per mailbox, not per message).
func countStore(db *storage.DB) httpapi.StoreStats {
	st := httpapi.StoreStats{CountedAt: time.Now()}
	snap := db.Snapshot()
	defer snap.Close()
	fail := func(err error) httpapi.StoreStats {
		st.Err = err.Error()
		return st
	}
	domains, err := snap.Domains()
	if err != nil {
		return fail(err)
	}
	st.Domains = len(domains)
	users, err := snap.Users()
	if err != nil {
		return fail(err)
	}
	st.Users = len(users)
	for _, u := range users {
		mbs, err := snap.Mailboxes(u.Id)
		if err != nil {
			return fail(err)
		}
		st.Mailboxes += len(mbs)
		for _, mb := range mbs {
			st.Messages += uint64(mb.Messages)
			st.MessageBytes += mb.Size
		}
	}
	return st
}

// consoleOptions wires the console into the HTTP handler.
func (n *Node) consoleOptions() httpapi.Options {
	return httpapi.Options{
		Console: n,
		Flow:    n.flow,
		Dev:     n.cfg.Dev,
		Pprof:   n.cfg.Pprof || n.cfg.Dev,
		Logger:  n.log,
		// Audit: set once the audit log exists ([audit]).
		// Authorize: DefaultAuthorize(Dev) until admin client certificates
		// reach the HTTP port; see httpapi.DefaultAuthorize.
	}
}

// registerClusterMetrics adds the cluster, integrity and disk metrics
// (metrics_cluster.go) to the default registry, beside nodeCollector.
func (n *Node) registerClusterMetrics() {
	c := newClusterCollector(n)
	if err := prometheus.DefaultRegisterer.Register(c); err != nil {
		n.log.Warn("cluster metrics not registered", "err", err)
		return
	}
	n.console.collector = c
}

func (n *Node) unregisterClusterMetrics() {
	if c := n.console.collector; c != nil {
		prometheus.DefaultRegisterer.Unregister(c)
	}
}
