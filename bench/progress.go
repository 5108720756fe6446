package bench

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progress shows the run live: a progressbar line on a terminal, a plain
// line every few seconds otherwise (logs, pipes).
type progress struct {
	w         io.Writer
	bar       *progressbar.ProgressBar
	what      string
	start     time.Time
	ops, errs atomic.Int64
	mu        sync.Mutex
	last      time.Time
	every     time.Duration
}

func newProgress(w io.Writer, terminal bool, what string, count int, d time.Duration) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, what: what, start: time.Now(), last: time.Now(), every: 5 * time.Second}
	if terminal {
		total := -1
		if count > 0 {
			total = count
		}
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("op"),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionSetWidth(30),
		)
		_ = d
	}
	return p
}

func (p *progress) add(ops, errs int64) {
	if p == nil {
		return
	}
	p.ops.Add(ops)
	p.errs.Add(errs)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		if errs > 0 {
			p.bar.Describe(fmt.Sprintf("%s (%d errors)", p.what, p.errs.Load()))
		}
		_ = p.bar.Add64(ops)
		return
	}
	if time.Since(p.last) >= p.every {
		p.line()
		p.last = time.Now()
	}
}

func (p *progress) line() {
	el := time.Since(p.start).Seconds()
	fmt.Fprintf(p.w, "%s: %d ops, %d errors, %.0f ops/s, %.0fs\n", p.what, p.ops.Load(), p.errs.Load(), float64(p.ops.Load())/max(el, 1e-3), el)
}

func (p *progress) done() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
		return
	}
	p.line()
}
