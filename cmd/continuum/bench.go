package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/continuum-mail/continuum/bench"
)

// runBench is `continuum bench smtp|lmtp|imap ...` and `continuum bench
// compare`: flags in, package bench does the work.
func runBench(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return errors.New("usage: continuum bench smtp|lmtp|imap --server ADDR [flags] | compare [flags] (continuum bench lmtp -h lists the flags)")
	}
	if args[0] == "compare" {
		return runBenchCompare(args[1:])
	}
	cfg, asJSON, err := parseBenchFlags(args[0], args[1:], os.Stdin, os.Stderr)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cfg.Progress, cfg.Terminal = os.Stderr, isTerminal(os.Stderr)
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	return bench.WriteTable(os.Stdout, res)
}

// parseBenchFlags turns the command line into a bench.Config; bench.Run
// checks the combination.
func parseBenchFlags(proto string, args []string, stdin io.Reader, stderr io.Writer) (bench.Config, bool, error) {
	cfg := bench.Config{Protocol: proto}
	switch proto {
	case bench.SMTP, bench.LMTP, bench.IMAP:
	default:
		return cfg, false, fmt.Errorf("unknown workload %q: want smtp, lmtp, imap or compare", proto)
	}
	fs := flag.NewFlagSet("bench "+proto, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.Server, "server", "", "HOST:PORT of the server under load (plain TCP)")
	fs.IntVar(&cfg.Sessions, "sessions", 8, "concurrent sessions (connections)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to run (default 30s unless --count)")
	fs.IntVar(&cfg.Count, "count", 0, "stop after this many operations")
	size := fs.String("size", "10k", "message size for random and text bodies (bytes, or 10k, 1m)")
	body := fs.String("body", bench.BodyRandom, "random (text + random base64 attachment), text (repetitive), or corpus DIR")
	fs.IntVar(&cfg.Users, "users", 1, "spread the load over this many accounts (--user with %d = 1..N)")
	fs.StringVar(&cfg.User, "user", "bench%d@example.test", "recipient / login pattern, %d numbers the users")
	fs.StringVar(&cfg.From, "from", "bench@example.org", "envelope sender")
	fs.StringVar(&cfg.Op, "op", "", "imap: login, fetch-headers (default), fetch-flags, idle, or mixed (LOGIN, SELECT, APPEND, FETCH, STORE, EXPUNGE, LOGOUT: one command per operation)")
	fs.StringVar(&cfg.Mailbox, "mailbox", "INBOX", "imap: the mailbox to select")
	fs.StringVar(&cfg.Deliver, "deliver", "", "imap idle: the LMTP address to deliver through")
	fs.BoolVar(&cfg.DeliverSMTP, "deliver-smtp", false, "imap idle: --deliver is an SMTP address, not LMTP")
	pwStdin := fs.Bool("password-stdin", false, "imap: read the users' password from standard input (else $CONTINUUM_BENCH_PASSWORD)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if err := fs.Parse(args); err != nil {
		return cfg, false, err
	}
	if cfg.Sessions < 1 {
		return cfg, false, fmt.Errorf("--sessions %d: want 1 or more", cfg.Sessions)
	}
	rest := fs.Args()
	cfg.Body = *body
	if cfg.Body == bench.BodyCorpus {
		if len(rest) == 0 {
			return cfg, false, errors.New("--body corpus needs a directory: --body corpus DIR")
		}
		cfg.CorpusDir, rest = rest[0], rest[1:]
		if len(rest) > 0 {
			if err := fs.Parse(rest); err != nil {
				return cfg, false, err
			}
			rest = fs.Args()
		}
	}
	if len(rest) > 0 {
		return cfg, false, fmt.Errorf("unexpected argument %q", rest[0])
	}
	var err error
	if cfg.Size, err = bench.ParseSize(*size); err != nil {
		return cfg, false, err
	}
	if cfg.Duration == 0 && cfg.Count == 0 {
		cfg.Duration = 30e9
	}
	if proto == bench.IMAP {
		cfg.Password = os.Getenv("CONTINUUM_BENCH_PASSWORD")
		if *pwStdin {
			line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
			if err != nil && err != io.EOF {
				return cfg, false, err
			}
			if cfg.Password = strings.TrimRight(line, "\r\n"); cfg.Password == "" {
				return cfg, false, errors.New("empty password on standard input")
			}
		}
	}
	return cfg, *asJSON, nil
}

// runBenchCompare is `continuum bench compare` (make bench-compare).
func runBenchCompare(args []string) error {
	fs := flag.NewFlagSet("bench compare", flag.ContinueOnError)
	dir := fs.String("dir", "", "work directory for Dovecot's and the cluster's data (default: a new temporary one, removed after)")
	d := fs.Duration("duration", 15e9, "length of each timed workload, per server")
	levels := fs.String("sessions", "1,8,32,128", "LMTP delivery levels")
	mailbox := fs.Int("mailbox", 10000, "messages in the FETCH mailbox")
	size := fs.String("size", "10k", "message size")
	base := fs.Int("base-port", 14000, "first port (the cluster uses base..base+300, Dovecot base+900..)")
	out := fs.String("out", "", "write BENCHMARKS.md here")
	notes := fs.String("notes", "", "a Markdown file to include after the table (analysis)")
	workloads := fs.String("workloads", "delivery,imap", "workload groups: delivery (LMTP, CPU per message), imap (FETCH, logins, IDLE, mixed load, imaplib latency)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	opts := bench.CompareOptions{Duration: *d, Mailbox: *mailbox, BasePort: *base, Log: os.Stderr}
	if *d < time.Second {
		return fmt.Errorf("--duration %v: want 1s or more", *d)
	}
	if *mailbox < 1 {
		return fmt.Errorf("--mailbox %d: want 1 or more", *mailbox)
	}
	if *base < 1024 || *base > 64000 {
		return fmt.Errorf("--base-port %d: want 1024 to 64000", *base)
	}
	for _, f := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("--sessions %q: want a list like 1,8,32,128", *levels)
		}
		opts.Sessions = append(opts.Sessions, n)
	}
	for _, w := range strings.Split(*workloads, ",") {
		switch w = strings.TrimSpace(w); w {
		case bench.GroupDelivery, bench.GroupIMAP:
			opts.Workloads = append(opts.Workloads, w)
		default:
			return fmt.Errorf("--workloads %q: want delivery, imap or both", *workloads)
		}
	}
	var err error
	if opts.Size, err = bench.ParseSize(*size); err != nil {
		return err
	}
	var noteText []byte
	if *notes != "" {
		if noteText, err = os.ReadFile(*notes); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	if opts.Binary, err = os.Executable(); err != nil {
		return err
	}
	opts.Dir = *dir
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "continuum-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(opts.Dir)
	}
	if opts.Dir, err = filepath.Abs(opts.Dir); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Compare(ctx, opts)
	if err != nil {
		return err
	}
	fmt.Println()
	bench.WriteSummary(os.Stdout, rep)
	if *out != "" {
		var buf bytes.Buffer
		bench.WriteMarkdown(&buf, rep, string(noteText))
		if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	}
	return nil
}
