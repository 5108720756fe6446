package node

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

func (n *Node) goServe(name string, serve func() error) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			n.log.Error("listener stopped", "listener", name, "err", err)
		}
	}()
}

// shutdownGrace bounds each graceful step of Close: draining protocol
// sessions, and in-flight gRPC calls (forwarded writes) after the handover.
const shutdownGrace = 10 * time.Second

// Close stops the node gracefully, in this order:
//
//  1. /readyz turns unready (load balancers stop routing here);
//  2. the protocol listeners stop accepting; a server that implements
//     Shutdown(ctx) finishes its in-flight transactions first, else Close;
//  3. a leader hands leadership to the most up-to-date voter, so the
//     cluster does not wait an election timeout (raft refuses new
//     proposals during the transfer: they are retried at the new leader);
//  4. the node leaves the gossip pool;
//  5. gRPC drains in-flight calls (bounded), then Raft and the stores close.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		n.draining.Store(true)
		var wg sync.WaitGroup
		for _, s := range n.servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if sh, ok := s.(interface{ Shutdown(context.Context) error }); ok {
					ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
					defer cancel()
					if sh.Shutdown(ctx) == nil {
						return
					}
				}
				s.Close()
			}()
		}
		wg.Wait()
		if n.cluster != nil {
			n.cluster.HandOver()
		}
		if n.pool != nil {
			n.pool.Leave(time.Second)
		}
		n.cancel()
		if n.cluster != nil {
			n.cluster.Stop()
		}
		n.stopIntegrity() // before the stores close
		if n.http != nil {
			n.http.Close()
		}
		for _, gs := range []*grpc.Server{n.admin, n.grpc} {
			if gs == nil {
				continue
			}
			done := make(chan struct{})
			go func() { gs.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-time.After(shutdownGrace):
				gs.Stop()
				<-done
			}
		}
		if n.router != nil {
			n.router.Close()
		}
		if n.raft != nil {
			err = n.raft.Close()
		}
		n.wg.Wait()
		if n.cluster != nil {
			n.cluster.Wait() // after raft closed: a configuration change in flight ends
		}
		if n.index != nil {
			if cerr := n.index.Close(); err == nil {
				err = cerr
			}
		}
		if n.collector != nil {
			prometheus.DefaultRegisterer.Unregister(n.collector)
		}
		n.unregisterClusterMetrics()
		if n.db != nil {
			if cerr := n.db.Close(); err == nil {
				err = cerr
			}
		}
	})
	return err
}
