//go:build faultdelay

package consensus

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// A test-only fault (build tag faultdelay) for node/clustertest's WAN
// scenario, where the kernel has no netem: with CONTINUUM_PLANTED_DELAY set
// to "MIN-MAX" (e.g. "40ms-80ms"), every byte a node writes on a Raft
// connection, dialed or accepted, reaches the peer MIN to MAX later, in
// order: a one-way WAN delay with jitter in each direction. Never build a
// release with this tag.
func plantedDelay(dial func(ctx context.Context, addr string) (net.Conn, error), ln net.Listener) (func(ctx context.Context, addr string) (net.Conn, error), net.Listener) {
	lo, hi, ok := parseDelay(os.Getenv("CONTINUUM_PLANTED_DELAY"))
	if !ok {
		return dial, ln
	}
	slog.Default().Warn("faultdelay: planted fault delays every Raft write", "component", "raft", "min", lo, "max", hi)
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		return newDelayConn(c, lo, hi), nil
	}, delayListener{ln, lo, hi}
}

func parseDelay(s string) (lo, hi time.Duration, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	lo, err1 := time.ParseDuration(a)
	hi, err2 := time.ParseDuration(b)
	return lo, hi, err1 == nil && err2 == nil && lo > 0 && hi >= lo
}

type delayListener struct {
	net.Listener
	lo, hi time.Duration
}

func (l delayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newDelayConn(c, l.lo, l.hi), nil
}

type delayed struct {
	b  []byte
	at time.Time
}

type delayConn struct {
	net.Conn
	lo, hi time.Duration
	q      chan delayed
	mu     sync.Mutex
	last   time.Time
	err    error
	once   sync.Once
	done   chan struct{}
}

func newDelayConn(c net.Conn, lo, hi time.Duration) *delayConn {
	d := &delayConn{Conn: c, lo: lo, hi: hi, q: make(chan delayed, 4096), done: make(chan struct{})}
	go d.pump()
	return d
}

func (d *delayConn) pump() {
	for {
		select {
		case <-d.done:
			return
		case w := <-d.q:
			time.Sleep(time.Until(w.at))
			if _, err := d.Conn.Write(w.b); err != nil {
				d.mu.Lock()
				d.err = err
				d.mu.Unlock()
				return
			}
		}
	}
}

func (d *delayConn) Write(p []byte) (int, error) {
	d.mu.Lock()
	if d.err != nil {
		err := d.err
		d.mu.Unlock()
		return 0, err
	}
	at := time.Now().Add(d.lo + time.Duration(rand.Int64N(int64(d.hi-d.lo)+1)))
	if at.Before(d.last) {
		at = d.last // keep the byte stream in order
	}
	d.last = at
	d.mu.Unlock()
	select {
	case d.q <- delayed{append([]byte(nil), p...), at}:
		return len(p), nil
	case <-d.done:
		return 0, net.ErrClosed
	}
}

func (d *delayConn) Close() error {
	d.once.Do(func() { close(d.done) })
	return d.Conn.Close()
}
