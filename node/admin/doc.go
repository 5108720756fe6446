// Package admin serves the operator's gRPC API (proto/adminpb) on every
// node. Writes go through node/mail, which forwards them to the leader;
// cluster status asks every member of the Raft configuration for its view.
// Errors are translated to gRPC codes here, from one table.
//
// Every write, and every archive search and export, runs under
// mail.WithActor(actor(ctx)): the audit log records who asked. The
// identity is the verified client certificate's subject ("cert:CN") when
// the connection has one, else "local-admin". ArchiveVerify is answered by
// the node asked, from its own replica (not forwarded): `archive verify
// --all` asks each node in turn.
package admin
