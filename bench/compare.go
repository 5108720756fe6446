package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// CompareOptions tune Compare.
type CompareOptions struct {
	Binary   string        // the continuum binary (runs `continuum dev`)
	Dir      string        // work directory (Dovecot's and the cluster's data)
	Duration time.Duration // per timed workload (default 15s)
	Sessions []int         // LMTP delivery levels (default 1, 8, 32, 128)
	Mailbox  int           // messages in the FETCH mailbox (default 10,000)
	Size     int           // message size (default 10 KiB, random body)
	BasePort int           // first port (default 14000: below the ports tests pick, 20000–32767, and the ephemeral range; Dovecot uses base+924 and base+943)
	// Workloads picks the groups to run: "delivery" (LMTP delivery and
	// CPU per message) and "imap" (FETCH, logins, IDLE, the mixed load,
	// imaplib latency); default both.
	Workloads []string
	Log       io.Writer // progress
}

// Workload groups of CompareOptions.Workloads.
const (
	GroupDelivery = "delivery"
	GroupIMAP     = "imap"
)

// mixedClients is the IMAP mixed load's client count (issue #21: 20
// imaptest clients).
const mixedClients = 20

// Row is one workload measured on both servers.
type Row struct {
	Name               string
	Dovecot, Continuum *Result
	// CPU per operation, whole machine (ms), both raw and with the
	// background rate sampled just before subtracted.
	DovecotCPU, ContinuumCPU       float64
	DovecotCPUNet, ContinuumCPUNet float64
	// The servers' own processes' CPU per operation (ms): robust to the
	// neighbours' load, which the whole-machine figure is not.
	DovecotServerCPU, ContinuumServerCPU float64
	// Unit is what the figure is: "ops/s" (higher is better) or "p50"
	// (latency, lower is better).
	Unit string
	// Failed holds why a server's run could not be done (after retries).
	Failed []string
}

// Ratio is Continuum's figure over Dovecot's (>1: Continuum better).
func (r *Row) Ratio() float64 {
	if r.Dovecot == nil || r.Continuum == nil {
		return 0
	}
	if r.Unit == "p50" {
		if r.Continuum.P50 == 0 {
			return 0
		}
		return float64(r.Dovecot.P50) / float64(r.Continuum.P50)
	}
	if r.Dovecot.PerSec == 0 {
		return 0
	}
	return r.Continuum.PerSec / r.Dovecot.PerSec
}

// Report is one Compare run.
type Report struct {
	Rows          []*Row
	Start, End    time.Time
	Machine       string
	LoadBefore    string
	LoadAfter     string
	Dovecot       string
	Options       CompareOptions
	ContinuumRev  string
	FillDovecot   *Result
	FillContinuum *Result
}

const comparePassword = "bench-compare-password"

