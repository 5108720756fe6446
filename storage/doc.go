// Package storage is the state database of one Continuum node: the rows the
// Raft state machine (raftfsm) writes when it applies the log, on Pebble v2.
// The Raft log itself lives in storage/raftlog, in a separate database.
//
// # Key layout
//
// Every key starts with a one-byte family (the Family constants); the rest is
// an order-preserving encoding of the row's identity: integers big-endian, so
// byte order is numeric order, and strings raw. A string is always the last
// component of its key, so it needs neither a length prefix nor a terminator
// and byte order of keys is the order of (family, ids…, string). Keys are at
// most MaxKeySize bytes. Values are deterministic protobuf (map fields sorted)
// of the storagepb record named, unless stated otherwise.
//
//	family  name           key after the family byte              value
//	0x01    meta           "applied"                              index u64 | term u64 (16 bytes)
//	                       "next-user-id"                          u64: next user ID (absent = 1)
//	                       "next-mailbox-id"                       u64: next mailbox ID (absent = 1)
//	                       "next-uidvalidity"                      u64: next UIDVALIDITY (absent = 1)
//	                       "log-time"                              u64: last log time, unix ns, monotone
//	0x02    domain         <name>                                 storagepb.Domain
//	0x03    user           <userID u64>                           storagepb.User
//	0x04    user-by-email  <email>                                userID u64
//	0x05    alias          <email>                                storagepb.Alias
//	0x06    mbox           <userID u64><mailboxID u64>            storagepb.Mailbox
//	0x07    mbox-by-name   <userID u64><name>                     mailboxID u64
//	0x08    msg            <mailboxID u64><uid u32>               storagepb.Message
//	0x09    modseq         <mailboxID u64><modseq u64>            storagepb.ModSeqEntry
//	0x0a    blob           <sha256 32 bytes>                      zstd frame of the message bytes
//	0x0b    blobref        <sha256>                               storagepb.BlobRef
//	0x0c    parsed         <sha256>                               storagepb.ParsedMessage
//	0x0d    dedupe         <key>                                  storagepb.Dedupe
//	0x0e    dedupe-exp     <expires i64, sign bit flipped><key>   empty
//	0x0f    chunk          <upload 16 bytes><seq u32>             raw piece of a zstd frame (≤ 1 MiB)
//	0x10    upload         <upload 16 bytes>                      storagepb.Upload (open uploads only)
//	0x11    upload-exp     <expires i64, sign bit flipped><upload> empty
//	0x12    blob-chunks    <sha256>                               storagepb.ChunkedBlob: blob stored as chunks
//	0x01    meta           "open-uploads"                         u64: number of open uploads (absent = 0)
//	0x13    retention      <scope>                                storagepb.RetentionPolicy
//	0x14    hold           <scope>                                storagepb.Hold
//	0x15    vault          <userID u64><mailboxID u64><uid u32>   storagepb.VaultEntry (expunged, kept)
//	0x16    audit          <index u64>                            storagepb.AuditEntry
//	0x17    journal        <index u64>                            storagepb.JournalLink
//	0x01    meta           "journal-head"                         index u64 | SHA-256 of the last link
//	0x01    meta           "retention-cursor"                     u64: user ID the next RetentionRun starts at
//	0x18    header         <sha256>                               raw header block of the blob's message (≤ 64 KiB)
//
// A scope is "domain:NAME" or "user:EMAIL" (DomainScope, UserScope). A
// vault row holds a reference to its blob like a msg/ row, so single
// instance storage and ReleaseBlob work unchanged (archive.go).
//
// A blob is stored either inline (blob/<sha>: one zstd frame) or, for a
// message over 1 MiB, as chunks: blob-chunks/<sha> names the upload whose
// chunk/ rows, in seq order, are the frame (see chunks.go). Reader.Blob
// assembles either; DB.OpenBlob streams either, one chunk at a time.
//
// header/<sha> holds a message's header block (its header fields and the
// blank line ending them: bytes [header_start, header_end) of the parsed
// record's root), uncompressed, so FETCH of header fields need not
// decompress the message (headers.go). raftfsm writes it with a new blob,
// from the command's bytes; it is absent for blobs stored before the row
// existed and for header blocks over MaxHeaderBlock, and Reader.HeaderBlock
// then cuts the same bytes out of the message. ReleaseBlob deletes it.
//
// Names, e-mail addresses and mailbox names are stored as raftfsm validated
// them: domains and addresses lower-case ASCII, mailbox names UTF-8 with "/"
// as separator and "INBOX" upper-case. A mailbox's rows are keyed by its user
// (mbox/, mbox-by-name/), and a mailbox ID is never reused, so msg/ and
// modseq/ rows need only the mailbox ID. modseq/ holds one live entry per
// message, at its current MODSEQ, and one tombstone (expunged) per expunged
// message, kept for QRESYNC. A blob is stored once however many messages
// refer to it; blobref/ counts the references and the last ReleaseBlob
// deletes blob/, blobref/, parsed/ and header/. dedupe-exp/ indexes dedupe/ by expiry
// so ExpireDedupe is a bounded range scan from the start of the family.
//
// # Directory
//
// Open(dir) keeps the pebble database in dir/state-NNNNNN and the name of the
// live one in dir/CURRENT-STATE. Restore builds state-(N+1) beside it and
// switches by renaming a new CURRENT-STATE into place, so a crash at any
// point leaves one complete state; Open removes the other directory.
//
// # Concurrency and the locking rule
//
// The DB is safe for concurrent use. Reads go through a *Snap (a consistent
// pebble snapshot; IMAP sessions take one per command) and the state machine
// writes through a *Batch (an indexed batch: its reads see its own writes).
// Both hold the DB's read lock from creation until Close; Restore takes the
// write lock only around the swap of the pebble instance, so it waits for
// open views and new views wait for the swap. Hence:
//
//   - Close every Snap and Batch; keep a Snap for the reads of one request
//     and close it before writing to a client. Blob returns a decompressed
//     copy for exactly this reason: the caller sends it with no lock held.
//   - A goroutine must not open a second Snap or Batch while it holds one: a
//     Restore waiting for the write lock would block the second forever.
//   - Restore must not be called by a goroutine holding a Snap or Batch.
//
// No goroutine is started by this package beyond pebble's own.
package storage
