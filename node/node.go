package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/httpapi"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/loginguard"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/node/peer"
	"github.com/continuum-mail/continuum/node/search"
	"github.com/continuum-mail/continuum/proto/peerpb"
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
	raft  *consensus.Node
	pool  *membership.Pool
	// logins throttles and bounds password checks, shared by gossip.
	logins *loginguard.Guard
	router *peer.Router
	mail   *mail.Service
	grpc   *grpc.Server
	grpcLn net.Listener
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
// is bound; joining the cluster continues in the background.
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
	var err error
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}

	if err := readQuarantine(cfg.DataDir); err != nil {
		return nil, err
	}
	n.db, err = storage.Open(filepath.Join(cfg.DataDir, "state"), storage.Options{
		Logger: log, NoSync: opts.NoSync,
		OnCorruption: func(err error) { go n.quarantine(err) },
	})
	if err != nil {
		return nil, fmt.Errorf("node: state database: %w; run `continuum node rebuild --data %s` and start the node again to rebuild it from the others", err, cfg.DataDir)
	}
	// The FSM starts applying before the mail service exists; the feed
	// pointer is published once it does.
	var feed atomic.Pointer[mail.Feed]
	// The full-text index is derived data, kept beside the state and never
	// replicated: it follows this node's applies and catches up with the
	// state at start (node/search).
	n.index, err = search.Open(filepath.Join(cfg.DataDir, "index"), n.db, search.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("node: search index: %w", err)
	}
	n.fsm, err = raftfsm.New(n.db, raftfsm.Options{
		Logger: log,
		OnApply: func(index uint64, events []raftfsm.Event) {
			if f := feed.Load(); f != nil {
				f.Publish(index, events)
			}
			n.index.Notify(index, indexEvents(events))
		},
		OnFatal: func(err error) {
			select {
			case n.fatal <- err:
			default:
			}
		},
		OnCheck:   n.onCheck,
		NoJournal: opts.NoJournal,
	})
	if err != nil {
		return nil, fmt.Errorf("node: state machine: %w", err)
	}

	if cfg.Secure() {
		if n.identity, err = loadIdentity(cfg); err != nil {
			return nil, err
		}
	} else {
		log.Warn("INSECURE: no TLS material (insecure-dev): Raft, peer and admin traffic is plaintext and unauthenticated")
	}

	n.raft, err = consensus.Open(consensus.Config{
		ID:                cfg.ID,
		RaftAddr:          cfg.RaftAddr,
		Dir:               cfg.DataDir,
		Profile:           cfg.RaftProfile,
		Bootstrap:         cfg.Bootstrap,
		Voter:             cfg.Role == "voter",
		FSM:               n.fsm,
		Logger:            log,
		Identity:          n.identity,
		Dial:              opts.RaftDial,
		WrapListener:      opts.RaftWrapListener,
		WrapLogStore:      opts.RaftWrapLogStore,
		SnapshotThreshold: firstNonZero(opts.SnapshotThreshold, cfg.RaftSnapshotThreshold),
		TrailingLogs:      firstNonZero(opts.TrailingLogs, cfg.RaftTrailingLogs),
		SnapshotInterval:  cfg.RaftSnapshotInterval.Duration,
		NoSync:            opts.NoSync,
		OnLogCorruption:   func(err error) { go n.quarantine(err) },
	})
	if err != nil {
		return nil, err
	}

	key, err := cfg.GossipKey()
	if err != nil {
		return nil, err
	}
	delay := cfg.LoginFailureDelay.Duration
	n.logins = loginguard.New(loginguard.Config{
		Self: cfg.ID, Max: cfg.MaxLoginFailures, Slots: cfg.MaxConcurrentLogins,
		Delay: delay, MaxDelay: 16 * delay,
		// Set before any login can run: the pool is started just below,
		// the IMAP listener later.
		Send: func(msg []byte) { n.pool.Send(msg) },
	})
	n.pool, err = membership.Start(membership.Config{
		Key:         key,
		KeyringFile: filepath.Join(cfg.DataDir, "gossip-keyring"),
		OnMessage:   n.logins.Receive,
		Meta: membership.Meta{
			ID: cfg.ID, Site: cfg.Site, Role: cfg.Role, Raft: cfg.RaftAddr, GRPC: cfg.GRPCAddr,
			SMTP: cfg.SMTPAddr, LMTP: cfg.LMTPAddr, IMAP: cfg.IMAPAddr, HTTP: cfg.HTTPAddr,
			Expect: cfg.BootstrapExpect,
		},
		GossipAddr: cfg.GossipAddr,
		Profile:    cfg.RaftProfile,
		Logger:     log,
	})
	if err != nil {
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
	n.router = peer.NewRouter(n.raft, n.resolveGRPC, peerCreds, cutOff)
	n.mail = mail.New(n.db, n.router, consensus.NewWaiter(n.raft, n.fsm), n.raft, mail.Options{
		Logger:          log,
		ApplyTimeout:    cfg.ApplyTimeout.Duration,
		CutOffAfter:     cutOff,
		MaxMessageBytes: cfg.MaxMessageBytes,
	})
	feed.Store(n.mail.Feed())
	n.mail.SetIndex(n.index)

	if err := n.startGRPC(); err != nil {
		return nil, err
	}

	if cfg.HTTPAddr != "" {
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

	n.wg.Add(2)
	go n.joinLoop()
	go n.promoteLoop()
	n.startIntegrity()
	started = true
	return n, nil
}

func (n *Node) goServe(name string, serve func() error) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, net.ErrClosed) {
			n.log.Error("listener stopped", "listener", name, "err", err)
		}
	}()
}

