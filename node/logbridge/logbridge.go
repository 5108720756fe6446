package logbridge

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// HCLog returns an hclog.Logger named component that writes to l.
func HCLog(l *slog.Logger, component string) hclog.Logger {
	level := hclog.Info
	switch {
	case l.Enabled(context.Background(), slog.LevelDebug):
		level = hclog.Debug
	case !l.Enabled(context.Background(), slog.LevelInfo):
		level = hclog.Warn
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:            component,
		Level:           level,
		Output:          &writer{l: l.With("component", component)},
		DisableTime:     true,
		IncludeLocation: false,
	})
}

// StdLog returns a *log.Logger (memberlist's interface) that writes to l.
func StdLog(l *slog.Logger, component string) *log.Logger {
	return log.New(&writer{l: l.With("component", component)}, "", 0)
}

// writer turns each line hclog or log writes into one slog record, keeping
// the level written in brackets.
type writer struct{ l *slog.Logger }

func (w *writer) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		lvl := slog.LevelInfo
		for tag, l := range map[string]slog.Level{"[ERROR]": slog.LevelError, "[ERR]": slog.LevelError, "[WARN]": slog.LevelWarn, "[DEBUG]": slog.LevelDebug, "[TRACE]": slog.LevelDebug - 4, "[INFO]": slog.LevelInfo} {
			if i := strings.Index(s, tag); i >= 0 {
				lvl = l
				s = strings.TrimSpace(s[i+len(tag):])
				break
			}
		}
		w.l.Log(context.Background(), lvl, s)
	}
	return len(p), nil
}

var _ io.Writer = (*writer)(nil)
