// Package membership wraps hashicorp/memberlist: a node joins the gossip
// pool, publishes its metadata (ID, site, role and every address), and learns
// the others'. Gossip never changes the Raft configuration by itself; it
// only tells the node layer who exists and where to reach them.
//
// The keyring (keyring.go) and the members' gossip addresses (peers.go)
// are kept in the data directory: a restarted node gossips with the keys
// the cluster uses now and finds the pool through the peers it remembers,
// even when it was started without --join.
//
// Goroutines: memberlist's own, stopped by Close.
package membership
