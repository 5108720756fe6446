package consensus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/logbridge"
	"github.com/continuum-mail/continuum/storage/raftlog"
	"github.com/continuum-mail/continuum/storage/scrub"
)

// Errors a proposer maps to protocol replies. ErrNotLeader and ErrNoLeader
// mean nothing was proposed; ErrUnknownOutcome means the command may or may
// not commit, so only a dedupe-safe retry is allowed.
var (
	ErrNotLeader      = errors.New("consensus: not leader")
	ErrNoLeader       = errors.New("consensus: no leader")
	ErrUnknownOutcome = errors.New("consensus: outcome unknown")
	ErrShutdown       = errors.New("consensus: shut down")
	// ErrStorageFull means the leader could not append the entry to its
	// log because its disk is full: nothing was committed.
	ErrStorageFull = errors.New("consensus: storage full")
)

// Profile is a set of Raft timeouts.
type Profile struct {
	Heartbeat, Election, LeaderLease, Commit time.Duration
}

// MaxEntryBytes is about the largest log entry the node proposes: the
// FSM keeps message data to raftfsm.MaxChunkBytes (1 MiB) per entry, plus
// a small envelope (node's TestEntryBound checks the two agree).
const MaxEntryBytes = 1<<20 + 4<<10

// AppendBudget bounds the entry bytes raft holds for one batch:
// one AppendEntries RPC (the leader reads it from its log per follower,
// the follower decodes it and writes it in one log batch) and one FSM
// batch. hashicorp/raft v1.8 bounds these by entry count only
// (Config.MaxAppendEntries, no byte limit), so the count follows from
// the budget and the largest entry: 15 entries, < 16 MiB per RPC. At the
// former 512 a lagging follower was sent, and decoded, up to 512 MiB of
// 1 MiB chunk entries in one RPC (docs/notes/large-messages.md, round 3).
const AppendBudget = 16 << 20

// MaxAppendEntries is raft's batch size: AppendBudget / MaxEntryBytes.
const MaxAppendEntries = AppendBudget / MaxEntryBytes

// Profiles by name: "local" for a cluster on one machine, "lan" for one data
// centre, "wan" for sites 20–150 ms apart.
var Profiles = map[string]Profile{
	"local": {Heartbeat: 400 * time.Millisecond, Election: 400 * time.Millisecond, LeaderLease: 200 * time.Millisecond, Commit: 10 * time.Millisecond},
	"lan":   {Heartbeat: time.Second, Election: time.Second, LeaderLease: 500 * time.Millisecond, Commit: 25 * time.Millisecond},
	"wan":   {Heartbeat: 2500 * time.Millisecond, Election: 2500 * time.Millisecond, LeaderLease: 1200 * time.Millisecond, Commit: 50 * time.Millisecond},
}

// Config configures a Raft member.
type Config struct {
	ID        string
	RaftAddr  string // listen and advertised address
	Dir       string // holds raft-log/ and snapshots/
	Profile   string
	Bootstrap bool
	Voter     bool
	FSM       raft.BatchingFSM
	Logger    *slog.Logger
	// Identity, when set, makes the Raft transport mutual TLS 1.3 with the
	// cluster CA: a connection is accepted (and a dialed server trusted)
	// only with a node certificate naming a member of the current
	// configuration (any node, while this node knows no configuration), and
	// every incoming RPC must name that same node as its sender.
	Identity *identity.Material
	// ServerTLS and ClientTLS override the TLS configurations Identity
	// would build (tests). Nil, with no Identity, means plain TCP.
	ServerTLS, ClientTLS *tls.Config
	// Dial, when set, replaces net.Dialer for outgoing Raft connections
	// (the test harness injects faults here).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// WrapListener, when set, wraps the Raft listener (fault injection).
	WrapListener func(net.Listener) net.Listener
	// WrapLogStore, when set, wraps the Raft log store: the "log append"
	// fault point (a test makes appends fail as a full disk would). The
	// wrapper must keep raft.MonotonicLogStore.
	WrapLogStore func(raft.LogStore) raft.LogStore
	// SnapshotThreshold and TrailingLogs override the defaults (tests force
	// frequent snapshots with small values).
	SnapshotThreshold uint64
	TrailingLogs      uint64
	SnapshotInterval  time.Duration
	// NoSync disables fsync of the Raft log: benchmarks of CPU paths only.
	NoSync bool
	// OnLogCorruption is called once when the Raft log's database finds a
	// damaged block while open (storage/raftlog Options.OnCorruption).
	OnLogCorruption func(error)
}