// Compare starts Dovecot and a 3-node Continuum cluster in opts.Dir and
// measures both on the same workloads, one server at a time (the other
// idle), in one run.
func Compare(ctx context.Context, opts CompareOptions) (*Report, error) {
	if opts.Binary == "" {
		return nil, errors.New("compare: no continuum binary")
	}
	if opts.Dir == "" {
		return nil, errors.New("compare: no work directory")
	}
	if opts.Duration == 0 {
		opts.Duration = 15 * time.Second
	}
	if len(opts.Sessions) == 0 {
		opts.Sessions = []int{1, 8, 32, 128}
	}
	if opts.Mailbox == 0 {
		opts.Mailbox = 10000
	}
	if opts.Size == 0 {
		opts.Size = 10 << 10
	}
	if opts.BasePort == 0 {
		opts.BasePort = 14000
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if len(opts.Workloads) == 0 {
		opts.Workloads = []string{GroupDelivery, GroupIMAP}
	}
	want := map[string]bool{}
	for _, w := range opts.Workloads {
		if w != GroupDelivery && w != GroupIMAP {
			return nil, fmt.Errorf("compare: workload group %q: want delivery or imap", w)
		}
		want[w] = true
	}
	maxSessions := 0
	if want[GroupDelivery] {
		for _, s := range opts.Sessions {
			maxSessions = max(maxSessions, s)
		}
	}
	if want[GroupIMAP] {
		maxSessions = max(maxSessions, mixedClients)
	}
	logf := func(format string, a ...any) { fmt.Fprintf(opts.Log, "bench compare: "+format+"\n", a...) }
	rep := &Report{Start: time.Now(), Options: opts, Machine: machine(), LoadBefore: loadavg(), Dovecot: dovecotVersion()}

	users := []string{"big@example.test", "latency@example.test"}
	for i := 1; i <= maxSessions; i++ {
		users = append(users, fmt.Sprintf("bench%d@example.test", i))
	}
	dcDir := filepath.Join(opts.Dir, "dovecot")
	dcIMAP := fmt.Sprintf("127.0.0.1:%d", opts.BasePort+943)
	dcLMTP := fmt.Sprintf("127.0.0.1:%d", opts.BasePort+924)
	logf("starting Dovecot in %s (imap %s, lmtp %s)", dcDir, dcIMAP, dcLMTP)
	dc, err := StartDovecot(dcDir, dcIMAP, dcLMTP, users, comparePassword)
	if err != nil {
		return nil, err
	}
	defer dc.Stop()
	logf("starting a 3-node Continuum cluster (continuum dev) in %s", filepath.Join(opts.Dir, "continuum"))
	cl, err := StartCluster(opts.Binary, filepath.Join(opts.Dir, "continuum"), opts.BasePort)
	if err != nil {
		return nil, err
	}
	defer cl.Stop()
	logf("adding %d users to the cluster", len(users))
	if err := cl.AddUsers(users, comparePassword); err != nil {
		return nil, err
	}

	type server struct {
		name       string
		lmtp, imap string
		groups     []int // process groups: the server's processes
	}
	servers := []server{{"dovecot", dcLMTP, dcIMAP, []int{dc.cmd.Process.Pid}}, {"continuum", strings.Join(cl.LMTP, ","), strings.Join(cl.IMAP, ","), cl.PIDs}}
	var lastServerCPU float64
	run := func(srv server, cfg Config) (*Result, float64, float64, error) {
		if ctx.Err() != nil {
			return nil, 0, 0, ctx.Err()
		}
		cfg.Password, cfg.Size = comparePassword, opts.Size
		cfg.Progress = opts.Log
		var r *Result
		var err error
		var bg, c0 float64
		var t0 time.Time
		// A session that cannot start (a leader change on a loaded
		// machine: "cluster unavailable") fails the run: try again.
		for try := 1; ; try++ {
			bg = backgroundCPU(2 * time.Second)
			s0 := groupCPU(srv.groups)
			c0, t0 = procStatBusy(), time.Now()
			if r, err = Run(ctx, cfg); err == nil {
				lastServerCPU = groupCPU(srv.groups) - s0
				break
			}
			if try == 3 || ctx.Err() != nil {
				return nil, 0, 0, fmt.Errorf("%s %s: %w", srv.name, cfg.Workload(), err)
			}
			logf("%s %s: %v; again in 5 s", srv.name, cfg.Workload(), err)
			time.Sleep(5 * time.Second)
		}
		busy := procStatBusy() - c0
		el := time.Since(t0).Seconds()
		var cpu, net float64
		if r.Ops > 0 {
			cpu = busy * 1000 / float64(r.Ops)
			net = max(0, busy-bg*el) * 1000 / float64(r.Ops)
			lastServerCPU = lastServerCPU * 1000 / float64(r.Ops)
		}
		r.Server = srv.name
		return r, cpu, net, nil
	}
	pair := func(name, unit string, mk func(srv server) Config) error {
		row := &Row{Name: name, Unit: unit}
		for _, srv := range servers {
			logf("%s: %s", name, srv.name)
			r, cpu, net, err := run(srv, mk(srv))
			if err != nil {
				if ctx.Err() != nil {
					return err
				}
				// Recorded in the report; the other workloads go on.
				logf("%s: %s: %v", name, srv.name, err)
				row.Failed = append(row.Failed, err.Error())
				continue
			}
			if srv.name == "dovecot" {
				row.Dovecot, row.DovecotCPU, row.DovecotCPUNet, row.DovecotServerCPU = r, cpu, net, lastServerCPU
			} else {
				row.Continuum, row.ContinuumCPU, row.ContinuumCPUNet, row.ContinuumServerCPU = r, cpu, net, lastServerCPU
			}
		}
		rep.Rows = append(rep.Rows, row)
		if row.Dovecot != nil && row.Continuum != nil {
			logf("%s: dovecot %.1f/s p50 %v, continuum %.1f/s p50 %v, ratio %.2f×", name, row.Dovecot.PerSec, row.Dovecot.P50, row.Continuum.PerSec, row.Continuum.P50, row.Ratio())
		}
		return nil
	}

	for _, n := range opts.Sessions {
		if !want[GroupDelivery] {
			break
		}
		if err := pair(fmt.Sprintf("LMTP delivery, %d sessions", n), "ops/s", func(srv server) Config {
			return Config{Protocol: LMTP, Server: srv.lmtp, Sessions: n, Users: n, Duration: opts.Duration}
		}); err != nil {
			return rep, err
		}
	}
	if !want[GroupIMAP] {
		rep.End, rep.LoadAfter = time.Now(), loadavg()
		return rep, nil
	}
	// The FETCH mailbox: opts.Mailbox messages for big@.
	for i, srv := range servers {
		logf("filling big@example.test on %s with %d messages", srv.name, opts.Mailbox)
		// Errors (a 451 during a leader change) are retried until the
		// mailbox holds at least Mailbox messages.
		var r *Result
		done := int64(0)
		for try := 0; done < int64(opts.Mailbox); try++ {
			if try == 5 {
				return rep, fmt.Errorf("filling %s: %d of %d messages after 5 tries: %v", srv.name, done, opts.Mailbox, r.ErrorList)
			}
			var err error
			if r, _, _, err = run(srv, Config{Protocol: LMTP, Server: srv.lmtp, Sessions: 32, Count: opts.Mailbox - int(done), User: "big@example.test"}); err != nil {
				return rep, err
			}
			done += r.Ops
		}
		if i == 0 {
			rep.FillDovecot = r
		} else {
			rep.FillContinuum = r
		}
		// The fill leaves background work (Continuum: the full-text
		// index catching up, Pebble compactions); let it finish before
		// the timed IMAP rows, so that they measure IMAP.
		t0 := time.Now()
		quiet := settle(srv.groups, 0.25, 3*time.Minute)
		logf("%s after the fill: %v until its processes used under 0.25 CPU (quiet: %v)", srv.name, time.Since(t0).Round(time.Second), quiet)
	}
	imapRows := []struct {
		name, op string
		sessions int
		user     string
	}{
		{fmt.Sprintf("IMAP SELECT + FETCH 5 header fields, %d messages", opts.Mailbox), OpFetchHeaders, 2, "big@example.test"},
		{fmt.Sprintf("IMAP SELECT + FETCH 5 header fields, %d messages, 1 session", opts.Mailbox), OpFetchHeaders, 1, "big@example.test"},
		{fmt.Sprintf("IMAP FETCH FLAGS, %d messages", opts.Mailbox), OpFetchFlags, 2, "big@example.test"},
		{"IMAP logins (connect, LOGIN, LOGOUT), 8 sessions", OpLogin, 8, ""},
	}
	for _, w := range imapRows {
		if err := pair(w.name, "ops/s", func(srv server) Config {
			c := Config{Protocol: IMAP, Op: w.op, Server: srv.imap, Sessions: w.sessions, Users: 8, Duration: opts.Duration}
			if w.user != "" {
				c.User = w.user
			}
			return c
		}); err != nil {
			return rep, err
		}
	}
	if err := pair("Delivery to IDLE notice (LMTP, another node's IMAP), 4 sessions", "p50", func(srv server) Config {
		c := Config{Protocol: IMAP, Op: OpIdle, Server: srv.imap, Deliver: srv.lmtp, Sessions: 4, Users: 4, Duration: opts.Duration}
		if srv.name == "continuum" {
			// Deliver on node i+1, watch on node i: the notice crosses nodes.
			c.Deliver = strings.Join(append(cl.LMTP[1:], cl.LMTP[0]), ",")
		}
		return c
	}); err != nil {
		return rep, err
	}
	// The IDLE row delivered a message per operation: let both servers
	// finish that work (index, compactions) before the mixed load.
	quiet := func() {
		for _, srv := range servers {
			t0 := time.Now()
			ok := settle(srv.groups, 0.25, time.Minute)
			logf("%s: %v until its processes used under 0.25 CPU (quiet: %v)", srv.name, time.Since(t0).Round(time.Second), ok)
		}
	}
	quiet()
	if err := pair(fmt.Sprintf("IMAP mixed load, %d clients (LOGIN, SELECT, APPEND, FETCH, STORE, EXPUNGE, LOGOUT): commands", mixedClients), "ops/s", func(srv server) Config {
		return Config{Protocol: IMAP, Op: OpMixed, Server: srv.imap, Sessions: mixedClients, Users: mixedClients, Duration: opts.Duration}
	}); err != nil {
		return rep, err
	}
	// Single-client latency through Python's imaplib: Dovecot, then the
	// same at the cluster's leader; again for a follower.
	quiet()
	for _, role := range []string{"leader", "follower"} {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		ra := &Row{Name: fmt.Sprintf("IMAP APPEND %s, Python imaplib, one client, at the %s", sizeName(opts.Size), role), Unit: "p50"}
		rs := &Row{Name: fmt.Sprintf("IMAP STORE, Python imaplib, one client, at the %s", role), Unit: "p50"}
		icfg := ImaplibConfig{Server: dcIMAP, User: "latency@example.test", Password: comparePassword, Size: opts.Size}
		logf("imaplib latency: dovecot")
		if a, st, err := Imaplib(ctx, icfg); err != nil {
			logf("imaplib latency: dovecot: %v", err)
			ra.Failed, rs.Failed = append(ra.Failed, err.Error()), append(rs.Failed, err.Error())
		} else {
			ra.Dovecot, rs.Dovecot = a, st
		}
		leader, err := cl.Leader()
		if err == nil {
			node := leader
			if role == "follower" {
				node = (leader + 1) % len(cl.IMAP)
			}
			icfg.Server = cl.IMAP[node]
			logf("imaplib latency: continuum node %d (%s)", node+1, role)
			var a, st *Result
			if a, st, err = Imaplib(ctx, icfg); err == nil {
				ra.Continuum, rs.Continuum = a, st
				if l, lerr := cl.Leader(); lerr != nil || l != leader {
					ra.Name += " (the leader changed during the run)"
					rs.Name += " (the leader changed during the run)"
				}
			}
		}
		if err != nil {
			logf("imaplib latency: continuum: %v", err)
			ra.Failed, rs.Failed = append(ra.Failed, err.Error()), append(rs.Failed, err.Error())
		}
		rep.Rows = append(rep.Rows, ra, rs)
	}
	rep.End, rep.LoadAfter = time.Now(), loadavg()
	return rep, nil
}

// sizeName is a message size as "10 KiB".
func sizeName(n int) string {
	if n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d bytes", n)
}

// settle waits until the processes of groups use less than rate CPU
// (CPU-seconds per second, over 3 s) or until limit; it reports whether
// they got there.
func settle(groups []int, rate float64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		c0, t0 := groupCPU(groups), time.Now()
		time.Sleep(3 * time.Second)
		if (groupCPU(groups)-c0)/time.Since(t0).Seconds() < rate {
			return true
		}
	}
	return false
}

