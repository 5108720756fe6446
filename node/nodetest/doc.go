// Package nodetest is the in-process cluster harness: N nodes of ours in one
// test process on loopback, with a fault-injecting layer on the Raft
// transport (cut links by node pair, delay), and helpers that poll for a
// state with a deadline instead of sleeping. Only tests import it.
package nodetest