// Mail returns the node's mail service.
func (n *Node) Mail() *mail.Service { return n.mail }

// Raft returns the node's consensus member.
func (n *Node) Raft() *consensus.Node { return n.raft }

// FSM returns the node's state machine.
func (n *Node) FSM() *raftfsm.FSM { return n.fsm }

// DB returns the node's state database.
func (n *Node) DB() *storage.DB { return n.db }

// Config returns the node's configuration.
func (n *Node) Config() config.Config { return n.cfg }

// Members returns the gossip view.
func (n *Node) Members() []membership.Member { return n.pool.Members() }

// Logins is the node's login guard (throttle and check bound).
func (n *Node) Logins() *loginguard.Guard { return n.logins }

// Ready reports whether the node has a leader and has applied what it knows
// to be committed: what a load balancer should route to.
func (n *Node) Ready() (bool, string) {
	if q := n.Quarantined(); q != "" {
		return false, "quarantined: " + q
	}
	if n.draining.Load() {
		return false, "shutting down"
	}
	if n.raft.Fresh() {
		return false, "not admitted to the cluster yet"
	}
	if id, _ := n.raft.Leader(); id == "" {
		return false, "no leader"
	}
	// A follower that has not heard from its leader for an election timeout
	// is cut off even though raft has not given up on the leader yet (its
	// randomized timer may run up to twice the timeout).
	if !n.raft.IsLeader() {
		if since := time.Since(n.raft.LastContact()); since > n.raft.Profile().Election {
			return false, fmt.Sprintf("no contact with the leader for %v", since.Round(time.Millisecond))
		}
	}
	if n.mail.CutOff() {
		return false, "cut off"
	}
	if lag := n.raft.CommitIndex() - min(n.raft.CommitIndex(), n.fsm.AppliedIndex()); lag > 1000 {
		return false, fmt.Sprintf("applying: %d entries behind", lag)
	}
	return true, "ready"
}

// Info is this node's view, served by the Peer.Info RPC and /status.
func (n *Node) Info() *peerpb.InfoResponse {
	leader, _ := n.raft.Leader()
	lc := int64(-1)
	if n.raft.IsLeader() {
		lc = 0
	} else if t := n.raft.LastContact(); !t.IsZero() {
		lc = time.Since(t).Milliseconds()
	}
	in := &peerpb.InfoResponse{
		Id: n.cfg.ID, Site: n.cfg.Site, Role: n.cfg.Role, State: n.raft.State(), Term: n.raft.Term(),
		AppliedIndex: n.fsm.AppliedIndex(), CommitIndex: n.raft.CommitIndex(), LastIndex: n.raft.LastIndex(),
		LeaderId: leader, LastContactMs: lc,
		GrpcAddr: n.cfg.GRPCAddr, SmtpAddr: n.cfg.SMTPAddr, LmtpAddr: n.cfg.LMTPAddr, ImapAddr: n.cfg.IMAPAddr,
		HttpAddr: n.cfg.HTTPAddr, RaftAddr: n.cfg.RaftAddr,
	}
	n.integrityInfo(in)
	return in
}

