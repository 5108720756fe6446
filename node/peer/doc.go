// Package peer is node-to-node gRPC plumbing (proto/peerpb): Forward,
// ReadIndex, Join and Info on the server side, and the Router (connections
// and calls) on the client side. It decides nothing and knows no codec: the
// proposal path (stamp, encode once, local or forward, retry, wait) is
// node/propose's, whose Local the Forward handler calls with the bytes as
// they came; the errors cross the wire as gRPC codes (toStatus, fromStatus),
// FailedPrecondition alone meaning "nothing was proposed".
//
// Join is plumbing: the decision (who may join, the wiped-voter rule) is
// node/cluster's (Admitter); the server checks the request and the caller.
//
// With TLS material the server's gRPC listener takes node certificates from
// the cluster CA only, and the calls check who calls: Forward and ReadIndex
// only from members of the Raft configuration, Join only for the ID the
// caller's certificate names (so Fresh, which replaces a voter, needs that
// voter's certificate). The Router dials with the node's certificate.
//
// Goroutines: none of its own; grpc's connections are closed by Close.
package peer
