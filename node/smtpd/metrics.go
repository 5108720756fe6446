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

// countReply records one message outcome from its reply code.
func countReply(proto string, replyCode int) {
	result := "accepted"
	switch replyCode / 100 {
	case 4:
		result = "deferred"
	case 5:
		result = "rejected"
	}
	messages.WithLabelValues(proto, result).Inc()
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
