// Package loginguard admits password checks on a node: it throttles
// guessing per client address across the whole cluster, and bounds the
// checks in flight (their memory).
//
// Counting. An attempt counts as a failure from the moment it starts,
// before its password check (Attempt), so parallel guesses from one
// address are throttled like sequential ones. Each node keeps its own
// count per address and sends it, as an absolute number, to every other
// live member in a gossip datagram (membership.Pool.Send: memberlist's
// best-effort user message, encrypted with the cluster key); every node
// adds up its own count and the latest count heard from each other node.
// An address whose sum reaches Max within Window is refused without a
// check on every node, so a guesser who rotates over the sites gets no
// more tries than at one. A success forgets the address everywhere (a
// reset message), as a success did on one node before.
//
// Why gossip and not the replicated log: a Raft write per failed login
// would let anyone who can reach a login port force a replicated, fsynced
// write on every site per guess (an amplification), and fill the log with
// throttle noise. A datagram of about 60 bytes per other node costs far
// less than the argon2 check it accompanies, and a refused attempt (which
// sends one too) is itself held back by the failure delay and the
// per-address connection cap. Memberlist's piggybacked broadcasts were
// tried first: with three nodes their few random retransmissions often
// all went to the same node, so the third never heard.
//
// The price is eventual consistency: a guess on one node is seen by the
// others one datagram later (a round trip between sites), so a burst
// spread over N nodes inside that time can get up to N × Max checks; a
// sequential guesser gets Max. A lost datagram is repaired by the
// origin's next count for the address. Counts are not sent to a node
// that joins later; the window is minutes, and a missed count errs on the
// side of one more allowed guess, never of locking out a user.
//
// Messages from other nodes are trusted only as far as gossip
// authenticates them (the cluster key): a malformed one is dropped, and
// counts are capped, so a bad message can throttle an address but not
// grow memory without bound (at most MaxAddrs addresses are kept).
//
// Memory. At most Slots checks run at once (default 8); argon2id holds
// 19 MiB per check, so a node's password checks hold at most Slots × 19
// MiB however many logins arrive. Attempts waiting for a slot hold only
// their goroutine.
//
// Goroutines: none of its own. Attempt runs on the caller's goroutine;
// Receive runs on memberlist's.
package loginguard