func (n *Node) resolveGRPC(id string) (string, bool) {
	if id == n.cfg.ID {
		return n.cfg.GRPCAddr, true
	}
	m, ok := n.pool.Lookup(id)
	if !ok || m.GRPC == "" {
		return "", false
	}
	return m.GRPC, true
}

// joinLoop joins the gossip pool, then asks the cluster to add this node
// to the Raft configuration, until both have happened or the node stops.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	expect := n.cfg.BootstrapExpect > 0 && n.raft.Fresh()
	if len(n.cfg.Join) == 0 && !expect {
		return
	}
	backoff := 200 * time.Millisecond
	wait := func() bool {
		select {
		case <-n.ctx.Done():
			return false
		case <-time.After(backoff):
			backoff = min(2*backoff, 5*time.Second)
			return true
		}
	}
	for len(n.cfg.Join) > 0 {
		if _, err := n.pool.Join(n.cfg.Join); err == nil {
			break
		} else {
			n.log.Warn("gossip join failed; retrying", "component", "membership", "err", err)
		}
		if !wait() {
			return
		}
	}
	backoff = 200 * time.Millisecond
	lastWhy := ""
	for {
		if !n.raft.Fresh() && n.inConfiguration() {
			return
		}
		if expect {
			switch done, why := n.bootstrapExpect(); {
			case done:
				return
			case why != "":
				// Waiting for the other first nodes: poll fast, a new
				// cluster should form as soon as they see each other.
				if why != lastWhy {
					n.log.Info("bootstrap-expect: waiting", "expect", n.cfg.BootstrapExpect, "why", why)
					lastWhy = why
				}
				backoff = 200 * time.Millisecond
				if !wait() {
					return
				}
				continue
			}
			// The cluster exists already: join it as any later node does.
		}
		for _, m := range n.pool.Members() {
			if m.ID == n.cfg.ID || !m.Alive || m.GRPC == "" {
				continue
			}
			ctx, cancel := context.WithTimeout(n.ctx, 5*time.Second)
			fresh := n.raft.Fresh()
			err := n.router.Join(ctx, m.GRPC, &peerpb.JoinRequest{Id: n.cfg.ID, RaftAddr: n.cfg.RaftAddr, Voter: n.cfg.Role == "voter", Fresh: fresh})
			cancel()
			if err == nil {
				n.log.Info("joined the cluster", "via", m.ID, "fresh", fresh)
				n.raft.Admit()
				return
			}
			if status.Code(err) == codes.AlreadyExists {
				n.log.Error("join refused", "via", m.ID, "err", err)
			} else {
				n.log.Debug("join refused", "via", m.ID, "err", err)
			}
		}
		if !wait() {
			return
		}
	}
}

