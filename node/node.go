package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/continuum-mail/continuum/node/cluster"
	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/httpapi"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/loginguard"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/node/peer"
	"github.com/continuum-mail/continuum/node/propose"
	"github.com/continuum-mail/continuum/node/search"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

// Options are wiring choices that are not user configuration: test hooks.
type Options struct {
	Logger *slog.Logger
	// RaftDial and RaftWrapListener inject faults into the Raft transport.
	RaftDial         func(ctx context.Context, addr string) (net.Conn, error)
	RaftWrapListener func(net.Listener) net.Listener
	// RaftWrapLogStore wraps the Raft log store (the log-append fault point).
	RaftWrapLogStore func(raft.LogStore) raft.LogStore
	// SnapshotThreshold and TrailingLogs force frequent snapshots in tests.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// NoSync turns off fsync everywhere: CPU benchmarks only.
	NoSync bool
	// NoJournal turns the archive journal off (raftfsm Options.NoJournal):
	// only for the benchmark that measures its cost, on every node alike.
	NoJournal bool
}

// Node is one running cluster member.
type Node struct {
	cfg   config.Config
	log   *slog.Logger
	db    *storage.DB
	index *search.Index // full-text index (derived, not replicated)
	fsm   *raftfsm.FSM
	feed  atomic.Pointer[mail.Feed] // set once mail exists; the FSM publishes to it
	raft  *consensus.Node
	pool  *membership.Pool
	// logins throttles and bounds password checks, shared by gossip.
	logins *loginguard.Guard
	router *peer.Router
	// propose is the one proposal path (node/propose).
	propose *propose.Proposer
	// cluster is the membership policy: join, bootstrap, promotion,
	// autopilot, transfer, removal (node/cluster).
	cluster *cluster.Manager
	mail    *mail.Service
	grpc    *grpc.Server
	grpcLn  net.Listener
	// admin serves the admin API on its own listener (admin certificates).
	admin   *grpc.Server
	adminLn net.Listener
	// identity is the node's TLS material; nil with insecure-dev.
	identity *identity.Material
	http     *http.Server
	httpLn   net.Listener

	servers []server // protocol listeners (SMTP, LMTP, IMAP)
	// clientTLS serves STARTTLS, smtps and imaps (protocolTLS).
	clientTLS *tls.Config

	integ   integrity     // integrity.go
	archive archiveGauges // archive.go
	dis     disasterState // disaster.go

	collector    *nodeCollector
	flow         *httpapi.Flow // the console's per-minute mail flow
	console      consoleState  // console.go
	imapSessions atomic.Pointer[func() int]
	// draining is set when Close begins: /readyz turns unready first.
	draining atomic.Bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	fatal  chan error
}

// server is a protocol listener the node starts and stops.
type server interface {
	Serve(net.Listener) error
	Close() error
}

// New opens a node's stores and starts it. It returns once every listener
// is bound; joining the cluster continues in the background (node/cluster).
func New(cfg config.Config, opts Options) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("node", cfg.ID)
	ctx, cancel := context.WithCancel(context.Background())
	// n is never reassigned: the closures and goroutines started below
	// capture it, and a failed start must still be able to close it.
	n := &Node{cfg: cfg, log: log, ctx: ctx, cancel: cancel, fatal: make(chan error, 1), flow: httpapi.NewFlow(nil)}
	started := false
	defer func() {
		if !started {
			n.Close() // a failed start closes what it opened
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	// The durable role and cluster identity (disaster.go); a recovered
	// archive replica runs as a voter.
	n.dis.stateAtStart = hasRaftState(cfg.DataDir)
	id, err := prepareIdentity(&n.cfg, log)
	if err != nil {
		return nil, err
	}
	n.dis.id, cfg = id, n.cfg
	if err := n.openState(opts); err != nil {
		return nil, err
	}
	if err := n.startRaft(opts); err != nil {
		return nil, err
	}

	cutOff := cfg.LeaderlessAfter.Duration
	if cutOff <= 0 {
		cutOff = 2 * n.raft.Profile().Election
	}
	var peerCreds credentials.TransportCredentials
	if n.identity != nil {
		peerCreds = credentials.NewTLS(n.identity.ClientConfig(nil))
	}
	n.router = peer.NewRouter(n.resolveGRPC, peerCreds)
	n.propose = propose.New(propose.Config{
		Raft: n.raft, Forward: n.router, Applied: consensus.NewWaiter(n.raft, n.fsm),
		Timeout: cfg.ApplyTimeout.Duration, LeaderWait: cutOff,
	})
	n.cluster = cluster.New(cluster.Config{
		ID: cfg.ID, RaftAddr: cfg.RaftAddr, Voter: cfg.Role == "voter",
		Join: n.joinAddrs(), BootstrapExpect: cfg.BootstrapExpect, AutopilotDeadAfter: cfg.AutopilotDeadAfter.Duration,
		Raft: n.raft, Gossip: n.pool, Peers: n.router, Logger: log,
		ClusterID: n.ClusterID, OnAdmitted: n.adoptIdentity,
	})
	n.mail = mail.New(n.db, n.propose, n.raft, mail.Options{
		Logger:          log,
		CutOffAfter:     cutOff,
		MaxMessageBytes: cfg.MaxMessageBytes,
		ReadOnly:        cfg.Role == "archive",
	})
	n.feed.Store(n.mail.Feed())
	n.mail.SetIndex(n.index)

	if err := n.startGRPC(); err != nil {
		return nil, err
	}
	if cfg.HTTPAddr != "" {
		var err error
		if n.httpLn, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("node: http listen: %w", err)
		}
		n.http = &http.Server{Handler: httpapi.NewHandler(n, n.consoleOptions()), ReadHeaderTimeout: 10 * time.Second}
		n.goServe("http", func() error { return n.http.Serve(n.httpLn) })
	}

	bridgeHashicorpMetrics(log)
	n.collector = newNodeCollector(n)
	if err := prometheus.DefaultRegisterer.Register(n.collector); err != nil {
		n.log.Warn("node metrics not registered", "err", err)
		n.collector = nil
	}
	n.registerClusterMetrics()

	if err := n.startProtocols(); err != nil {
		return nil, err
	}
	n.cluster.Start()
	n.wg.Add(1)
	go n.disasterLoop()
	n.startIntegrity()
	started = true
	return n, nil
}

// joinAddrs is where the node looks for the gossip pool: --join, then the
// members it knew when it last ran (node/membership's peers file), so that
// a restarted node started without --join finds the others again.
func (n *Node) joinAddrs() []string {
	addrs := slices.Clone(n.cfg.Join)
	for _, a := range n.pool.Remembered() {
		if !slices.Contains(addrs, a) && a != n.cfg.GossipAddr {
			addrs = append(addrs, a)
		}
	}
	return addrs
}

// Run blocks until ctx ends or the state machine hits a fatal error.
func (n *Node) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-n.fatal:
		return fmt.Errorf("node: state machine stopped: %w", err)
	}
}
