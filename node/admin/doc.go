// Package admin serves the operator's gRPC API (proto/adminpb) on every
// node. Writes go through node/mail, which forwards them to the leader;
// cluster status asks every member of the Raft configuration for its view.
// Errors are translated to gRPC codes here, from one table.
package admin
