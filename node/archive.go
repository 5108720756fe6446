package node

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/continuum-mail/continuum/node/mail"
)

// retentionLoop proposes a retention run every RetentionInterval while this
// node leads. The run is judged by the entry's log time, so which node
// proposes it, and when, changes nothing but how late expiry happens.
func (n *Node) retentionLoop() {
	n.whileLeader(n.cfg.RetentionInterval.Duration, 5*time.Minute, func(ctx context.Context) {
		removed, entries, err := n.mail.RunRetention(ctx)
		if err != nil {
			n.log.Warn("scheduled retention run failed", "err", err, "removed", removed)
		} else if removed > 0 {
			n.log.Info("retention run", "removed", removed, "entries", entries)
		}
	})
}

// archiveGauges caches the archive summary the metrics show: computing it
// scans every message row, so a scrape reuses it for a minute.
type archiveGauges struct {
	mu  sync.Mutex
	at  time.Time
	sum *mail.ArchiveSummary
	err error
}

const archiveGaugesTTL = time.Minute

func (n *Node) archiveSummary() (*mail.ArchiveSummary, error) {
	g := &n.archive
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.sum == nil || time.Since(g.at) > archiveGaugesTTL {
		g.sum, g.err = n.mail.Summary(time.Now().Unix())
		g.at = time.Now()
	}
	return g.sum, g.err
}

// nextExpiry is the summary's next expiry as a metric value (0: none).
func nextExpiry(s *mail.ArchiveSummary) float64 {
	if s.NextExpiry == math.MaxInt64 {
		return 0
	}
	return float64(s.NextExpiry)
}