// Node owns one *raft.Raft and its stores.
type Node struct {
	cfg   Config
	log   *slog.Logger
	raft  *raft.Raft
	logs  *raftlog.Store
	trans *raft.NetworkTransport
	// hb is trans as raft sees it: the heartbeat fast path behind a guard.
	hb      *guardedHeartbeats
	stream  *streamLayer
	profile Profile
	// fresh: Open found no Raft state and did not bootstrap; the transport
	// is held until Admit.
	fresh bool

	obsCh    chan raft.Observation
	observer *raft.Observer
	done     chan struct{}
	wg       sync.WaitGroup
	// publish holds one pending PublishCommit request (publish.go);
	// barriers counts the barrier entries appended for them.
	publish  chan struct{}
	barriers atomic.Uint64

	// leaderlessSince is the unix nano time the node last lost its leader,
	// 0 while it has one.
	leaderlessSince atomic.Int64
	leaderChanges   atomic.Uint64
	lastStamp       atomic.Int64
	// termCommitted is the latest term in which this node, as leader, saw
	// an entry of its own term committed (termReady); termBarrier is the
	// barrier in flight for it, shared by every read that waits.
	termCommitted atomic.Uint64
	termMu        sync.Mutex
	termBarrier   *termBarrier
	// ready is raft once NewRaft has returned: the transport's TLS checks
	// run on its goroutines and may start before.
	ready atomic.Pointer[raft.Raft]
}

