package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/nodetest"
)

// TestDovecot: bench compare's Dovecot starts from its temporary
// configuration, takes LMTP deliveries for its users and serves them over
// IMAP (the pieces of make bench-compare, small).
func TestDovecot(t *testing.T) {
	if _, err := exec.LookPath("dovecot"); err != nil {
		t.Skip("dovecot not installed (apt-get install dovecot-imapd dovecot-lmtpd; .ci/run does)")
	}
	dir := t.TempDir()
	users := []string{"bench1@example.test", "bench2@example.test"}
	d, err := StartDovecot(filepath.Join(dir, "dc"), nodetest.FreeAddr(t), nodetest.FreeAddr(t), users, "pw")
	if err != nil {
		if strings.Contains(err.Error(), "dovecot-lmtpd") {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer d.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := Run(ctx, Config{Protocol: LMTP, Server: d.LMTP, Sessions: 2, Users: 2, Count: 10})
	if err != nil || r.Errors != 0 || r.Ops != 10 {
		t.Fatalf("lmtp into dovecot: %v %+v", err, r)
	}
	r, err = Run(ctx, Config{Protocol: IMAP, Op: OpFetchHeaders, Server: d.IMAP, Users: 2, Sessions: 2, Count: 2, Password: "pw"})
	if err != nil || r.Errors != 0 || r.Items != 10 {
		t.Fatalf("fetch from dovecot: %v %+v", err, r)
	}
	r, err = Run(ctx, Config{Protocol: IMAP, Op: OpIdle, Server: d.IMAP, Deliver: d.LMTP, Count: 2, Password: "pw"})
	if err != nil || r.Errors != 0 || r.Items != 2 {
		t.Fatalf("idle on dovecot: %v %+v", err, r)
	}
	// Mixed: 40 commands on one connection's cycle — LOGIN, SELECT, five
	// cycles of six commands, LOGOUT, LOGIN, SELECT, then APPEND again:
	// six APPENDs of about 10 KiB (Bytes also counts the fetched header
	// sections), FETCHes that return messages, no errors.
	r, err = Run(ctx, Config{Protocol: IMAP, Op: OpMixed, Server: d.IMAP, User: "bench2@example.test", Count: 40, Password: "pw"})
	if err != nil || r.Errors != 0 || r.Ops != 40 || r.Bytes < 6*9<<10 || r.Items == 0 {
		t.Fatalf("mixed on dovecot: %v %+v", err, r)
	}
	if _, err := exec.LookPath("python3"); err == nil {
		a, s, err := Imaplib(ctx, ImaplibConfig{Server: d.IMAP, User: "bench1@example.test", Password: "pw", Count: 5})
		if err != nil || a.Ops != 5 || s.Ops != 5 || a.P50 <= 0 || s.P50 <= 0 || a.P99 < a.P50 || a.Size != 10<<10 {
			t.Fatalf("imaplib on dovecot: %v %+v %+v", err, a, s)
		}
		if _, _, err := Imaplib(ctx, ImaplibConfig{Server: d.IMAP, User: "bench1@example.test", Password: "wrong", Count: 1}); err == nil {
			t.Error("imaplib with a wrong password: no error")
		}
	}
}

// TestWriteMarkdown: the report has every row, the ratios the right way
// round, the machine and the shared-machine warning.
func TestWriteMarkdown(t *testing.T) {
	res := func(perSec float64, p50 time.Duration) *Result {
		return &Result{PerSec: perSec, P50: p50, P99: 2 * p50, Ops: 100}
	}
	rep := &Report{Machine: "2 CPUs", LoadBefore: "1.00 2.00 3.00", LoadAfter: "4.00 5.00 6.00", Options: CompareOptions{Mailbox: 10000, Size: 10240, Duration: 15 * time.Second},
		Rows: []*Row{
			{Name: "LMTP delivery, 32 sessions", Unit: "ops/s", Dovecot: res(100, 10*time.Millisecond), Continuum: res(400, 5*time.Millisecond), DovecotCPU: 8, ContinuumCPU: 2, DovecotServerCPU: 6, ContinuumServerCPU: 1.5},
			{Name: "Delivery to IDLE notice", Unit: "p50", Dovecot: res(2, 500*time.Millisecond), Continuum: res(20, 50*time.Millisecond)},
			{Name: "IMAP mixed load, 20 clients", Unit: "ops/s", Dovecot: res(300, 6*time.Millisecond), Continuum: res(200, 40*time.Millisecond), DovecotServerCPU: 1, ContinuumServerCPU: 4},
		}}
	var buf bytes.Buffer
	WriteMarkdown(&buf, rep, "Analysis here.")
	out := buf.String()
	for _, want := range []string{
		"| LMTP delivery, 32 sessions | 100.0/s, p50 10.0ms, p99 20.0ms | 400.0/s, p50 5.0ms, p99 10.0ms | 4.00× |",
		"10.00× (latency",
		"| CPU per delivered message, 32 sessions: the server's processes (whole machine) | 6.00 ms (8.00 ms) | 1.50 ms (2.00 ms) | 4.00× (Dovecot ÷ Continuum, servers' CPU) |",
		"| CPU per operation, mixed load, 20 clients: the server's processes | 1.00 ms | 4.00 ms | 0.25× (Dovecot ÷ Continuum, servers' CPU) |",
		"load average 1.00 2.00 3.00 at the start", "1.00 2.00 3.00", "2 CPUs", "Analysis here.", "make bench-compare",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("BENCHMARKS.md lacks %q:\n%s", want, out)
		}
	}
	if got := fmt.Sprint(rep.Rows[0].Ratio()); got != "4" {
		t.Errorf("ratio %s", got)
	}
}

// TestGroupCPU: the CPU of this test's own process group grows as it burns.
func TestGroupCPU(t *testing.T) {
	pg, err := syscall.Getpgid(0)
	if err != nil {
		t.Skip(err)
	}
	a := groupCPU([]int{pg})
	end := time.Now().Add(100 * time.Millisecond)
	for time.Now().Before(end) {
	}
	if b := groupCPU([]int{pg}); b <= a {
		t.Fatalf("process group CPU %v then %v", a, b)
	}
	if n := groupCPU([]int{-5}); n != 0 {
		t.Errorf("no such group: %v", n)
	}
}

func TestProcStatBusy(t *testing.T) {
	a := procStatBusy()
	end := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(end) { // burn some CPU so the counter moves
	}
	if b := procStatBusy(); a <= 0 || b < a {
		t.Fatalf("busy CPU %v then %v", a, b)
	}
}
