package bench

import (
	"fmt"
	"io"
	"strings"
)

// WriteSummary writes the comparison table (Markdown, readable as text).
func WriteSummary(w io.Writer, rep *Report) {
	fmt.Fprintln(w, "| workload | Dovecot (1 copy) | Continuum (3 nodes, 3 copies) | ratio |")
	fmt.Fprintln(w, "|---|---|---|---|")
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s |\n", r.Name, cell(r.Dovecot, r.Unit), cell(r.Continuum, r.Unit), ratio(r))
	}
	for _, r := range rep.Rows {
		// The servers' own CPU per IMAP operation: what the neighbours'
		// load moves least (imaplib rows run outside Run: no figure).
		if strings.HasPrefix(r.Name, "IMAP") && r.Unit == "ops/s" && r.Dovecot != nil && r.Continuum != nil && r.ContinuumServerCPU > 0 {
			fmt.Fprintf(w, "| CPU per operation, %s: the server's processes | %.2f ms | %.2f ms | %s |\n",
				strings.TrimPrefix(r.Name, "IMAP "), r.DovecotServerCPU, r.ContinuumServerCPU, cpuRatio(r))
		}
	}
	for _, r := range rep.Rows {
		if strings.HasPrefix(r.Name, "LMTP delivery") && r.Dovecot != nil && r.Continuum != nil {
			fmt.Fprintf(w, "| CPU per delivered message, %s: the server's processes (whole machine) | %.2f ms (%.2f ms) | %.2f ms (%.2f ms) | %s |\n",
				strings.TrimPrefix(r.Name, "LMTP delivery, "), r.DovecotServerCPU, r.DovecotCPU, r.ContinuumServerCPU, r.ContinuumCPU, cpuRatio(r))
		}
	}
}

func cell(r *Result, unit string) string {
	if r == nil {
		return "-"
	}
	s := fmt.Sprintf("%.1f/s, p50 %s, p99 %s", r.PerSec, fmtDur(r.P50), fmtDur(r.P99))
	if unit == "p50" {
		s = fmt.Sprintf("p50 %s, p90 %s, p99 %s (%d)", fmtDur(r.P50), fmtDur(r.P90), fmtDur(r.P99), r.Ops)
	}
	if r.Errors > 0 {
		s += fmt.Sprintf(", %d errors", r.Errors)
	}
	return s
}

func ratio(r *Row) string {
	x := r.Ratio()
	if x == 0 {
		return "-"
	}
	if r.Unit == "p50" {
		return fmt.Sprintf("%.2f× (latency, Dovecot ÷ Continuum)", x)
	}
	return fmt.Sprintf("%.2f×", x)
}

func cpuRatio(r *Row) string {
	if r.ContinuumServerCPU == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f× (Dovecot ÷ Continuum, servers' CPU)", r.DovecotServerCPU/r.ContinuumServerCPU)
}

// WriteMarkdown writes BENCHMARKS.md: the table, the machine, the setup
// and how to reproduce.
func WriteMarkdown(w io.Writer, rep *Report, notes string) {
	o := rep.Options
	fmt.Fprintf(w, "# Benchmarks: Continuum beside Dovecot\n\n")
	fmt.Fprintf(w, "One `make bench-compare` run, %s to %s UTC; load average %s at the start, %s at the end (the run's own load included: whatever else the machine ran shows here). Figures from a shared machine are noisy: compare the two columns of one run, not runs with each other.\n\n",
		rep.Start.UTC().Format("2006-01-02 15:04"), rep.End.UTC().Format("15:04"), rep.LoadBefore, rep.LoadAfter)
	WriteSummary(w, rep)
	fmt.Fprintf(w, "\nRatio: Continuum ÷ Dovecot for rates, Dovecot ÷ Continuum for latency and CPU (above 1: Continuum better).\n\n")
	for _, r := range rep.Rows {
		for _, f := range r.Failed {
			fmt.Fprintf(w, "- Not measured: %s — %s\n", r.Name, f)
		}
	}
	fmt.Fprintln(w)
	if notes != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(notes))
	}
	fmt.Fprintf(w, "## Setup\n\n")
	fmt.Fprintf(w, "- Machine: %s.\n", rep.Machine)
	fmt.Fprintf(w, "- Dovecot %s from Debian's packages (dovecot-imapd, dovecot-lmtpd), its defaults (mail_fsync = optimized, Maildir), a passwd-file user database, one copy of each message; only its LMTP process limit raised to 512 so that 128 sessions each get a process.\n", rep.Dovecot)
	fmt.Fprintf(w, "- Continuum: 3 nodes on this machine (`continuum dev`: one process per node, mTLS between nodes, fsync on a quorum for every write, Raft profile local), so every message is stored three times; load spread over the three nodes' listeners.\n")
	fmt.Fprintf(w, "- Load: `continuum bench` (package bench) on the same machine, loopback, plain TCP. Messages %d bytes, realistic: a text part and a random base64 attachment, a unique Message-ID each; one recipient per message, one user per session. Each timed workload runs %v per server, the servers one after the other (the other idle).\n", o.Size, o.Duration)
	fmt.Fprintf(w, "- FETCH workloads: one mailbox of %d messages (filled over LMTP, 32 sessions: Dovecot %.0f/s, Continuum %.0f/s), 2 sessions each selecting it and fetching `1:*`; the figure is whole FETCH commands per second.\n", o.Mailbox, perSec(rep.FillDovecot), perSec(rep.FillContinuum))
	fmt.Fprintf(w, "- CPU per message: the servers' own processes (utime + stime from /proc/PID/stat of every process in their process groups, plus the children Dovecot's master reaped) ÷ messages delivered; in brackets the busy CPU time of the whole machine (/proc/stat) ÷ messages, the load generator and the other users' work included — on a saturated shared machine that is just 2 cores × the run's length ÷ messages.\n")
	fmt.Fprintf(w, "- IDLE: a session IDLEs on INBOX while another delivers to it over LMTP (for Continuum through another node); the figure is from the start of the delivery to the EXISTS notice.\n")
	fmt.Fprintf(w, "- Mixed load: %d clients, each its own user and mailbox, one command at a time: LOGIN, SELECT, then five times APPEND (a realistic message), FETCH (flags, size and five header fields of the last ten messages), STORE +FLAGS \\Seen, FETCH FLAGS, STORE +FLAGS \\Deleted, EXPUNGE, then LOGOUT and again; the figure is commands per second (imaptest's kind of load; imaptest itself is not packaged in Debian).\n", mixedClients)
	fmt.Fprintf(w, "- imaplib latency: Python's imaplib as the client (Nagle on, as imaplib leaves it), one command at a time: 100 APPENDs of %d bytes, then 100 STOREs (+FLAGS/-FLAGS \\Flagged on message 1); each row's Dovecot and Continuum runs are back to back. For Continuum at the leader and at a follower (a follower's write is forwarded to the leader and waits until the follower has applied it).\n\n", o.Size)
	fmt.Fprintf(w, "## Reproduce\n\n```\nmake bench-compare                       # installs dovecot-imapd/dovecot-lmtpd if missing (apt-get), about 10 min\nBENCH_DURATION=30s make bench-compare    # longer runs\n```\n\nOne workload against any server:\n\n```\nbin/continuum bench lmtp --server 127.0.0.1:24 --sessions 32 --duration 30s --users 32\nCONTINUUM_BENCH_PASSWORD=... bin/continuum bench imap --op fetch-headers --server 127.0.0.1:143 --user big@example.test\n```\n")
}

func perSec(r *Result) float64 {
	if r == nil {
		return 0
	}
	return r.PerSec
}
