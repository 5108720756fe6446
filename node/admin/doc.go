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
//
// # Import and Export (continuum import / export)
//
// Import is one bidirectional stream per run. A follower passes the whole
// stream on to the leader (proxyImport), so batches are proposed where they
// commit; without a reachable leader it handles the stream itself. The
// handler reads requests on
// one goroutine, builds steps on the handler's goroutine (a mailbox opened,
// or a batch of messages), and answers the steps in order from a third;
// each batch is prepared (parsed, compressed; a message over 1 MiB
// spooled and uploaded as chunks) and committed on its own goroutine, at
// most importWindow (+1 being answered) at once, as an AppendBatch of up to
// 256 messages or 1 MiB, so the bytes in flight stay a few MiB. On the
// leader the batches are pipelined in order: each is proposed once the one
// before it is queued in the log (consensus.WithEnqueued), not committed,
// so UIDs follow the source's order with several batches in flight; a
// batch retried after a temporary failure (an election), or proposed from
// a follower, goes at once and may land after a later batch. With
// --keep-order each batch is proposed only once the one before is done
// (an election can lose an entry that was queued, and the next must not
// commit before its retry). A partial batch waits at most importLinger for
// more. Before a
// mailbox's messages, the handler creates it (and its parents, with its
// special use), waits for the read index and counts the digests it holds:
// a message is skipped when the mailbox holds as many copies as the stream
// sent so far, and every item carries a dedupe key (mailbox, digest, copy
// number) that the state machine honours for an hour, so a batch still in
// flight from an interrupted run is not stored twice either. A batch that
// fails temporarily (election, timeout) is retried; the stream ends with
// an error only when one fails for good.
//
// Export reads a consistent snapshot after a read-index wait and streams
// each mailbox, then its messages in UID order, each in pieces of at most
// 1 MiB read from the stored blob chunk by chunk.
package admin
