// Package clustertest is the process-cluster fault harness of docs/TESTPLAN.md
// §1.2: real `continuum serve` processes, each in its own Linux network
// namespace (a separate host with its own IP, 10.231.<k>.(10+i), joined to
// the test through a bridge at 10.231.<k>.1), faults from outside the
// processes (SIGKILL, SIGSTOP/SIGCONT, restart, wiped data directory,
// blackhole routes for partitions and one-way drops), MTA-like SMTP
// senders whose every transaction is recorded, and checkers that read each
// stopped node's state database (set-full, replica equality, mailbox
// invariants).
//
// Only tests import it. It needs root and iproute2; without them the tests
// skip, except under CI (CI set), where they fail. Every namespace and
// interface is named ctf<pid base 36>-<n>…, removed by the test's cleanup,
// and swept at the next start if a killed test binary left it behind. No
// traffic leaves the bridge: the nodes' addresses and loopback only.
//
// The scenarios (TestFault…) read CONTINUUM_FAULT_SEED (default 1) and
// CONTINUUM_FAULT_DURATION (load per scenario, default 15s). netem is not
// available on this kernel, so WAN latency comes from a failpoint instead
// (package failpoint, tag failpoints, raft/transport-delay): every Raft
// write reaches its peer 40–80 ms later, in order (TestFaultWANLatency).
//
// F15 (fresh cluster, leader killed the moment it says it is ready) runs
// `continuum dev` itself, on loopback, as a user does (fresh_test.go):
// CONTINUUM_F15_RUNS fresh clusters (3 by default, 50 in make test-faults).
//
// F11 (snapshot catch-up), F12 (IDLE), F14 (damaged data directory) and
// F7 (IMAP readers) live in snapshot_test.go, imap_test.go and
// corrupt_test.go; per-UID linearizability of IMAP flag operations
// (porcupine, unknown outcomes free to take effect late or never) in
// flags_test.go; the planted faults that show the replica-equality and
// invariant checkers failing (failpoints fsm/apply-diverge and
// fsm/apply-uid-stall, armed through Options.NodeEnv, one node's or every
// node's) in planted_test.go, and the lost delivery (mail/deliver-drop) in
// fault_test.go. Every scenario that needs a failpoint builds the one
// binary tagged failpoints.
// Issue 19's large messages through real processes, with per-process RSS
// from /proc (Cluster.Mem), are in large_test.go; the full-text index
// after kill -9 and `continuum reindex` on a live node (archive search
// through the index against --scan) in search_test.go.
// Issue 20's disaster recovery (an archive replica or the last voter made
// the one voter of a new cluster, the recovery report checked against the
// acknowledged messages the recovered cluster lacks, with a planted
// report the check must refuse) is in disaster_test.go; the archive
// replica's cost and lag, with the voters and the archive confined to CPUs
// of their own (Options.CPUs, cpuset cgroups, cpuset.go), in
// archive_bench_test.go (make bench-archive). Every workload of a test
// numbers its messages apart (the first <test>-s…, then <test>-w<n>-s…),
// so that a check by ID never mistakes one for another.
// IMAP needs Options.IMAP (a throwaway certificate, since
// a password may cross the bridge only after STARTTLS).
//
// Goroutines: each node's process has one waiter goroutine that closes its
// done channel; each sender of a Workload is a goroutine ended by Stop.
package clustertest