// Open starts Raft. It bootstraps a one-node cluster when cfg.Bootstrap is
// set and the log is empty.
func Open(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	prof, ok := Profiles[cfg.Profile]
	if !ok {
		return nil, fmt.Errorf("consensus: unknown profile %q", cfg.Profile)
	}
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "raft"), profile: prof, done: make(chan struct{}), publish: make(chan struct{}, 1)}
	n.leaderlessSince.Store(time.Now().UnixNano())

	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	logs, err := raftlog.Open(filepath.Join(cfg.Dir, "raft-log"), raftlog.Options{Logger: cfg.Logger, NoSync: cfg.NoSync, OnCorruption: cfg.OnLogCorruption})
	if err != nil {
		return nil, fmt.Errorf("consensus: open log: %w", err)
	}
	if err := logs.Verify(); err != nil {
		logs.Close()
		return nil, fmt.Errorf("consensus: the raft log in %s is damaged (%w); run `continuum node rebuild --data %s` and start the node again to rebuild it from the others", cfg.Dir, err, cfg.Dir)
	}
	n.logs = logs
	hl := logbridge.HCLog(cfg.Logger, "raft")
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.Dir, "snapshots"), 2, hl)
	if err != nil {
		logs.Close()
		return nil, fmt.Errorf("consensus: snapshot store: %w", err)
	}
	if cfg.Identity != nil {
		if cfg.ServerTLS == nil {
			cfg.ServerTLS = cfg.Identity.ServerConfig(identity.RoleNode, n.allowPeer)
		}
		if cfg.ClientTLS == nil {
			cfg.ClientTLS = cfg.Identity.ClientConfig(n.allowPeer)
		}
	}
	stream, err := newStreamLayer(cfg)
	if err != nil {
		logs.Close()
		return nil, err
	}
	n.stream = stream
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		stream.Close()
		logs.Close()
		return nil, fmt.Errorf("consensus: %w", err)
	}
	if !has && !cfg.Bootstrap {
		n.fresh = true
		stream.held.Store(true)
	}
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 4,
		// No pipelined AppendEntries: hashicorp/raft v1.8's pipeline can
		// deadlock when the peer answers with a newer term (its decoder
		// blocks on a result nobody reads, and shutdown then waits for
		// ever; seen in node/clustertest F4/F5). hashicorp measured little
		// gain from pipelining with batching (raft#541); 1 skips that code.
		MaxRPCsInFlight: 1,
		Timeout:         10 * time.Second,
		Logger:          hl,
	})
	n.hb = newGuardedHeartbeats(n.trans, &n.ready)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hl
	rc.HeartbeatTimeout = prof.Heartbeat
	rc.ElectionTimeout = prof.Election
	rc.LeaderLeaseTimeout = prof.LeaderLease
	rc.CommitTimeout = prof.Commit
	// Group commit: many sessions propose at once, raft batches them into
	// one log write and one FSM batch — up to MaxAppendEntries, which also
	// caps one AppendEntries RPC to a follower that is behind and one FSM
	// batch, and so the bytes in flight per follower (see AppendBudget).
	rc.MaxAppendEntries = MaxAppendEntries
	rc.BatchApplyCh = true
	// The FSM is persistent (meta/applied in the state database): it skips
	// replayed entries instead of restoring a snapshot on every start.
	rc.NoSnapshotRestoreOnStart = true
	rc.SnapshotThreshold = 8192
	rc.TrailingLogs = 10240
	rc.SnapshotInterval = 2 * time.Minute
	if cfg.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = cfg.SnapshotThreshold
	}
	if cfg.TrailingLogs > 0 {
		rc.TrailingLogs = cfg.TrailingLogs
	}
	if cfg.SnapshotInterval > 0 {
		rc.SnapshotInterval = cfg.SnapshotInterval
	}
	if err := raft.ValidateConfig(rc); err != nil {
		n.closeStores()
		return nil, fmt.Errorf("consensus: %w", err)
	}

	if cfg.Bootstrap {
		if !has {
			conf := raft.Configuration{Servers: []raft.Server{{ID: rc.LocalID, Address: n.trans.LocalAddr(), Suffrage: raft.Voter}}}
			if err := raft.BootstrapCluster(rc, logs, logs, snaps, n.trans, conf); err != nil {
				n.closeStores()
				return nil, fmt.Errorf("consensus: bootstrap: %w", err)
			}
			n.log.Info("bootstrapped a new cluster", "id", cfg.ID)
		}
	}

	var logStore raft.LogStore = logs
	if cfg.WrapLogStore != nil {
		logStore = cfg.WrapLogStore(logs)
	}
	r, err := raft.NewRaft(rc, cfg.FSM, logStore, logs, snaps, n.hb)
	if err != nil {
		n.closeStores()
		return nil, fmt.Errorf("consensus: %w", err)
	}
	n.raft = r
	n.ready.Store(r)
	n.obsCh = make(chan raft.Observation, 64)
	n.observer = raft.NewObserver(n.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(n.observer)
	n.wg.Add(3)
	go n.watchLeader()
	go n.publishLoop()
	go n.watchLogSize(raft.ReloadableConfig{TrailingLogs: rc.TrailingLogs, SnapshotThreshold: rc.SnapshotThreshold, SnapshotInterval: rc.SnapshotInterval, HeartbeatTimeout: rc.HeartbeatTimeout, ElectionTimeout: rc.ElectionTimeout})
	return n, nil
}

func (n *Node) closeStores() {
	if n.hb != nil {
		n.hb.Close()
	}
	n.logs.Close()
}

// watchLeader records when the node loses and regains a leader, for the
// cut-off rule (SMTP 421, IMAP read-only).
func (n *Node) watchLeader() {
	defer n.wg.Done()
	last := "" // the previous leader's ID
	for {
		select {
		case <-n.done:
			return
		case o := <-n.obsCh:
			lo := o.Data.(raft.LeaderObservation)
			if lo.LeaderID == "" {
				n.leaderlessSince.CompareAndSwap(0, n.lostContactAt(last).UnixNano())
			} else {
				n.leaderlessSince.Store(0)
				n.leaderChanges.Add(1)
				if string(lo.LeaderID) == n.cfg.ID {
					// Commit an entry of the new term now, so the
					// first read of the term need not wait for it.
					go func() {
						ctx, cancel := context.WithTimeout(context.Background(), n.profile.LeaderLease*10)
						defer cancel()
						_ = n.termReady(ctx)
					}()
				}
			}
			last = string(lo.LeaderID)
			n.log.Info("leader changed", "leader", string(lo.LeaderID), "addr", string(lo.LeaderAddr))
		}
	}
}

