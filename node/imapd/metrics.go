package imapd

import (
	"errors"

	"github.com/emersion/go-imap/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// appends counts APPEND outcomes, registered once with the default registry.
var appends = promauto.NewCounterVec(prometheus.CounterOpts{
	Namespace: "continuum", Subsystem: "imap", Name: "appends_total",
	Help: "IMAP APPEND outcomes: accepted (OK), deferred (NO [UNAVAILABLE], retry), rejected (any other NO).",
}, []string{"result"})

func init() {
	for _, r := range []string{"accepted", "deferred", "rejected"} {
		appends.WithLabelValues(r)
	}
}

// Flow counts APPEND outcomes for the operator's console (node/httpapi's
// per-minute mail-flow ring), with the results of appends_total.
type Flow interface{ Count(result string) }

// countAppend records the outcome of one APPEND from the error it answers.
func (s *Server) countAppend(err error) {
	result := "accepted"
	if err != nil {
		result = "deferred"
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Code != imap.ResponseCodeUnavailable {
			result = "rejected"
		}
	}
	appends.WithLabelValues(result).Inc()
	if s.opts.Flow != nil {
		s.opts.Flow.Count(result)
	}
}
