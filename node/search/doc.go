// Package search is one node's full-text index of its mail, so IMAP SEARCH
// TEXT, BODY and HEADER (SUBJECT, FROM, TO, CC, BCC) need not read every
// message.
//
// # Derived data, not replicated
//
// The index is a Pebble database of its own under the node's data
// directory (DataDir/index), written by this node only, never part of the
// Raft log, snapshots, digests or backups: every node derives it from its
// own state database. The node's raftfsm OnApply hook calls Notify with the
// mailboxes each committed batch touched; the indexer goroutine reads the
// changes from the state (never from the events themselves), so a lost
// event, a restart, a snapshot restore or a wiped index only costs a
// catch-up pass:
//
//   - at Open, and every Options.FullPassEvery (5 min), every mailbox is
//     checked against its cursor;
//   - an index of another FormatVersion is wiped at Open, and Reindex
//     (`continuum reindex`, admin RPC, on a live node) wipes it, and both
//     rebuild in the background;
//   - meta "applied" records the state index up to which every change has
//     been processed (for the continuum_search_index_lag metric and
//     WaitCaughtUp).
//
// # Consistency with the state: the watermark
//
// Each mailbox has a cursor: a UID watermark hw and a MODSEQ. A mailbox is
// first built in UID order (every message with UID ≤ hw is indexed), then
// followed through its modseq/ rows from the HIGHESTMODSEQ noted when the
// build began (live rows are new messages, tombstones expunges). Each
// batch of up to 512 messages commits its documents, postings and the
// cursor together, so a node killed mid-indexing restarts from a
// consistent cursor. The invariant searches rely on: every message of the
// state with UID ≤ hw is in the index. A search therefore verifies the
// index's candidates ≤ hw and scans every message above hw, and it only
// ever reports UIDs from the session's view of the state: a stale
// document of an expunged message matches nothing. A mailbox without a
// cursor (being rebuilt) is scanned whole: that is the fallback. The
// cursor also holds UIDVALIDITY; a mailbox whose UIDVALIDITY changed
// (restore) is dropped and rebuilt.
//
// # Bulk imports wait
//
// A bulk import (continuum import: raftfsm AppendBatch, whose events are
// marked Bulk) would otherwise share the CPU with indexing what it has just
// written, on every node: on three nodes sharing two cores that was 40 %
// of an import's CPU (docs/notes/migrate.md). Notify keeps the mailboxes
// bulk events name apart (deferred) until no bulk event has come for
// Options.BulkQuiet (10 s), or the first of them has waited
// Options.BulkMaxDefer (5 min): a short import runs alone and is indexed
// after it, in long steps; a long one is indexed at least every 5
// minutes. Nothing is lost by it: searches scan above the watermark as
// ever, so they stay exact, only slower in a mailbox being imported; a
// pass that holds a mailbox back records no applied index (the
// continuum_search_index_lag metric shows the wait); WaitCaughtUp does not
// wait; a restart indexes everything (its full pass).
//
// # Text and matching (RFC 9051 §6.4.4)
//
// Extract turns a stored message and its parsed record (node/mail/
// mimeparse part offsets) into a Doc: the top-level header fields, unfolded,
// RFC 2047 words decoded (go-message's charset table); and the body text:
// text/* parts decoded from base64 or quoted-printable and from their
// charset, HTML reduced to its text (no tags, no script or style),
// attachment and part file names, the header fields of attached messages
// (message/rfc822). Attachment bytes are not text and are not searched.
// Everything goes through Fold: NFKC, Unicode full case folding
// (golang.org/x/text/cases: "Straße" matches "STRASSE", "ﬁ" matches
// "fi"), NFKC again, white space runs as one space (a phrase matches
// across a line break). A criterion matches when its Folded string is a
// substring of: Doc.Text (every field as "name: value", then the body)
// for TEXT; the body text for BODY; a field's value for HEADER and its
// shorthands (an empty value matches any field of that name).
//
// This is what the IMAP layer's scanning path does too (imapd
// Options.ScanSearch, the fallback and the oracle the index is tested
// against): index and scan differ only in which messages they look at.
//
// # Token postings: substrings through a vocabulary
//
// IMAP SEARCH is substring matching: "port" must find "passport" and
// "report". The index keeps, per mailbox, token postings (tokens.go): a
// token is a maximal run of Doc.Text without white space, and a query
// without white space occurs in a text exactly when it occurs inside one
// of its tokens. The mailbox's vocabulary has its own trigram index
// (hashed to 32 bits); the tokens containing the query are found there (a
// join over the vocabulary, verified on the token itself; a query under
// three runes scans the vocabulary), and the union of their postings is
// the exact answer, with no Doc read (View.TokenMatches, node/mail
// TextSearch.Matching). Tokens over MaxToken bytes are not in the
// vocabulary: their messages are listed apart and always verified. So is
// a message whose tokens would write over MaxDocIndexBytes of keys (a
// text part that is really data, such as base64 sent as text/plain): it
// is indexed with its Doc and no token, so one such message cannot keep
// the indexer, and the node's CPU, busy for minutes.
//
// Writing a token adds its vocabulary entry (and trigrams) when the
// mailbox lacks it. The indexer caches the entries it knows (Index.known);
// a step with many changes waiting (an import's catch-up) first reads the
// mailbox's whole vocabulary into that cache (loadVocabulary, up to
// maxKnown/2 entries), so a token missing from it is new without a look-up:
// the look-ups, mostly misses, were a third of a catch-up's CPU, and the
// catch-up of 80,000 imported messages took 56 s instead of 101
// (docs/notes/migrate.md round 8).
//
// A phrase (a query with white space) is narrowed the same way: each of
// its pieces lies inside one token of a text that holds the phrase, so
// the messages with, for every piece, a token containing it are a
// superset of the matches (View.Candidates); each is verified on its
// stored Doc (a few KB, zstd), never on the message bytes.
//
// Format 2 also kept a trigram posting per message ('p' <mailboxID>
// <trigram> <uid>): about 700 keys for a message with 2 KB of prose,
// against about 200 token postings, and most of the indexer's CPU (its
// batch, memtable inserts and flushes) under delivery load. Format 3
// drops them; phrases take the pieces' token postings instead.
//
// Format 4 keeps a token's postings in one key per mailbox, its value a
// UID list that Pebble merges (postings.go): a step writes one merge
// operand per token for all its messages, additions and removals alike,
// and never reads the list. With one posting key per message (format 3)
// the indexer's memtable inserts, flushes and compactions were most of
// its cost. The indexer also waits Options.Lag (1 s) after a change, so
// that a step takes several deliveries to a mailbox. BenchmarkIndexDeliveries
// (500 deliveries/s to 32 mailboxes) went from 910–1016 to 581–742 µs of
// CPU per message indexed. Format 4 also adds the MaxDocIndexBytes
// bound, and a step's batch stops taking messages at 32 MiB as well as at
// 512 messages.
//
// # Key layout (index database)
//
//	'm' 'v'                               format version, u64
//	'm' 'a'                               state index fully processed, u64
//	'c' <mailboxID u64>                   cursor (see above), 41 bytes
//	'd' <mailboxID u64><uid u32>          Doc, encoded and zstd-compressed
//	'v' <mailboxID u64><token>            empty: the mailbox's vocabulary
//	'g' <mailboxID u64><trigram u32><token>     empty: vocabulary trigrams
//	't' <mailboxID u64><token> 0x00       the token's UIDs: merge operands (postings.go)
//	'l' <mailboxID u64><uid u32>          empty: message to verify on every search
//	                                      (a token > MaxToken, or over MaxDocIndexBytes)
//
// # Goroutines
//
// Open starts one indexer goroutine; Close stops it. Notify never blocks;
// the indexer runs Options.Lag after it (WaitCaughtUp does not wait).
// Views (View) are Pebble snapshots, safe from any goroutine. The indexer
// holds a state snapshot only for one batch at a time, so a snapshot
// restore of the state never waits long for it.
package search
