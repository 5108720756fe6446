// Package membership wraps hashicorp/memberlist: a node joins the gossip
// pool, publishes its metadata (ID, site, role and every address), and learns
// the others'. Gossip never changes the Raft configuration by itself; it
// only tells the node layer who exists and where to reach them.
//
// Goroutines: memberlist's own, stopped by Close.
package membership