// lostContactAt estimates when this node last knew a working leader, at
// the moment it learns it has none: the cut-off bound counts from there,
// not from the moment Raft noticed. A leader steps down only after it has
// failed to reach a quorum for the leader lease; a follower's last contact
// is the last message it had from the leader.
func (n *Node) lostContactAt(lastLeader string) time.Time {
	now := time.Now()
	if lastLeader == n.cfg.ID {
		return now.Add(-n.profile.LeaderLease)
	}
	if lc := n.raft.LastContact(); !lc.IsZero() && lc.Before(now) {
		return lc
	}
	return now
}

// Fresh reports whether this node started with no Raft state (a new or
// wiped data directory) and has not been admitted yet: it must join, saying
// so, before it takes part in Raft.
func (n *Node) Fresh() bool { return n.fresh && n.stream.held.Load() }

// Admit opens the Raft transport of a fresh node once the leader has
// accepted its join.
func (n *Node) Admit() {
	if n.stream.held.CompareAndSwap(true, false) {
		n.log.Info("admitted by the leader; raft transport open")
	}
}

// Peer is a voter of a first configuration: its ID and Raft address.
type Peer struct{ ID, Addr string }

// BootstrapWith forms a new cluster whose first configuration holds every
// peer as a voter, and opens the transport (--bootstrap-expect). Every
// node of the new cluster calls it with the same peers, in any order:
// hashicorp/raft accepts the same configuration bootstrapped on each
// server, and any of them can then be elected. A node that has Raft state
// already is left as it is (raft.ErrCantBootstrap is not an error here).
func (n *Node) BootstrapWith(peers []Peer) error {
	peers = slices.Clone(peers)
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.ID, b.ID) })
	conf := raft.Configuration{}
	for _, p := range peers {
		conf.Servers = append(conf.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: raft.Voter})
	}
	if err := n.raft.BootstrapCluster(conf).Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("consensus: bootstrap: %w", err)
	}
	n.log.Info("bootstrapped a new cluster", "voters", len(peers), "configuration", fmt.Sprint(peers))
	n.Admit()
	return nil
}

// Raft returns the underlying *raft.Raft for membership and status code in
// this module (node, node/peer, node/admin). Frontends never call it.
func (n *Node) Raft() *raft.Raft { return n.raft }

// ID returns this node's server ID.
func (n *Node) ID() string { return n.cfg.ID }

// Profile returns the timing profile in use.
func (n *Node) Profile() Profile { return n.profile }

// IsLeader reports whether this node is the leader now.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// Leader returns the leader's ID and Raft address, empty when unknown.
func (n *Node) Leader() (id, addr string) {
	a, i := n.raft.LeaderWithID()
	return string(i), string(a)
}

// LeaderlessFor returns how long the node has had no known leader; 0 while
// it has one.
func (n *Node) LeaderlessFor() time.Duration {
	if _, id := n.raft.LeaderWithID(); id != "" {
		return 0
	}
	since := n.leaderlessSince.Load()
	if since == 0 {
		// The observer has not caught up yet; count from now.
		n.leaderlessSince.CompareAndSwap(0, time.Now().UnixNano())
		return 0
	}
	return time.Since(time.Unix(0, since))
}

// LeaderChanges counts leader observations since start.
func (n *Node) LeaderChanges() uint64 { return n.leaderChanges.Load() }

// CommitIndex returns the local commit index.
func (n *Node) CommitIndex() uint64 { return n.raft.CommitIndex() }

// LastIndex returns the last log index.
func (n *Node) LastIndex() uint64 { return n.raft.LastIndex() }

// Term returns the current term.
func (n *Node) Term() uint64 {
	var t uint64
	fmt.Sscan(n.raft.Stats()["term"], &t)
	return t
}

// State returns leader, follower, candidate or shutdown.
func (n *Node) State() string {
	switch n.raft.State() {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	default:
		return "shutdown"
	}
}

