package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteTable writes results as an aligned table.
func WriteTable(w io.Writer, results ...*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tsessions\tops\terrors\tops/s\tMB/s\tp50\tp90\tp99\tmax\t")
	for _, r := range results {
		mbs := 0.0
		if r.Elapsed > 0 {
			mbs = float64(r.Bytes) / 1e6 / r.Elapsed.Seconds()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t\n", r.Workload, r.Sessions, r.Ops, r.Errors, r.PerSec, mbs,
			fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), fmtDur(r.Max))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if len(r.ErrorList) > 0 {
			fmt.Fprintf(w, "%s: first errors:\n  %s\n", r.Workload, strings.Join(r.ErrorList, "\n  "))
		}
	}
	return nil
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// ParseSize reads a size: bytes, or with a k/KiB, m/MiB suffix (1024-based).
func ParseSize(s string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1
	for _, suf := range []struct {
		s string
		m int
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"k", 1 << 10}, {"m", 1 << 20}, {"b", 1}} {
		if strings.HasSuffix(t, suf.s) {
			t, mult = strings.TrimSuffix(t, suf.s), suf.m
			break
		}
	}
	var n int
	if _, err := fmt.Sscanf(t, "%d", &n); err != nil || fmt.Sprint(n) != t || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with k or m (10k, 1m)", s)
	}
	if n > (64<<20)/mult {
		return 0, fmt.Errorf("size %q: at most 64 MiB", s)
	}
	return n * mult, nil
}
