//go:build failpoints

package failpoint

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Enabled reports whether this binary was built with the failpoints tag.
const Enabled = true

type armed struct {
	spec
	hits atomic.Uint64
}

var (
	mu     sync.RWMutex
	points = map[string]*armed{}
)

func init() {
	specs, err := parse(os.Getenv(Env))
	if err != nil {
		panic(err) // a test binary with a mistyped point must not run as if healthy
	}
	for name, s := range specs {
		points[name] = &armed{spec: s}
	}
}

func lookup(name string) *armed {
	mu.RLock()
	defer mu.RUnlock()
	return points[name]
}

// Set arms (or with spec "" disarms) a point in this process, for a test;
// the returned func restores what was there.
func Set(name, s string) (restore func(), err error) {
	specs, err := parse(name + "=" + s)
	if s != "" && err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	old, had := points[name]
	if s == "" {
		delete(points, name)
	} else {
		points[name] = &armed{spec: specs[name]}
	}
	return func() {
		mu.Lock()
		defer mu.Unlock()
		if had {
			points[name] = old
		} else {
			delete(points, name)
		}
	}, nil
}

// Hit reports whether the point fires now. A point armed every(N) fires
// when index is a multiple of N, or, for index 0 (a point that passes
// none), on every Nth hit in this process.
func Hit(name string, index uint64) bool {
	p := lookup(name)
	if p == nil || p.every == 0 {
		return false
	}
	n := index
	if n == 0 {
		n = p.hits.Add(1)
	}
	if n%p.every != 0 {
		return false
	}
	slog.Default().Warn("failpoint "+name+" fired", "component", "failpoint", "n", n)
	return true
}

// WrapDial delays every write on the dialed connections when the point is
// armed delay(MIN-MAX).
func WrapDial(name string, dial func(ctx context.Context, addr string) (net.Conn, error)) func(ctx context.Context, addr string) (net.Conn, error) {
	p := lookup(name)
	if p == nil || p.hi == 0 {
		return dial
	}
	slog.Default().Warn("failpoint "+name+" fired: every write on dialed connections is delayed", "component", "failpoint", "min", p.lo, "max", p.hi)
	return func(ctx context.Context, addr string) (net.Conn, error) {
		c, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		return newDelayConn(c, p.lo, p.hi), nil
	}
}

// WrapListener delays every write on the accepted connections when the
// point is armed delay(MIN-MAX).
func WrapListener(name string, ln net.Listener) net.Listener {
	p := lookup(name)
	if p == nil || p.hi == 0 {
		return ln
	}
	return delayListener{ln, p.lo, p.hi}
}

// A delayed connection: every byte written reaches the peer MIN to MAX
// later, in order (a one-way WAN delay with jitter).

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
