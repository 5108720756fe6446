package httpapi

import (
	"sync"
	"time"
)

// FlowMinutes is how far back the mail-flow chart looks.
const FlowMinutes = 60

// Flow counts this node's message outcomes per minute over the last hour,
// for the console's mail-flow chart. It is local to the node (each node
// counts what its own SMTP, LMTP and IMAP APPEND sessions decided) and
// lives in memory only: a restart starts it empty. The Prometheus counters
// (continuum_smtp_messages_total, continuum_imap_appends_total) are the
// durable record; this ring exists so that the page needs no Prometheus.
type Flow struct {
	now func() time.Time

	mu      sync.Mutex
	buckets [FlowMinutes]FlowMinute // ring, indexed by minute % FlowMinutes
}

// FlowMinute is one minute's outcomes. Start is the minute (unix seconds,
// a multiple of 60).
type FlowMinute struct {
	Start                       int64
	Accepted, Deferred, Refused uint64
}

// NewFlow returns an empty ring; now is the clock (nil: time.Now).
func NewFlow(now func() time.Time) *Flow {
	if now == nil {
		now = time.Now
	}
	return &Flow{now: now}
}

// Count records one outcome: "accepted" (2xx, OK), "deferred" (4xx,
// NO [UNAVAILABLE]: the sender retries) or "rejected" (5xx, any other NO:
// refused for good). The protocol adapters call it where they decide the
// reply (smtpd's countReply, imapd's Append). Unknown results count as
// deferred, never silently dropped. A nil *Flow counts nothing.
func (f *Flow) Count(result string) {
	if f == nil {
		return
	}
	minute := f.now().Unix() / 60 * 60
	f.mu.Lock()
	defer f.mu.Unlock()
	b := &f.buckets[(minute/60)%FlowMinutes]
	if b.Start != minute {
		*b = FlowMinute{Start: minute}
	}
	switch result {
	case "accepted":
		b.Accepted++
	case "rejected":
		b.Refused++
	default:
		b.Deferred++
	}
}

// Last returns the last FlowMinutes minutes, oldest first, the current
// (partial) minute last; minutes without traffic are zero.
func (f *Flow) Last() []FlowMinute {
	out := make([]FlowMinute, FlowMinutes)
	if f == nil {
		return out
	}
	cur := f.now().Unix() / 60 * 60
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range out {
		minute := cur - int64(FlowMinutes-1-i)*60
		b := f.buckets[(minute/60)%FlowMinutes]
		if b.Start != minute {
			b = FlowMinute{Start: minute}
		}
		out[i] = b
	}
	return out
}