// LastContact is the last time this node heard from the leader.
func (n *Node) LastContact() time.Time { return n.raft.LastContact() }

type enqueuedKey struct{}

// WithEnqueued returns a context that makes Apply call fn once it has
// handed the entry to raft's queue on this node, before it commits (or
// fails). Entries handed over one after the other take log indexes in that
// order if they commit: a proposer that waits for fn before proposing its
// next entry keeps its entries in order while several are in flight
// (continuum import). fn is not called when Apply refused the entry first
// (not the leader), and it may be called once per attempt. Such a proposal
// is never forwarded (node/propose): one forwarded to another leader could
// commit before an entry queued here earlier whose fate is still unknown.
func WithEnqueued(ctx context.Context, fn func()) context.Context {
	return context.WithValue(ctx, enqueuedKey{}, fn)
}

// Ordered says ctx carries WithEnqueued: the proposal must be queued on
// this node or fail with ErrNotLeader.
func Ordered(ctx context.Context) bool {
	_, ok := ctx.Value(enqueuedKey{}).(func())
	return ok
}

// Apply proposes data on this node, which must be the leader. It returns the
// FSM's response and the log index once the entry is committed on a quorum
// and applied here. A context that ends first yields ErrUnknownOutcome: the
// entry may still commit.
func (n *Node) Apply(ctx context.Context, data []byte) (any, uint64, error) {
	if n.raft.State() != raft.Leader {
		return nil, 0, ErrNotLeader
	}
	timeout := 10 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
		if timeout <= 0 {
			return nil, 0, ctx.Err()
		}
	}
	start := time.Now()
	f := n.raft.Apply(data, timeout)
	if fn, ok := ctx.Value(enqueuedKey{}).(func()); ok && time.Since(start) < timeout && n.raft.State() != raft.Shutdown {
		// Handed over: raft refuses at once only after the whole timeout
		// (ErrEnqueueTimeout) or when shut down.
		fn()
	}
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		switch {
		case err == nil:
			applySeconds.Observe(time.Since(start).Seconds())
			return f.Response(), f.Index(), nil
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
			// Refused before it was appended to the log: nothing proposed.
			return nil, 0, ErrNotLeader
		case errors.Is(err, raft.ErrEnqueueTimeout):
			return nil, 0, fmt.Errorf("%w: %v", ErrNoLeader, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return nil, 0, fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
		case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
			// The leader stores an entry before it sends it to anyone, so
			// an entry its own log refused cannot commit.
			return nil, 0, fmt.Errorf("%w: %v", ErrStorageFull, err)
		default:
			// ErrLeadershipLost and friends: the entry may commit under
			// the next leader.
			return nil, 0, fmt.Errorf("%w: %v", ErrUnknownOutcome, err)
		}
	case <-ctx.Done():
		return nil, 0, fmt.Errorf("%w: %v", ErrUnknownOutcome, ctx.Err())
	case <-n.done:
		return nil, 0, ErrUnknownOutcome
	}
}

// LogMemory reports the Raft log database's block cache and memtable
// bytes (raftlog.Store.Memory).
func (n *Node) LogMemory() (cache, memtables int64) { return n.logs.Memory() }

// Stamp returns a log time for a command proposed now: wall-clock time, but
// never lower than the last stamp this node gave, so log time is monotone
// under one leader (the FSM also keeps it monotone across leaders).
func (n *Node) Stamp() int64 {
	for {
		now := time.Now().UnixNano()
		last := n.lastStamp.Load()
		if now <= last {
			now = last + 1
		}
		if n.lastStamp.CompareAndSwap(last, now) {
			return now
		}
	}
}

