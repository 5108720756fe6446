package membership

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/continuum-mail/continuum/node/logbridge"
)

// Meta is what a node tells the others about itself.
type Meta struct {
	ID   string `json:"id"`
	Site string `json:"site"`
	Role string `json:"role"`
	Raft string `json:"raft"`
	GRPC string `json:"grpc"`
	SMTP string `json:"smtp,omitempty"`
	LMTP string `json:"lmtp,omitempty"`
	IMAP string `json:"imap,omitempty"`
	HTTP string `json:"http,omitempty"`
	// Expect is the node's --bootstrap-expect (0: none): nodes that share
	// it and see each other form the first configuration together.
	Expect int `json:"expect,omitempty"`
	// Cluster is the cluster identity the node's data belongs to (empty:
	// the original, never recovered); Supersedes the identities a recovery
	// replaced, newest first (node/disaster.go). A node that finds its own
	// identity superseded by a live member refuses to run: its data is
	// stale and it must be wiped.
	Cluster    string   `json:"cluster,omitempty"`
	Supersedes []string `json:"supersedes,omitempty"`
}

// Member is a node as gossip sees it.
type Member struct {
	Meta
	Alive bool
	// Since is when this node's gossip view of the member last changed
	// between alive and dead: for a dead member, roughly its last contact.
	Since time.Time
}

// Config configures the gossip member.
type Config struct {
	Meta       Meta
	GossipAddr string // host:port to bind and advertise
	// Key, when set, encrypts gossip (16, 24 or 32 bytes, AES).
	Key []byte
	// KeyringFile, when set with Key, keeps the keyring across restarts:
	// it is written (mode 0600) on every keyring change, and when it
	// exists at start its keys replace Key (Key is what the cluster used
	// before its first rotation).
	KeyringFile string
	// PeersFile, when set, remembers the other members' gossip addresses
	// across restarts (peers.go; Remembered).
	PeersFile string
	Profile   string // "local", "lan" or "wan"
	Logger    *slog.Logger
	// OnChange is called (from memberlist's goroutine; must not block)
	// whenever a member joins, leaves or updates.
	OnChange func()
	// OnMessage is called (from memberlist's goroutine; must not block)
	// with each user message another member sent (Pool.Send).
	// The slice is the callee's.
	OnMessage func([]byte)

	// tune adjusts memberlist's configuration (tests: gossip off).
	tune func(*memberlist.Config)
}

// Pool is this node's view of the gossip pool.
type Pool struct {
	ml   *memberlist.Memberlist
	cfg  Config
	meta []byte
	// keyring is nil when gossip is not encrypted; keyMu serializes
	// changes with writing KeyringFile.
	keyring *memberlist.Keyring
	keyMu   sync.Mutex

	mu      sync.Mutex
	members map[string]Member
	// refreshed is when Refresh last started a state sync; refreshing,
	// whether one is running.
	refreshed  time.Time
	refreshing bool
	// peers is what PeersFile holds (ID → gossip address), guarded by mu;
	// peersMu serializes writing the file.
	peers   map[string]string
	peersMu sync.Mutex
}

