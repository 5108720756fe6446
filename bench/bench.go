package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Protocols and IMAP operations.
const (
	SMTP = "smtp"
	LMTP = "lmtp"
	IMAP = "imap"

	OpLogin        = "login"
	OpFetchHeaders = "fetch-headers"
	OpFetchFlags   = "fetch-flags"
	OpIdle         = "idle"
	OpMixed        = "mixed"
)

// Config is one workload.
type Config struct {
	Protocol string // smtp, lmtp or imap
	Op       string // imap only: login, fetch-headers (default), fetch-flags, idle, mixed
	// Server is host:port (plain TCP), or several separated by commas
	// (the nodes of a cluster): session i uses the i-th, round-robin.
	Server   string
	Sessions int // concurrent sessions (connections); default 1
	// Duration bounds the run; Count, when set, stops it after that many
	// operations (whichever comes first). One of them must be set.
	Duration time.Duration
	Count    int
	Size     int    // message size in bytes for random and text bodies (default 10 KiB)
	Body     string // random (default), text or corpus
	// CorpusDir holds the messages for Body corpus.
	CorpusDir string
	// Users is how many accounts the load spreads over (default 1):
	// recipient or login i is User with %d replaced by 1..Users.
	Users int
	// User is the recipient and login pattern (default
	// "bench%d@example.test"); without %d every session uses it as is.
	User     string
	Password string // IMAP password (every user the same)
	From     string // envelope sender (default bench@example.org)
	Mailbox  string // IMAP mailbox (default INBOX)
	// Deliver is the LMTP address the idle workload delivers through
	// (DeliverSMTP: an SMTP address instead).
	Deliver     string
	DeliverSMTP bool
	// Progress, when set, receives a live progress line (a bar when
	// Terminal).
	Progress io.Writer
	Terminal bool
}

// Result is one workload's outcome.
type Result struct {
	Workload  string        `json:"workload"`
	Server    string        `json:"server"`
	Sessions  int           `json:"sessions"`
	Body      string        `json:"body,omitempty"`
	Size      int           `json:"size,omitempty"`
	Ops       int64         `json:"ops"`
	Errors    int64         `json:"errors"`
	Bytes     int64         `json:"bytes"`
	Items     int64         `json:"items,omitempty"` // messages fetched (fetch workloads)
	Elapsed   time.Duration `json:"-"`
	ElapsedS  float64       `json:"elapsed_s"`
	PerSec    float64       `json:"ops_per_s"`
	P50, P90  time.Duration `json:"-"`
	P99, Max  time.Duration `json:"-"`
	P50ms     float64       `json:"p50_ms"`
	P90ms     float64       `json:"p90_ms"`
	P99ms     float64       `json:"p99_ms"`
	MaxMs     float64       `json:"max_ms"`
	ErrorList []string      `json:"first_errors,omitempty"`
}

// session runs operations; op returns the bytes moved and the items seen.
type session interface {
	op(ctx context.Context) (bytes, items int64, err error)
	close()
}

func (c *Config) defaults() error {
	c.Protocol = strings.ToLower(c.Protocol)
	switch c.Protocol {
	case SMTP, LMTP:
		if c.Op != "" {
			return fmt.Errorf("--op is for imap, not %s", c.Protocol)
		}
	case IMAP:
		if c.Op == "" {
			c.Op = OpFetchHeaders
		}
		switch c.Op {
		case OpLogin, OpFetchHeaders, OpFetchFlags, OpMixed:
		case OpIdle:
			if c.Deliver == "" {
				return errors.New("imap idle needs --deliver ADDR (the LMTP or SMTP address to deliver through)")
			}
		default:
			return fmt.Errorf("op %q: want login, fetch-headers, fetch-flags, idle or mixed", c.Op)
		}
		if c.Password == "" {
			return errors.New("imap needs a password (--password-stdin or CONTINUUM_BENCH_PASSWORD)")
		}
	case "":
		return errors.New("no protocol: want smtp, lmtp or imap")
	default:
		return fmt.Errorf("protocol %q: want smtp, lmtp or imap", c.Protocol)
	}
	if c.Server == "" {
		return errors.New("no server (--server HOST:PORT)")
	}
	for _, a := range strings.Split(c.Server, ",") {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("server %q: want HOST:PORT[,HOST:PORT...]", c.Server)
		}
	}
	if c.Sessions == 0 {
		c.Sessions = 1
	}
	if c.Sessions < 0 || c.Sessions > 10000 {
		return fmt.Errorf("sessions %d: want 1 to 10000", c.Sessions)
	}
	if c.Duration < 0 || c.Count < 0 {
		return errors.New("duration and count must not be negative")
	}
	if c.Duration == 0 && c.Count == 0 {
		return errors.New("neither a duration nor a count: the run would not end")
	}
	if c.Size == 0 {
		c.Size = 10 << 10
	}
	if c.Body == "" {
		c.Body = BodyRandom
	}
	if c.Users == 0 {
		c.Users = 1
	}
	if c.Users < 0 {
		return fmt.Errorf("users %d: want 1 or more", c.Users)
	}
	if c.User == "" {
		c.User = "bench%d@example.test"
	}
	if strings.Count(c.User, "%") > 1 || (strings.Contains(c.User, "%") && !strings.Contains(c.User, "%d")) {
		return fmt.Errorf("user pattern %q: at most one %%d", c.User)
	}
	if c.From == "" {
		c.From = "bench@example.org"
	}
	if c.Mailbox == "" {
		c.Mailbox = "INBOX"
	}
	return nil
}

