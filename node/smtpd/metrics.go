package smtpd

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics, registered once with the default registry (served at /metrics).
var (
	messages = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "continuum", Subsystem: "smtp", Name: "messages_total",
		Help: "Message outcomes after DATA/BDAT by protocol (smtp, lmtp): accepted (2xx), deferred (4xx), rejected (5xx). LMTP counts one per recipient.",
	}, []string{"protocol", "result"})
	connsRefused = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "continuum", Subsystem: "smtp", Name: "connections_refused_total",
		Help: "Connections refused before or instead of the greeting, by protocol and reason.",
	}, []string{"protocol", "reason"})
)

func init() {
	// Every series exists from the start, so rate() and the alert rules
	// (deploy/prometheus) see 0 rather than nothing before the first message.
	for _, p := range []string{"smtp", "lmtp"} {
		for _, r := range []string{"accepted", "deferred", "rejected"} {
			messages.WithLabelValues(p, r)
		}
		for _, err := range []error{errCutOff, errTooManyConns, errServerBusy, errPregreet, errHTTP, errTimeout, nil} {
			connsRefused.WithLabelValues(p, refusedReason(err))
		}
	}
}

// Flow counts message outcomes for the operator's console (node/httpapi's
// per-minute mail-flow ring). result is "accepted", "deferred" or
// "rejected", as in continuum_smtp_messages_total.
type Flow interface{ Count(result string) }

// countReply records one message outcome from its reply code: the
// Prometheus counter and the console's flow.
func (s *Server) countReply(replyCode int) {
	result := "accepted"
	switch replyCode / 100 {
	case 4:
		result = "deferred"
	case 5:
		result = "rejected"
	}
	messages.WithLabelValues(s.proto, result).Inc()
	if s.cfg.Flow != nil {
		s.cfg.Flow.Count(result)
	}
}

func refusedReason(err error) string {
	switch err {
	case errCutOff:
		return "cut_off"
	case errTooManyConns:
		return "conn_limit"
	case errServerBusy:
		return "conn_limit_total"
	case errPregreet:
		return "pregreet"
	case errHTTP:
		return "http"
	case errTimeout:
		return "timeout"
	}
	return "other"
}
