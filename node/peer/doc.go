// Package peer is node-to-node gRPC (proto/peerpb): Forward, ReadIndex, Join
// and Info on the server side, and the Router every write and consistent
// read goes through on the client side.
//
// The Router is "try locally, else forward to the leader": on the leader it
// stamps the command's log time and calls consensus.Apply; on a follower it
// sends the command to the leader's Forward RPC. Forward never retries a
// command that may have been proposed; it retries only refusals that prove
// nothing was proposed (the callee was not the leader).
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