// server returns session i's server address.
func (c *Config) server(i int) string {
	all := strings.Split(c.Server, ",")
	return all[i%len(all)]
}

// deliverAddr returns session i's delivery address (idle workload).
func (c *Config) deliverAddr(i int) string {
	all := strings.Split(c.Deliver, ",")
	return all[i%len(all)]
}

// user returns the i-th (0-based) user name.
func (c *Config) user(i int) string {
	if !strings.Contains(c.User, "%d") {
		return c.User
	}
	return fmt.Sprintf(c.User, i%c.Users+1)
}

// Workload names the run ("lmtp", "imap fetch-headers").
func (c *Config) Workload() string {
	if c.Protocol == IMAP {
		return "imap " + c.Op
	}
	return c.Protocol
}

// Run runs the workload and returns its result. Operation errors are
// counted (the first few kept) and the session reconnects; Run itself
// fails only on a bad configuration or when no session can start.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	var b *bodies
	if cfg.Protocol != IMAP || cfg.Op == OpIdle || cfg.Op == OpMixed {
		var err error
		if b, err = newBodies(cfg.Body, cfg.Size, cfg.CorpusDir, cfg.From); err != nil {
			return nil, err
		}
	}
	newSession := func(i int, rng *rand.Rand) (session, error) {
		// Return a nil interface, not a typed nil, on failure.
		switch cfg.Protocol {
		case SMTP, LMTP:
			if s, err := newMailSession(&cfg, b, i, rng, cfg.Protocol == LMTP, cfg.server(i)); err == nil {
				return s, nil
			} else {
				return nil, err
			}
		}
		if s, err := newIMAPSession(ctx, &cfg, b, i, rng); err == nil {
			return s, nil
		} else {
			return nil, err
		}
	}

	// Connect every session first, so the timed part is load only (and a
	// wrong address or password fails fast, with its error).
	sessions := make([]session, cfg.Sessions)
	var wg sync.WaitGroup
	var startErr error
	var mu sync.Mutex
	rngs := make([]*rand.Rand, cfg.Sessions)
	for i := range sessions {
		rngs[i] = rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := newSession(i, rngs[i])
			mu.Lock()
			defer mu.Unlock()
			if err != nil && startErr == nil {
				startErr = fmt.Errorf("session %d: %w", i, err)
			}
			sessions[i] = s
		}()
	}
	wg.Wait()
	if startErr != nil {
		for _, s := range sessions {
			if s != nil {
				s.close()
			}
		}
		return nil, startErr
	}

	res := &Result{Workload: cfg.Workload(), Server: cfg.Server, Sessions: cfg.Sessions}
	if b != nil {
		res.Body, res.Size = cfg.Body, cfg.Size
	}
	var ops, errs, nbytes, items, started atomic.Int64
	lat := make([][]time.Duration, cfg.Sessions)
	prog := newProgress(cfg.Progress, cfg.Terminal, res.Workload, cfg.Count, cfg.Duration)
	runCtx := ctx
	var cancel context.CancelFunc = func() {}
	if cfg.Duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
	}
	defer cancel()
	start := time.Now()
	for i := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := sessions[i]
			defer func() {
				if s != nil {
					s.close()
				}
			}()
			for runCtx.Err() == nil {
				if cfg.Count > 0 && started.Add(1) > int64(cfg.Count) {
					return
				}
				if s == nil {
					var err error
					if s, err = newSession(i, rngs[i]); err != nil {
						errs.Add(1)
						res.noteErr(&mu, err)
						prog.add(0, 1)
						select { // a server down: do not spin
						case <-runCtx.Done():
						case <-time.After(100 * time.Millisecond):
						}
						continue
					}
				}
				t0 := time.Now()
				n, it, err := s.op(runCtx)
				d := time.Since(t0)
				if err != nil {
					if runCtx.Err() != nil {
						return // cut by the deadline: not an error
					}
					errs.Add(1)
					res.noteErr(&mu, err)
					prog.add(0, 1)
					s.close()
					s = nil
					continue
				}
				lat[i] = append(lat[i], d)
				ops.Add(1)
				nbytes.Add(n)
				items.Add(it)
				prog.add(1, 0)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	prog.done()
	res.Ops, res.Errors, res.Bytes, res.Items = ops.Load(), errs.Load(), nbytes.Load(), items.Load()
	res.fill(lat)
	return res, nil
}

func (r *Result) noteErr(mu *sync.Mutex, err error) {
	mu.Lock()
	defer mu.Unlock()
	if len(r.ErrorList) < 5 {
		r.ErrorList = append(r.ErrorList, err.Error())
	}
}

// fill computes the rate and the percentiles.
func (r *Result) fill(lat [][]time.Duration) {
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if r.Elapsed > 0 {
		r.PerSec = float64(r.Ops) / r.Elapsed.Seconds()
	}
	if len(all) > 0 {
		r.P50, r.P90, r.P99 = Percentile(all, 50), Percentile(all, 90), Percentile(all, 99)
		r.Max = all[len(all)-1]
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.ElapsedS = r.Elapsed.Seconds()
	r.P50ms, r.P90ms, r.P99ms, r.MaxMs = ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max)
}

// Percentile returns the p-th percentile (nearest rank) of sorted.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	k := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[max(0, min(k, len(sorted)-1))]
}
