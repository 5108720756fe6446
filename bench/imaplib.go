package bench

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

//go:embed imaplib_latency.py
var imaplibScript []byte

// ImaplibConfig is one single-client latency run with Python's imaplib.
type ImaplibConfig struct {
	Python   string // python3 (default: found in PATH)
	Server   string // HOST:PORT, plain TCP
	User     string
	Password string
	Mailbox  string // default INBOX
	Count    int    // APPENDs, then STOREs (default 100)
	Size     int    // APPEND size in bytes (default 10 KiB)
}

// Imaplib runs Python's imaplib against one server, one command at a time:
// Count APPENDs of Size bytes, then Count STOREs (+FLAGS and -FLAGS
// \Flagged in turn on message 1), each timed by the script. It returns one
// Result per command (Ops, percentiles; PerSec is 1/mean latency).
func Imaplib(ctx context.Context, cfg ImaplibConfig) (appendRes, storeRes *Result, err error) {
	if cfg.Python == "" {
		if cfg.Python, err = exec.LookPath("python3"); err != nil {
			return nil, nil, fmt.Errorf("imaplib: python3 not installed: %w", err)
		}
	}
	host, port, err := net.SplitHostPort(cfg.Server)
	if err != nil {
		return nil, nil, fmt.Errorf("imaplib: server %q: %w", cfg.Server, err)
	}
	if cfg.Mailbox == "" {
		cfg.Mailbox = "INBOX"
	}
	if cfg.Count == 0 {
		cfg.Count = 100
	}
	if cfg.Size == 0 {
		cfg.Size = 10 << 10
	}
	dir, err := os.MkdirTemp("", "continuum-imaplib-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "imaplib_latency.py")
	if err := os.WriteFile(script, imaplibScript, 0o600); err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, cfg.Python, script, host, port, cfg.User, cfg.Password, strconv.Itoa(cfg.Count), strconv.Itoa(cfg.Size), cfg.Mailbox)
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, nil, fmt.Errorf("imaplib against %s: %v: %s", cfg.Server, err, ee.Stderr)
		}
		return nil, nil, fmt.Errorf("imaplib against %s: %w", cfg.Server, err)
	}
	var got struct {
		Append []float64 `json:"append_ms"`
		Store  []float64 `json:"store_ms"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		return nil, nil, fmt.Errorf("imaplib output %q: %w", out, err)
	}
	mk := func(name string, ms []float64, size int) *Result {
		lat := make([]time.Duration, len(ms))
		var sum time.Duration
		for i, m := range ms {
			lat[i] = time.Duration(m * float64(time.Millisecond))
			sum += lat[i]
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		r := &Result{Workload: name, Server: cfg.Server, Sessions: 1, Size: size, Ops: int64(len(lat)), Elapsed: sum}
		r.fill([][]time.Duration{lat})
		return r
	}
	return mk("imaplib append", got.Append, cfg.Size), mk("imaplib store", got.Store, 0), nil
}