// bootstrapExpect decides, for a node with an empty data directory and
// --bootstrap-expect N, whether to form the new cluster now. It does when
// gossip shows exactly N live nodes with the same N (itself included), every
// one of them answers, and none has Raft state beyond its own bootstrap
// entry (index 1): then all N bootstrap the identical configuration, N
// voters sorted by ID, and the cluster never passes through a two-voter
// window. It reports done once it has bootstrapped.
//
// It returns done false and a reason to wait while the N have not found
// each other yet, and done false with no reason when a cluster exists
// already (some member is past index 1: it has elected a leader and
// written). The node then joins as a fresh node: the leader adds it as a
// non-voter and promotes it once it has caught up. That is also the safe
// path for a wiped voter restarted with the same flags: it must not vote
// again with an empty log (consensus/DESIGN.md).
func (n *Node) bootstrapExpect() (done bool, why string) {
	want := n.cfg.BootstrapExpect
	var candidates []consensus.Peer
	var others []membership.Member
	for _, m := range n.pool.Members() {
		if !m.Alive {
			continue
		}
		if m.ID != n.cfg.ID {
			others = append(others, m)
		}
		if m.Expect == want && m.Role == "voter" && m.Raft != "" {
			candidates = append(candidates, consensus.Peer{ID: m.ID, Addr: m.Raft})
		}
	}
	if !slices.ContainsFunc(candidates, func(p consensus.Peer) bool { return p.ID == n.cfg.ID }) {
		candidates = append(candidates, consensus.Peer{ID: n.cfg.ID, Addr: n.cfg.RaftAddr})
	}
	// Ask every other live member for its Raft progress, in parallel.
	infos := make([]*peerpb.InfoResponse, len(others))
	var wg sync.WaitGroup
	for i, m := range others {
		if m.GRPC == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, time.Second)
			defer cancel()
			if in, err := n.router.InfoAt(ctx, m.GRPC); err == nil {
				infos[i] = in
			}
		}()
	}
	wg.Wait()
	for _, in := range infos {
		if in != nil && in.LastIndex > 1 {
			return false, ""
		}
	}
	if len(candidates) < want {
		return false, fmt.Sprintf("%d of %d nodes with bootstrap-expect %d seen", len(candidates), want, want)
	}
	if len(candidates) > want {
		return false, fmt.Sprintf("%d nodes with bootstrap-expect %d seen, more than %d: start exactly %d that way, the others without it", len(candidates), want, want, want)
	}
	for i, m := range others {
		if infos[i] == nil && slices.ContainsFunc(candidates, func(p consensus.Peer) bool { return p.ID == m.ID }) {
			return false, m.ID + " does not answer yet"
		}
	}
	if err := n.raft.BootstrapWith(candidates); err != nil {
		return false, err.Error()
	}
	return true, ""
}

func (n *Node) inConfiguration() bool {
	servers, err := n.raft.Servers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if string(s.ID) == n.cfg.ID {
			return true
		}
	}
	return false
}

// promoteLoop runs on every node but acts only on the leader: a non-voter
// whose gossip role is "voter" is promoted once it has caught up with the
// leader's commit index, so a new node never votes with an empty log.
func (n *Node) promoteLoop() {
	defer n.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		if !n.raft.IsLeader() {
			continue
		}
		servers, err := n.raft.Servers()
		if err != nil {
			continue
		}
		for _, s := range servers {
			if s.Suffrage == raft.Voter {
				continue
			}
			m, ok := n.pool.Lookup(string(s.ID))
			if !ok || !m.Alive || m.Role != "voter" {
				continue
			}
			ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
			info, err := n.router.Info(ctx, string(s.ID))
			cancel()
			if err != nil || info.AppliedIndex+64 < n.raft.CommitIndex() {
				continue
			}
			if err := n.raft.AddServer(string(s.ID), string(s.Address), true); err != nil {
				n.log.Warn("promotion failed", "id", s.ID, "err", err)
				continue
			}
			n.log.Info("promoted to voter", "id", s.ID)
		}
		n.autopilot(servers)
	}
}

// autopilot removes one voter that gossip has seen dead for longer than
// cfg.AutopilotDeadAfter (0: never), and only when that is safe: at least
// MinAutopilotVoters voters remain, and the healthy voters still form a
// quorum of the smaller configuration. A gossip "dead" alone is never
// enough: the voter must also be unreachable over gRPC, so a forged or
// mistaken gossip message cannot shrink the cluster.
func (n *Node) autopilot(servers []raft.Server) {
	after := n.cfg.AutopilotDeadAfter.Duration
	if after <= 0 {
		return
	}
	var voters, healthy int
	var victim *raft.Server
	for i, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) == n.cfg.ID {
			healthy++
			continue
		}
		m, ok := n.pool.Lookup(string(s.ID))
		if ok && !m.Alive && time.Since(m.Since) > after {
			ctx, cancel := context.WithTimeout(n.ctx, time.Second)
			_, err := n.router.Info(ctx, string(s.ID))
			cancel()
			if err != nil {
				if victim == nil {
					victim = &servers[i]
				}
				continue
			}
		}
		if ok && m.Alive {
			healthy++
		}
	}
	if victim == nil || voters-1 < MinAutopilotVoters || healthy < (voters-1)/2+1 {
		return
	}
	if err := n.raft.RemoveServer(string(victim.ID)); err != nil {
		n.log.Warn("autopilot: removing dead voter failed", "id", victim.ID, "err", err)
		return
	}
	n.log.Warn("autopilot: removed dead voter", "id", victim.ID, "dead_after", after, "voters_left", voters-1)
}