// procStatBusy is the machine's busy CPU time so far, in seconds (every
// CPU's user+nice+system+irq+softirq+steal from /proc/stat).
func procStatBusy() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest is in user already
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		busy += n
	}
	return busy / clockTicks
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

// backgroundCPU samples the machine's busy CPU rate (CPU-seconds per
// second) over d while this program is idle: the other users' load.
func backgroundCPU(d time.Duration) float64 {
	c0, t0 := procStatBusy(), time.Now()
	time.Sleep(d)
	return (procStatBusy() - c0) / time.Since(t0).Seconds()
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func machine() string {
	model, mem := "?", "?"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%d CPUs (%s), %s RAM, Linux %s, %s", runtime.NumCPU(), model, mem, strings.TrimSpace(string(kernel)), runtime.Version())
}

func dovecotVersion() string {
	out, err := exec.Command("dovecot", "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

// groupCPU is the CPU time, in seconds, of every process in the given
// process groups (utime + stime from /proc/PID/stat), plus the children
// their leaders have reaped (cutime + cstime): a server's own CPU, Dovecot's
// short-lived login and LMTP processes included, whatever else runs on the
// machine.
func groupCPU(groups []int) float64 {
	want := map[int]bool{}
	for _, g := range groups {
		want[g] = true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var ticks float64
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 15 {
			continue
		}
		pgrp, _ := strconv.Atoi(f[2])
		if !want[pgrp] {
			continue
		}
		for _, k := range []int{11, 12} { // utime, stime
			n, _ := strconv.ParseFloat(f[k], 64)
			ticks += n
		}
		if pid == pgrp {
			for _, k := range []int{13, 14} { // cutime, cstime
				n, _ := strconv.ParseFloat(f[k], 64)
				ticks += n
			}
		}
	}
	return ticks / clockTicks
}