// Start binds the gossip listener and starts memberlist. It does not join.
func Start(cfg Config) (*Pool, error) {
	host, portStr, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("membership: gossip address: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("membership: gossip port: %w", err)
	}
	meta, err := json.Marshal(cfg.Meta)
	if err != nil {
		return nil, err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("membership: metadata is %d bytes, over %d", len(meta), memberlist.MetaMaxSize)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Pool{cfg: cfg, meta: meta, members: map[string]Member{}}
	p.loadPeers()

	var mc *memberlist.Config
	switch cfg.Profile {
	case "local":
		mc = memberlist.DefaultLocalConfig()
	case "wan":
		mc = memberlist.DefaultWANConfig()
	default:
		mc = memberlist.DefaultLANConfig()
	}
	mc.Name = cfg.Meta.ID
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertiseAddr = host
	mc.AdvertisePort = port
	mc.Delegate = (*delegate)(p)
	mc.Events = (*events)(p)
	mc.Logger = logbridge.StdLog(cfg.Logger, "membership")
	if len(cfg.Key) > 0 {
		keys, err := loadKeyring(cfg.KeyringFile)
		if err != nil {
			return nil, err
		}
		if keys == nil {
			keys = [][]byte{cfg.Key}
		}
		if p.keyring, err = memberlist.NewKeyring(keys[1:], keys[0]); err != nil {
			return nil, fmt.Errorf("membership: keyring: %w", err)
		}
		mc.Keyring = p.keyring
		mc.GossipVerifyIncoming = true
		mc.GossipVerifyOutgoing = true
	}
	if cfg.Profile == "local" {
		mc.ProbeInterval = 500 * time.Millisecond
		mc.GossipInterval = 100 * time.Millisecond
	}
	if cfg.tune != nil {
		cfg.tune(mc)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("membership: %w", err)
	}
	p.ml = ml
	return p, nil
}

// SetMeta replaces what this node tells the others about itself and
// gossips the change (a fresh node that adopts the cluster's identity).
func (p *Pool) SetMeta(m Meta) error {
	meta, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(meta) > memberlist.MetaMaxSize {
		return fmt.Errorf("membership: metadata is %d bytes, over %d", len(meta), memberlist.MetaMaxSize)
	}
	p.mu.Lock()
	p.meta = meta
	p.mu.Unlock()
	return p.ml.UpdateNode(5 * time.Second)
}

// Join contacts the given gossip addresses; one success is enough.
func (p *Pool) Join(addrs []string) (int, error) {
	return p.ml.Join(addrs)
}

// Members returns every known member, alive or not, sorted by ID.
func (p *Pool) Members() []Member {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Member, 0, len(p.members))
	for _, m := range p.members {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Lookup returns the member with the given node ID.
func (p *Pool) Lookup(id string) (Member, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.members[id]
	return m, ok
}

// Leave announces departure and stops gossip.
func (p *Pool) Leave(timeout time.Duration) error {
	if err := p.ml.Leave(timeout); err != nil {
		return err
	}
	return p.ml.Shutdown()
}

// Send sends msg to every other live member now, one datagram each
// (memberlist's best-effort user message, encrypted with the cluster key
// when there is one). Lost datagrams are not resent: a user of Send
// sends state that a later message repeats, not deltas.
func (p *Pool) Send(msg []byte) {
	for _, n := range p.ml.Members() {
		if n.Name == p.cfg.Meta.ID {
			continue
		}
		if err := p.ml.SendBestEffort(n, msg); err != nil {
			p.cfg.Logger.Debug("gossip send failed", "component", "membership", "to", n.Name, "err", err)
		}
	}
}

// Refresh asks the other live members for their whole view (a push/pull
// state sync, as at join) in the background, at most once a second.
// Gossip normally spreads a new member within a few rounds, but a node can
// learn a member's ID from Raft first (the new leader, a voter in the
// configuration) and find no gRPC address for it: in two of ten `make
// test` runs a node still lacked a member that had joined 1–11 s before,
// which the periodic sync (15–30 s) would only have mended later. The
// node calls this when a lookup misses.
func (p *Pool) Refresh() {
	p.mu.Lock()
	if p.refreshing || time.Since(p.refreshed) < time.Second {
		p.mu.Unlock()
		return
	}
	p.refreshed, p.refreshing = time.Now(), true
	p.mu.Unlock()
	go func() {
		defer func() {
			p.mu.Lock()
			p.refreshing = false
			p.mu.Unlock()
		}()
		var addrs []string
		for _, n := range p.ml.Members() {
			if n.Name != p.cfg.Meta.ID && n.State == memberlist.StateAlive {
				addrs = append(addrs, n.Address())
			}
		}
		if len(addrs) == 0 {
			return
		}
		if _, err := p.ml.Join(addrs); err != nil {
			p.cfg.Logger.Debug("gossip refresh failed", "component", "membership", "err", err)
		}
	}()
}

// Close stops gossip without announcing.
func (p *Pool) Close() error { return p.ml.Shutdown() }

func (p *Pool) update(n *memberlist.Node, alive bool) {
	var m Meta
	if err := json.Unmarshal(n.Meta, &m); err != nil || m.ID == "" || m.ID != n.Name {
		p.cfg.Logger.Warn("ignoring gossip member with bad metadata", "component", "membership", "name", n.Name)
		return
	}
	p.mu.Lock()
	since := time.Now()
	if old, ok := p.members[m.ID]; ok && old.Alive == alive {
		since = old.Since
	}
	p.members[m.ID] = Member{Meta: m, Alive: alive, Since: since}
	changed := p.rememberLocked(n, alive)
	p.mu.Unlock()
	if changed {
		p.savePeers()
	}
	if p.cfg.OnChange != nil {
		p.cfg.OnChange()
	}
}

type delegate Pool

func (d *delegate) NodeMeta(limit int) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.meta
}
func (d *delegate) NotifyMsg(b []byte) {
	if d.cfg.OnMessage != nil && len(b) > 0 {
		d.cfg.OnMessage(append([]byte(nil), b...))
	}
}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

type events Pool

func (e *events) NotifyJoin(n *memberlist.Node)   { (*Pool)(e).update(n, true) }
func (e *events) NotifyLeave(n *memberlist.Node)  { (*Pool)(e).update(n, false) }
func (e *events) NotifyUpdate(n *memberlist.Node) { (*Pool)(e).update(n, true) }
