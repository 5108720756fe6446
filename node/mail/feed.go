package mail

import (
	"sync"

	"github.com/continuum-mail/continuum/raftfsm"
)

// Feed fans the state machine's apply events out to the sessions of the
// users they concern (IMAP IDLE and NOOP). Every node applies every entry, so
// every node's feed sees every change: no broker is needed.
type Feed struct {
	mu   sync.Mutex
	subs map[uint64]map[*Subscription]struct{}
}

// Subscription receives a user's events. C is closed by Cancel. When the
// subscriber falls behind, events are dropped and Overflowed reports true
// once: the session must then re-read the mailbox state.
type Subscription struct {
	C        chan raftfsm.Event
	feed     *Feed
	userID   uint64
	mu       sync.Mutex
	overflow bool
}

// NewFeed returns an empty feed.
func NewFeed() *Feed { return &Feed{subs: map[uint64]map[*Subscription]struct{}{}} }

// Subscribe registers for userID's events.
func (f *Feed) Subscribe(userID uint64) *Subscription {
	s := &Subscription{C: make(chan raftfsm.Event, 256), feed: f, userID: userID}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs[userID] == nil {
		f.subs[userID] = map[*Subscription]struct{}{}
	}
	f.subs[userID][s] = struct{}{}
	return s
}

// Cancel unregisters the subscription and closes C.
func (s *Subscription) Cancel() {
	f := s.feed
	f.mu.Lock()
	defer f.mu.Unlock()
	if m := f.subs[s.userID]; m != nil {
		if _, ok := m[s]; ok {
			delete(m, s)
			close(s.C)
		}
		if len(m) == 0 {
			delete(f.subs, s.userID)
		}
	}
}

// Overflowed reports (and clears) whether events were dropped.
func (s *Subscription) Overflowed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.overflow
	s.overflow = false
	return o
}

// Publish delivers events; it never blocks (it runs on the apply path).
func (f *Feed) Publish(_ uint64, events []raftfsm.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range events {
		for s := range f.subs[e.UserID] {
			select {
			case s.C <- e:
			default:
				s.mu.Lock()
				s.overflow = true
				s.mu.Unlock()
			}
		}
	}
}

// Subscribers counts the live subscriptions (a metric).
func (f *Feed) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.subs {
		n += len(m)
	}
	return n
}
