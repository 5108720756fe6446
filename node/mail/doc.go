// Package mail holds the mail operations both frontends call: delivery
// (SMTP/LMTP), mailbox and message operations (IMAP), accounts (admin), and
// the per-node change feed that drives IMAP IDLE.
//
// Writes build a commandpb.Command and go through a Proposer (the leader, or
// forwarded to it); the caller then waits until this node has applied the
// write's index, so a session always sees its own writes. Reads go to the
// local state database through a consistent snapshot, after Sync when the
// caller needs to see everything committed cluster-wide (read-index).
//
// # Reads: View
//
// A frontend reads through a View (view.go): one consistent snapshot of
// the local replica per command, opened by Service.View and closed by the
// caller before it writes its reply. Its methods are what IMAP and export
// need — mailbox by name, the mailbox list, message records in UID order,
// a message's bytes, parsed structure and header block, the changes since
// a MODSEQ, the quota — and a missing row is ErrNotFound. The frontends
// never see package storage: its reader, key layout, iterators and errors
// stay behind this package (node/layering_test.go enforces it for smtpd
// and imapd).
//
// # Records
//
// What a View hands out are the replicated records themselves
// (proto/storagepb: Mailbox, Message, ParsedMessage, Envelope, ModSeqEntry),
// not types of this package. They are the state machine's schema, the
// same bytes on every node, and proto/* sits below every layer; copying
// them into look-alike structs would cost an allocation and a field-by-
// field copy per message on FETCH and SEARCH of tens of thousands of
// messages, and a second definition to keep in step, for no gain in
// isolation: what a frontend must not depend on is how rows are stored
// and read, and that is what View hides. The records are read-only to the
// caller.
//
// Authenticate sees committed credentials: a failed check is retried once
// after a read-index wait, and a successful one is confirmed by one, so a
// login at any node right after `user add`, `user passwd` or `user del` at
// another sees the change. A node that is cut off from the leader answers
// from the last credentials it applied (its sessions are read-only then).
// A node that is not cut off but cannot get a read-index (an election, a
// slow quorum) answers ErrUnavailable (IMAP NO [UNAVAILABLE]): it neither
// accepts credentials that may have been changed elsewhere nor refuses ones
// that may have just been added. A password that passed its argon2id
// check is remembered per node as an HMAC under a key that lives only in
// memory, keyed by the stored hash (authcache.go: a client that logs in
// for every sync costs microseconds, not 36 ms of CPU); wrong passwords are
// never cached and always cost a full check.
//
// # Large messages and memory
//
// A message over ChunkBytes (1 MiB) never sits in the heap whole: SMTP,
// LMTP and IMAP APPEND write it to a Spool (an unlinked temporary file) as
// it arrives; DeliverSpool/AppendSpool map the file read-only (page cache,
// not heap), parse and hash it, and compress it as a stream (zstd, 1 MiB
// window) into BlobChunk proposals of 1 MiB, at most chunkWindow (4) in
// flight; a follower forwards each chunk to the leader as its own Forward
// call. Then the small Deliver or Append naming the upload commits, and
// only then does the sender get 250 / OK. Per message in flight on the
// proposer: about 1 MiB of session buffer, the encoder (a few MiB), 4 ×
// 1 MiB chunks plus their marshalled copies (≈ 12 MiB), plus the mapped
// spool pages, which the kernel may drop. FETCH of a large message streams
// (OpenBlob): one stored chunk and the decoder's window at a time.
//
// The compliance archive (archive.go): SetRetention, RunRetention,
// PlaceHold, ReleaseHold build its commands; Summary, Search, AuditEntries
// and VerifyJournal read the local replica. A context marked WithActor (the
// admin service marks every request with the caller's identity) wraps every
// command proposed under it in an AdminCommand, so the audit record commits
// with the change itself; Audit records a read (search, export) before it
// runs, and a read whose record cannot commit does not run. Search is a
// scan of every message's header and decoded text parts, not an index.
//
// # Import
//
// ImportBatch (PrepareImport + CommitImport) stores many messages of one
// mailbox in one AppendBatch entry (continuum import, through node/admin):
// up to ImportBatchMessages or about 1 MiB of messages per entry, each item
// with its own outcome; a message over ChunkBytes goes through the chunked
// upload above first. Inventory counts the digests a mailbox holds, so an
// import can skip what is there already.
//
// Errors are the sentinels below; node/smtpd and node/imapd translate them to
// reply codes, each from one table.
//
// Writes: every operation builds one command and proposes it through
// Service.proposeAt, the one call into node/propose (timeout, leader,
// forward, wait for the local apply); Sync is the read-index wait. There is
// one Raft group and no per-user group hook: sharding users over several
// groups later would choose the group in proposeAt, from the user the
// command acts for (docs/ARCHITECTURE.md §9).
package mail