// VerifyLeader confirms with a quorum that this node is still the leader and
// returns the commit index a linearizable read must wait for.
func (n *Node) VerifyLeader(ctx context.Context) (uint64, error) {
	if n.raft.State() != raft.Leader {
		return 0, ErrNotLeader
	}
	if err := n.termReady(ctx); err != nil {
		return 0, err
	}
	// Read the commit index before the round of heartbeats: whatever was
	// committed before the read arrived is at or below it.
	idx := n.raft.CommitIndex()
	f := n.raft.VerifyLeader()
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return idx, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// termReady returns once this leader has committed an entry of its own
// term, waiting for a barrier if it has not yet.
//
// A node just elected does not know how far its predecessor committed: a
// follower learns the commit index only with the leader's next
// AppendEntries, so an entry the old leader committed (and acknowledged to
// a client) can sit in the new leader's log above its commit index. Its
// commit index passes that entry only when an entry of the new term
// commits (Raft §5.4.2; the read-only rule of §8). Until then CommitIndex
// is no read index: a read at it could miss an acknowledged write (seen in
// F7: a SELECT 1.2 s after the leader was killed showed 619 of 620
// acknowledged messages). hashicorp/raft appends a no-op on election but
// does not say when it commits, so the first read of a term waits for a
// barrier of its own; later reads in the term pay nothing.
func (n *Node) termReady(ctx context.Context) error {
	term := n.raft.CurrentTerm()
	if n.termCommitted.Load() >= term {
		return nil
	}
	tb := n.startTermBarrier(term)
	select {
	case <-tb.done:
		if tb.err != nil {
			return fmt.Errorf("%w: no entry of term %d committed yet: %v", ErrNotLeader, term, tb.err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// termBarrier is one barrier appended to commit an entry of term.
type termBarrier struct {
	term uint64
	done chan struct{}
	err  error // set before done is closed
}

// startTermBarrier returns the barrier for term, appending one unless one
// is in flight or has succeeded: however many reads arrive right after an
// election, the term costs one log entry.
func (n *Node) startTermBarrier(term uint64) *termBarrier {
	n.termMu.Lock()
	defer n.termMu.Unlock()
	if tb := n.termBarrier; tb != nil && tb.term == term {
		select {
		case <-tb.done:
			if tb.err == nil {
				return tb
			}
			// Failed (an election in between, a shutdown): try again.
		default:
			return tb
		}
	}
	tb := &termBarrier{term: term, done: make(chan struct{})}
	n.termBarrier = tb
	f := n.raft.Barrier(0)
	go func() {
		tb.err = f.Error()
		if tb.err == nil {
			// Committed while this node led; if it led in term, every
			// entry of an earlier term is at or below the commit index.
			for {
				cur := n.termCommitted.Load()
				if cur >= term || n.termCommitted.CompareAndSwap(cur, term) {
					break
				}
			}
		}
		close(tb.done)
	}()
	return tb
}

// IsMember reports whether id is in the latest Raft configuration (voter
// or not).
func (n *Node) IsMember(id string) bool {
	r := n.ready.Load()
	if r == nil {
		return false
	}
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// allowPeer is the Raft transport's admission rule for a verified node
// certificate: a member of the latest configuration; or any node while this
// one knows no configuration (a new node learns it from the leader's first
// AppendEntries, and holds its transport closed until admitted anyway).
func (n *Node) allowPeer(id identity.Identity) error {
	r := n.ready.Load()
	if r == nil {
		return errors.New("consensus: starting")
	}
	servers := r.GetConfiguration().Configuration().Servers
	if len(servers) == 0 {
		return nil
	}
	for _, s := range servers {
		if string(s.ID) == id.Name {
			return nil
		}
	}
	return fmt.Errorf("consensus: node %s is not in the raft configuration", id.Name)
}

// Servers returns the current Raft configuration.
func (n *Node) Servers() ([]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// AddServer adds (or re-adds) a server as voter or non-voter. Leader only.
func (n *Node) AddServer(id, addr string, voter bool) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	var f raft.IndexFuture
	if voter {
		f = n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 30*time.Second)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, 30*time.Second)
	}
	return f.Error()
}

// RemoveServer removes a server from the configuration. Leader only.
func (n *Node) RemoveServer(id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	return n.raft.RemoveServer(raft.ServerID(id), 0, 30*time.Second).Error()
}

// TransferLeadership hands leadership to another voter (any, if id is empty).
func (n *Node) TransferLeadership(id, addr string) error {
	if id == "" {
		return n.raft.LeadershipTransfer().Error()
	}
	return n.raft.LeadershipTransferToServer(raft.ServerID(id), raft.ServerAddress(addr)).Error()
}

// Snapshot forces a snapshot (tests and operators).
func (n *Node) Snapshot() error { return n.raft.Snapshot().Error() }

// Close shuts Raft down and closes its stores.
func (n *Node) Close() error {
	select {
	case <-n.done:
		return nil
	default:
	}
	close(n.done)
	err := n.raft.Shutdown().Error()
	n.raft.DeregisterObserver(n.observer)
	n.wg.Wait()
	n.hb.Close()
	if cerr := n.logs.Close(); err == nil {
		err = cerr
	}
	return err
}

// ScrubLog reads and checks every block of the Raft log's tables at no more
// than bytesPerSec (storage/scrub).
func (n *Node) ScrubLog(ctx context.Context, bytesPerSec int64) (scrub.Stats, error) {
	return n.logs.Scrub(ctx, bytesPerSec)
}

// guardedHeartbeats is the Raft transport with hashicorp/raft's heartbeat
// fast path kept only where it is safe. On that path a heartbeat is handled
// on the transport's goroutine, beside the raft goroutine. One from a newer
// leader bumps currentTerm while the old leader's loop may be dispatching a
// client apply, which is then written under the new term: the new leader's
// entries at those indexes carry the same term, raft does not truncate, and
// the old leader applies commands no quorum stored (hashicorp/raft PR #701;
// seen in node/clustertest F6, docs/notes/integrity.md Round 6).
//
// A heartbeat takes the fast path only when this node is a follower and the
// heartbeat's term is its current term: then appendEntries changes neither
// state nor term, it only records the contact. Any other heartbeat (a newer
// term, or this node a leader or candidate) goes to the raft goroutine
// through the RPC channel, serialised with the loop that may be leading.
// Steady-state heartbeats so still do not wait behind the follower's disk
// writes (a 44 MB message must not force an election; DESIGN.md, issue 19).
//
// The check and the handling are not atomic; DESIGN.md ("Heartbeat fast
// path only for same-term followers") says what window that leaves.
type guardedHeartbeats struct {
	*raft.NetworkTransport
	// raft is the node's Raft once NewRaft has returned; before that every
	// heartbeat goes through the loop.
	raft *atomic.Pointer[raft.Raft]
	// rpcs is what raft consumes: the transport's RPCs and the heartbeats
	// sent back to the loop.
	rpcs     chan raft.RPC
	stop     chan struct{}
	stopOnce sync.Once
}

func newGuardedHeartbeats(t *raft.NetworkTransport, r *atomic.Pointer[raft.Raft]) *guardedHeartbeats {
	g := &guardedHeartbeats{NetworkTransport: t, raft: r, rpcs: make(chan raft.RPC), stop: make(chan struct{})}
	go func() {
		in := t.Consumer()
		for {
			select {
			case rpc := <-in:
				g.toLoop(rpc)
			case <-g.stop:
				return
			}
		}
	}()
	return g
}

// Consumer is the channel raft reads its RPCs from.
func (g *guardedHeartbeats) Consumer() <-chan raft.RPC { return g.rpcs }

// SetHeartbeatHandler installs fast behind the guard.
func (g *guardedHeartbeats) SetHeartbeatHandler(fast func(raft.RPC)) {
	if fast == nil {
		g.NetworkTransport.SetHeartbeatHandler(nil)
		return
	}
	g.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		if g.fastIsSafe(rpc) {
			fast(rpc)
			return
		}
		g.toLoop(rpc)
	})
}

func (g *guardedHeartbeats) fastIsSafe(rpc raft.RPC) bool {
	r := g.raft.Load()
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	return r != nil && ok && r.State() == raft.Follower && req.Term == r.CurrentTerm()
}

// toLoop hands rpc to the raft goroutine; once stopped, it answers it with
// the transport's shutdown error.
func (g *guardedHeartbeats) toLoop(rpc raft.RPC) {
	select {
	case g.rpcs <- rpc:
	case <-g.stop:
		rpc.Respond(nil, raft.ErrTransportShutdown)
	}
}

// Close stops the forwarding and closes the transport.
func (g *guardedHeartbeats) Close() error {
	g.stopOnce.Do(func() { close(g.stop) })
	return g.NetworkTransport.Close()
}