// MinAutopilotVoters is the smallest configuration autopilot shrinks to:
// below three voters, one more loss stops writes.
const MinAutopilotVoters = 3

// Run blocks until ctx ends or the state machine hits a fatal error.
func (n *Node) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-n.fatal:
		return fmt.Errorf("node: state machine stopped: %w", err)
	}
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
		if n.raft != nil && n.raft.IsLeader() {
			if terr := n.raft.TransferLeadership("", ""); terr != nil {
				n.log.Warn("leadership transfer on shutdown failed", "err", terr)
			} else {
				n.log.Info("leadership handed over on shutdown")
			}
		}
		if n.pool != nil {
			n.pool.Leave(time.Second)
		}
		n.cancel()
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

// indexEvents keeps what the index needs of the events: which mailboxes
// changed. Flag changes do not change text.
func indexEvents(events []raftfsm.Event) []search.Event {
	var out []search.Event
	for _, e := range events {
		if e.Kind != raftfsm.FlagsChanged && e.MailboxID != 0 {
			out = append(out, search.Event{UserID: e.UserID, MailboxID: e.MailboxID})
		}
	}
	return out
}

// Index returns the node's full-text index.
func (n *Node) Index() *search.Index { return n.index }

// clusterView adapts Node to admin.Cluster.
type clusterView Node

func (c *clusterView) Servers() ([]admin.Server, error) {
	servers, err := c.raft.Servers()
	if err != nil {
		return nil, err
	}
	out := make([]admin.Server, len(servers))
	for i, s := range servers {
		out[i] = admin.Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter}
	}
	return out, nil
}

func (c *clusterView) Info(ctx context.Context, id string) (*peerpb.InfoResponse, error) {
	if id == c.cfg.ID {
		return (*Node)(c).Info(), nil
	}
	return c.router.Info(ctx, id)
}

func (c *clusterView) Local() *peerpb.InfoResponse { return (*Node)(c).Info() }

func (c *clusterView) GossipKeys(ctx context.Context, id string, req *peerpb.GossipKeysRequest) (*peerpb.GossipKeysResponse, error) {
	if id == c.cfg.ID {
		return (*Node)(c).gossipKeys(req)
	}
	return c.router.GossipKeys(ctx, id, req)
}

// gossipKeys runs one keyring operation on this node's gossip pool.
func (n *Node) gossipKeys(req *peerpb.GossipKeysRequest) (*peerpb.GossipKeysResponse, error) {
	var err error
	switch req.Op {
	case "list":
	case "install":
		err = n.pool.InstallKey(req.Key)
	case "use":
		err = n.pool.UseKey(req.Key)
	case "remove":
		err = n.pool.RemoveKey(req.Key)
	default:
		return nil, fmt.Errorf("gossip keys: unknown operation %q (want list, install, use or remove)", req.Op)
	}
	if err != nil {
		return nil, err
	}
	primary, all, err := n.pool.Keys()
	if err != nil {
		return nil, err
	}
	return &peerpb.GossipKeysResponse{Primary: primary, Keys: all}, nil
}

func (c *clusterView) ProposeCheck(ctx context.Context, by string) (uint64, uint64, error) {
	return (*Node)(c).ProposeCheck(ctx, by)
}

func firstNonZero(a, b uint64) uint64 {
	if a != 0 {
		return a
	}
	return b
}
