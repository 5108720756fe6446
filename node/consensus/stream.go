package consensus

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/storage/failpoint"
)

// streamLayer is raft's transport over TCP, optionally mutual TLS, with a
// pluggable dialer so tests can cut links.
type streamLayer struct {
	net.Listener
	advertise net.Addr
	dial      func(ctx context.Context, addr string) (net.Conn, error)
	clientTLS *tls.Config
	// bind, with TLS, checks that every incoming RPC names the server its
	// connection's certificate names (guard.go).
	bind bool
	log  *slog.Logger
	// held, while set, closes every incoming connection: a node with no
	// Raft state takes no part in Raft until the leader has admitted it
	// (DESIGN.md, "A wiped voter").
	held atomic.Bool
}

// Accept returns the next incoming connection, closing those that arrive
// while the layer is held.
func (s *streamLayer) Accept() (net.Conn, error) {
	for {
		c, err := s.Listener.Accept()
		if err != nil || !s.held.Load() {
			if tc, ok := c.(*tls.Conn); ok && s.bind {
				return guard(tc, s.log), nil
			}
			return c, err
		}
		c.Close()
	}
}

func newStreamLayer(cfg Config) (*streamLayer, error) {
	ln, err := net.Listen("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("consensus: listen %s: %w", cfg.RaftAddr, err)
	}
	adv := ln.Addr()
	if cfg.WrapListener != nil {
		ln = cfg.WrapListener(ln)
	}
	dial := cfg.Dial
	if dial == nil {
		var d net.Dialer
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	// Test-only (tag failpoints): WAN latency on every Raft write.
	dial, ln = failpoint.WrapDial(failpoint.RaftDelay, dial), failpoint.WrapListener(failpoint.RaftDelay, ln)
	if cfg.ServerTLS != nil {
		ln = tls.NewListener(ln, cfg.ServerTLS)
	}
	return &streamLayer{Listener: ln, advertise: adv, dial: dial, clientTLS: cfg.ClientTLS,
		bind: cfg.ServerTLS != nil && cfg.Identity != nil, log: cfg.Logger.With("component", "raft")}, nil
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := s.dial(ctx, string(addr))
	if err != nil {
		return nil, err
	}
	if s.clientTLS != nil {
		tc := tls.Client(c, s.clientTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, err
		}
		return tc, nil
	}
	return c, nil
}
