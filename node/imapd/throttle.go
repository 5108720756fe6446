package imapd

import (
	"sync"
	"time"
)

// authThrottle slows down password guessing per client address: each
// failure within the window doubles the delay before the NO is sent, and
// after max failures every attempt fails unchecked until the window since
// the last failure has passed.
//
// An attempt counts as a failure from the moment it starts (begin), before
// its password check, and only a success forgets it: so parallel
// guesses from one address are throttled like sequential ones instead of
// all passing the check while none has failed yet. State is this node's
// only: sharing it across nodes (so a guesser cannot rotate between sites)
// is a later change.
type authThrottle struct {
	base, maxDelay time.Duration
	max            int
	window         time.Duration

	mu    sync.Mutex
	fails map[string]*authFailures
}

type authFailures struct {
	n    int
	last time.Time
}

func newAuthThrottle(base, maxDelay time.Duration, max int, window time.Duration) *authThrottle {
	return &authThrottle{base: base, maxDelay: maxDelay, max: max, window: window, fails: map[string]*authFailures{}}
}

// blocked reports whether addr has failed too often to be allowed a try.
func (t *authThrottle) blocked(addr string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.fails[addr]
	if f == nil {
		return false
	}
	if now.Sub(f.last) > t.window {
		delete(t.fails, addr)
		return false
	}
	return f.n >= t.max
}

// begin records an attempt from addr as a failure before its password is
// checked; false when addr is blocked (then nothing is recorded).
func (t *authThrottle) begin(addr string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.fails) > 100_000 {
		t.expireLocked(now)
	}
	f := t.fails[addr]
	if f == nil || now.Sub(f.last) > t.window {
		f = &authFailures{}
		t.fails[addr] = f
	}
	if f.n >= t.max {
		return false
	}
	f.n++
	f.last = now
	return true
}

// delay is how long to wait before answering a failure from addr.
func (t *authThrottle) delay(addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 1
	if f := t.fails[addr]; f != nil {
		n = f.n
	}
	d := t.base
	for i := 1; i < n && d < t.maxDelay; i++ {
		d *= 2
	}
	return min(d, t.maxDelay)
}

// failed records a failure and returns how long to wait before replying.
func (t *authThrottle) failed(addr string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.fails) > 100_000 {
		t.expireLocked(now)
	}
	f := t.fails[addr]
	if f == nil || now.Sub(f.last) > t.window {
		f = &authFailures{}
		t.fails[addr] = f
	}
	f.n++
	f.last = now
	d := t.base
	for i := 1; i < f.n && d < t.maxDelay; i++ {
		d *= 2
	}
	return min(d, t.maxDelay)
}

// succeeded forgets addr's failures, including the attempt begin counted:
// a user behind the address has shown the password (as before; a guesser
// who knows one password can thus reset the count, which per-account
// counting would close).
func (t *authThrottle) succeeded(addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, addr)
}

func (t *authThrottle) expireLocked(now time.Time) {
	for a, f := range t.fails {
		if now.Sub(f.last) > t.window {
			delete(t.fails, a)
		}
	}
}
