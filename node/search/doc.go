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
// # Why trigrams plus verification
//
// IMAP SEARCH is substring matching: "port" must find "passport" and
// "report". A word index answers whole words only; every other query would
// need a scan of the vocabulary. A trigram index answers any substring of
// three runes or more: a message whose Doc.Text holds the query holds all
// of the query's trigrams, so the messages holding all of them are a
// superset of the matches, and each is verified on its stored Doc (a few
// KB, zstd), never on the message bytes. Queries under three runes have no
// trigram: they are verified on every indexed Doc, still without reading
// a message. Trigrams are hashed to 32 bits (a collision only adds a
// candidate that verification drops).
//
// # Token postings: common words without verification
//
// A query in most messages makes most of the mailbox a trigram candidate,
// and verifying each on its Doc costs what a scan of the Docs costs (3.5 s
// at 100,000 messages). So the index also keeps, per mailbox, token
// postings (tokens.go): a token is a maximal run of Doc.Text without white
// space, and a query without white space occurs in a text exactly when it
// occurs inside one of its tokens. The mailbox's vocabulary has its own
// trigram index; the tokens containing the query are found there (a join
// over the vocabulary, verified on the token itself), and the union of
// their postings is the exact answer, with no Doc read (View.TokenMatches,
// node/mail TextSearch.Matching). Substring semantics are unchanged
// ("port" finds "passport": "passport" is in the vocabulary and contains
// "port"). Tokens over MaxToken bytes are not in the vocabulary: their
// messages are listed apart and always verified. A phrase (a query with
// white space) still takes the trigram path with verification.
//
// # Key layout (index database)
//
//	'm' 'v'                               format version, u64
//	'm' 'a'                               state index fully processed, u64
//	'c' <mailboxID u64>                   cursor (see above), 41 bytes
//	'd' <mailboxID u64><uid u32>          Doc, encoded and zstd-compressed
//	'p' <mailboxID u64><trigram u32><uid u32>   empty: one posting
//	'v' <mailboxID u64><token>            empty: the mailbox's vocabulary
//	'g' <mailboxID u64><trigram u32><token>     empty: vocabulary trigrams
//	't' <mailboxID u64><token> 0x00 <uid u32>   empty: a token posting
//	'l' <mailboxID u64><uid u32>          empty: message with a token > MaxToken
//
// Postings are one key each: Pebble's prefix compression keeps a posting
// to a few bytes, and a leapfrog join (SeekGE on each trigram's list to the
// largest UID seen) costs in proportion to the shortest list, not to the
// mailbox.
//
// # Goroutines
//
// Open starts one indexer goroutine; Close stops it. Notify never blocks.
// Views (View) are Pebble snapshots, safe from any goroutine. The indexer
// holds a state snapshot only for one batch at a time, so a snapshot
// restore of the state never waits long for it.
package search
