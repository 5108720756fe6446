// Package failpoint holds the named points where a test binary misbehaves
// on purpose, so that node/clustertest can show each checker catching the
// fault it exists for, and the fault scenarios can reach code paths a
// healthy cluster never takes.
//
// One build tag, failpoints, compiles them in; in every other build
// Enabled is the constant false, Hit returns false and the wrappers return
// what they were given, so a release carries no fault. Never build a
// release with the tag.
//
// A point fires only when the process's environment names it:
//
//	CONTINUUM_FAILPOINTS="mail/deliver-drop=every(10);raft/transport-delay=delay(40ms-80ms)"
//
// Specs: every(N) fires on every Nth hit (on the Nth index, for points
// that pass one: index % N == 0, so every node fires alike); delay(MIN-MAX)
// is a duration range. Each firing logs one line starting "failpoint NAME
// fired", which is how a test tells "the hook is missing" from "the
// checker cannot see the fault". Set (tagged builds only) arms a point in
// a test's own process.
//
// The points (Names lists them):
//
//	mail/deliver-drop      node/mail Deliver acknowledges without proposing (a lost write)
//	fsm/apply-uid-stall    raftfsm leaves UIDNEXT where it was (a reused UID, every node alike)
//	fsm/apply-diverge      raftfsm raises HIGHESTMODSEQ once more (one node's state diverges)
//	raft/transport-delay   every Raft write reaches the peer MIN-MAX later (WAN without netem)
//	storage/commit         a state-database batch commit fails (the FSM stops: OnFatal)
//	storage/snapshot       writing a state snapshot fails (raft keeps the log and retries)
//	propose/forward        a forwarded write's answer is lost after the leader took it (unknown outcome)
//
// It replaces the four build tags faultdrop, faultuid, faultdiverge and
// faultdelay and their paired files.
package failpoint
