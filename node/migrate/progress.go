package migrate

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// NewProgress returns a progress bar (messages, bytes, rate, ETA) on a
// terminal, and a plain log line every interval otherwise.
func NewProgress(w io.Writer, terminal bool, what string) Progress {
	if terminal {
		return &barProgress{w: w, what: what}
	}
	return &logProgress{w: w, what: what, every: 5 * time.Second, start: time.Now(), last: time.Now()}
}

type barProgress struct {
	mu    sync.Mutex
	w     io.Writer
	what  string
	bar   *progressbar.ProgressBar
	bytes int64
}

func (b *barProgress) Total(n int, _ int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n <= 0 {
		n = -1 // unknown: a spinner
	}
	b.bar = progressbar.NewOptions(n,
		progressbar.OptionSetWriter(b.w),
		progressbar.OptionSetDescription(b.what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("msg"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(b.w) }),
	)
}

func (b *barProgress) Add(n int, bytes int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar == nil {
		b.Total(-1, 0)
	}
	b.bytes += bytes
	b.bar.Describe(fmt.Sprintf("%s %s", b.what, humanBytes(b.bytes)))
	b.bar.Add(n)
}

func (b *barProgress) Note(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		b.bar.Clear()
	}
	fmt.Fprintf(b.w, format+"\n", args...)
}

func (b *barProgress) Done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bar != nil {
		b.bar.Finish()
	}
}

// logProgress writes a line every few seconds: for logs and pipes, where
// a bar's carriage returns would be noise.
type logProgress struct {
	mu          sync.Mutex
	w           io.Writer
	what        string
	every       time.Duration
	start, last time.Time
	total, n    int
	bytes       int64
}

func (l *logProgress) Total(n int, _ int64) {
	l.mu.Lock()
	l.total = n
	l.mu.Unlock()
}

func (l *logProgress) Add(n int, bytes int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n += n
	l.bytes += bytes
	if time.Since(l.last) >= l.every {
		l.line()
		l.last = time.Now()
	}
}

func (l *logProgress) line() {
	el := time.Since(l.start).Seconds()
	rate := float64(l.n) / max(el, 1e-3)
	s := fmt.Sprintf("%s: %d", l.what, l.n)
	if l.total > 0 {
		s += fmt.Sprintf("/%d messages (%.0f%%)", l.total, 100*float64(l.n)/float64(l.total))
		if rate > 0 && l.n < l.total {
			s += fmt.Sprintf(", ETA %s", (time.Duration(float64(l.total-l.n)/rate) * time.Second).Round(time.Second))
		}
	} else {
		s += " messages"
	}
	fmt.Fprintf(l.w, "%s, %s, %.0f msg/s, %.1f MB/s\n", s, humanBytes(l.bytes), rate, float64(l.bytes)/1e6/max(el, 1e-3))
}

func (l *logProgress) Note(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, l.what+": "+format+"\n", args...)
}

func (l *logProgress) Done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.line()
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
