package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage/failpoint"
)

// marshalOpts is deterministic: map fields (Part.params) are written in key
// order, so every node stores the same bytes for the same record.
var marshalOpts = proto.MarshalOptions{Deterministic: true}

// Batch is an indexed write batch: its reads (the Reader methods) see the
// database as of the last commit plus the batch's own writes. raftfsm applies
// one Raft batch through one Batch. Like Snap it holds the DB's read lock
// until Close, and it is not safe for concurrent use.
type Batch struct {
	reader
	b    *pebble.Batch
	db   *DB
	once sync.Once
	buf  []byte

	// dedupeFloor, when dedupeFloorKnown, is a lower bound of every expiry
	// in dedupe-exp/ as the batch sees it, so ExpireDedupe can skip its scan
	// when nothing can have expired. Exact, like the cache.
	dedupeFloor      int64
	dedupeFloorKnown bool
}

// NewBatch returns an empty indexed batch. Close it, committed or not. The
// locking rule of Snapshot applies.
func (db *DB) NewBatch() *Batch {
	db.mu.RLock()
	b := db.pdb.NewIndexedBatch()
	db.floorMu.Lock()
	floor, known := db.dedupeFloor, db.dedupeFloorKnown
	db.floorMu.Unlock()
	return &Batch{reader: reader{r: b, cache: make(map[string][]byte), filter: db.filter}, b: b, db: db, dedupeFloor: floor, dedupeFloorKnown: known}
}

// Commit writes the batch atomically; sync asks for an fsync (ignored when
// the DB was opened with NoSync).
func (b *Batch) Commit(sync bool) error {
	wo := pebble.NoSync
	if sync && !b.db.opts.NoSync {
		wo = pebble.Sync
	}
	if failpoint.Hit(failpoint.StorageCommit, 0) { // test-only (tag failpoints)
		return fmt.Errorf("storage: commit: %w", failpoint.ErrInjected)
	}
	if err := b.b.Commit(wo); err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	// The floor is a cache of committed state: publish it only now.
	b.db.floorMu.Lock()
	b.db.dedupeFloor, b.db.dedupeFloorKnown = b.dedupeFloor, b.dedupeFloorKnown
	b.db.floorMu.Unlock()
	return nil
}

// Close releases the batch and the DB's read lock. A second Close is a no-op.
func (b *Batch) Close() {
	b.once.Do(func() {
		_ = b.b.Close()
		b.db.mu.RUnlock()
	})
}

// Len is the size of the batch's representation in bytes.
func (b *Batch) Len() int { return b.b.Len() }

func (b *Batch) set(key, value []byte) error {
	if err := b.b.Set(key, value, nil); err != nil {
		return fmt.Errorf("storage: set %v: %w", Family(key[0]), err)
	}
	if cacheable(key) {
		b.cache[string(key)] = append(make([]byte, 0, len(value)), value...)
	}
	if b.filter != nil && filtered(key) {
		b.filter.add(key)
	}
	return nil
}

func (b *Batch) del(key []byte) error {
	if err := b.b.Delete(key, nil); err != nil {
		return fmt.Errorf("storage: delete %v: %w", Family(key[0]), err)
	}
	if cacheable(key) {
		b.cache[string(key)] = nil
	}
	return nil
}

func (b *Batch) put(key []byte, m proto.Message) error {
	var err error
	b.buf, err = marshalOpts.MarshalAppend(b.buf[:0], m)
	if err != nil {
		return fmt.Errorf("storage: marshal %v: %w", Family(key[0]), err)
	}
	return b.set(key, b.buf)
}

func (b *Batch) putUint64(key []byte, v uint64) error {
	return b.set(key, binary.BigEndian.AppendUint64(nil, v))
}

// SetApplied records the last applied Raft index and term.
func (b *Batch) SetApplied(index, term uint64) error {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), index)
	return b.set(metaKey(MetaApplied), binary.BigEndian.AppendUint64(v, term))
}

// Applied returns the applied index and term as the batch sees them.
func (b *Batch) Applied() (index, term uint64, err error) { return b.applied() }

// next hands out the counter's value (starting at 1) and advances it.
func (b *Batch) next(name string, limit uint64) (uint64, error) {
	v, err := b.Counter(name)
	if err != nil {
		return 0, err
	}
	if v == 0 {
		v = 1
	}
	if v >= limit {
		return 0, fmt.Errorf("storage: counter %s exhausted", name)
	}
	return v, b.putUint64(metaKey(name), v+1)
}

// NextUserID allocates a user ID (1, 2, …).
func (b *Batch) NextUserID() (uint64, error) { return b.next(MetaNextUserID, math.MaxUint64) }

// NextMailboxID allocates a mailbox ID (1, 2, …), never reused.
func (b *Batch) NextMailboxID() (uint64, error) { return b.next(MetaNextMailboxID, math.MaxUint64) }

// NextUIDValidity allocates a UIDVALIDITY (1, 2, …), never reused.
func (b *Batch) NextUIDValidity() (uint32, error) {
	v, err := b.next(MetaNextUIDValidity, math.MaxUint32)
	return uint32(v), err
}

// AdvanceLogTime records t as the log time if it is later than the stored
// one and returns the (monotone) log time.
func (b *Batch) AdvanceLogTime(t int64) (int64, error) {
	cur, err := b.LogTime()
	if err != nil {
		return 0, err
	}
	if t <= cur {
		return cur, nil
	}
	return t, b.putUint64(metaKey(MetaLogTime), uint64(t))
}

// PutDomain writes domain/<name>.
func (b *Batch) PutDomain(d *storagepb.Domain) error {
	return b.put(stringKey(FamilyDomain, d.GetName()), d)
}

// DeleteDomain deletes domain/<name>.
func (b *Batch) DeleteDomain(name string) error { return b.del(stringKey(FamilyDomain, name)) }

// PutUser writes user/<id> and user-by-email/<email>.
func (b *Batch) PutUser(u *storagepb.User) error {
	if err := b.put(userKey(u.GetId()), u); err != nil {
		return err
	}
	return b.putUint64(stringKey(FamilyUserByEmail, u.GetEmail()), u.GetId())
}

// DeleteUser deletes the user's two rows (not its mailboxes).
func (b *Batch) DeleteUser(u *storagepb.User) error {
	if err := b.del(userKey(u.GetId())); err != nil {
		return err
	}
	return b.del(stringKey(FamilyUserByEmail, u.GetEmail()))
}

// PutAlias writes alias/<email>.
func (b *Batch) PutAlias(a *storagepb.Alias) error {
	return b.put(stringKey(FamilyAlias, a.GetEmail()), a)
}

// DeleteAlias deletes alias/<email>.
func (b *Batch) DeleteAlias(email string) error { return b.del(stringKey(FamilyAlias, email)) }

// PutMailbox writes mbox/<user>/<id> and mbox-by-name/<user>/<name>. A
// rename must DeleteMailboxName the old name itself.
func (b *Batch) PutMailbox(m *storagepb.Mailbox) error {
	if err := b.put(mailboxKey(m.GetUserId(), m.GetId()), m); err != nil {
		return err
	}
	return b.putUint64(mailboxNameKey(m.GetUserId(), m.GetName()), m.GetId())
}

// DeleteMailboxName deletes one mbox-by-name row.
func (b *Batch) DeleteMailboxName(userID uint64, name string) error {
	return b.del(mailboxNameKey(userID, name))
}

// DeleteMailbox deletes the mailbox's rows and its modseq/ entries. Its
// messages must have been deleted (and their blobs released) first.
func (b *Batch) DeleteMailbox(m *storagepb.Mailbox) error {
	if err := b.del(mailboxKey(m.GetUserId(), m.GetId())); err != nil {
		return err
	}
	if err := b.del(mailboxNameKey(m.GetUserId(), m.GetName())); err != nil {
		return err
	}
	var keys [][]byte
	p := u64Key(FamilyModSeq, m.GetId())
	if err := b.scan(p, prefixEnd(p), func(k, _ []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.del(k); err != nil {
			return err
		}
	}
	return nil
}

// PutMessage writes msg/<mailbox>/<uid> and its modseq/ entry at m.Modseq,
// deleting the entry at oldModSeq (0: a new message).
func (b *Batch) PutMessage(mailboxID uint64, m *storagepb.Message, oldModSeq uint64) error {
	if err := b.put(messageKey(mailboxID, m.GetUid()), m); err != nil {
		return err
	}
	if oldModSeq != 0 && oldModSeq != m.GetModseq() {
		if err := b.del(modseqKey(mailboxID, oldModSeq)); err != nil {
			return err
		}
	}
	return b.put(modseqKey(mailboxID, m.GetModseq()), &storagepb.ModSeqEntry{Uid: m.GetUid()})
}

// DeleteMessage deletes msg/<mailbox>/<uid> and its live modseq/ entry, and
// writes an expunge tombstone at tombstone. It does not release the blob.
func (b *Batch) DeleteMessage(mailboxID uint64, m *storagepb.Message, tombstone uint64) error {
	if err := b.del(messageKey(mailboxID, m.GetUid())); err != nil {
		return err
	}
	if err := b.del(modseqKey(mailboxID, m.GetModseq())); err != nil {
		return err
	}
	return b.put(modseqKey(mailboxID, tombstone), &storagepb.ModSeqEntry{Uid: m.GetUid(), Expunged: true})
}

// PutBlob adds a reference to the blob sha, storing data (compressed) and
// parsed only when the blob is new. It reports whether it was new.
func (b *Batch) PutBlob(sha, data []byte, parsed *storagepb.ParsedMessage) (created bool, err error) {
	return b.putBlob(sha, uint64(len(data)), func() []byte { return compress(data) }, parsed)
}

// PutBlobCompressed is PutBlob for a message that the proposer already
// compressed with Compress: the frame is stored exactly as given.
func (b *Batch) PutBlobCompressed(sha, frame []byte, size uint64, parsed *storagepb.ParsedMessage) (created bool, err error) {
	return b.putBlob(sha, size, func() []byte { return frame }, parsed)
}

func (b *Batch) putBlob(sha []byte, size uint64, stored func() []byte, parsed *storagepb.ParsedMessage) (created bool, err error) {
	if len(sha) != SHA256Size {
		return false, fmt.Errorf("storage: blob id of %d bytes", len(sha))
	}
	ref, err := b.blobRef(sha)
	switch {
	case errors.Is(err, ErrNotFound):
		ref = &storagepb.BlobRef{Size: size}
		created = true
	case err != nil:
		return false, err
	}
	ref.Refs++
	if err := b.put(bytesKey(FamilyBlobRef, sha), ref); err != nil {
		return false, err
	}
	if !created {
		return false, nil
	}
	if err := b.set(bytesKey(FamilyBlob, sha), stored()); err != nil {
		return false, err
	}
	if parsed == nil {
		parsed = &storagepb.ParsedMessage{}
	}
	return true, b.put(bytesKey(FamilyParsed, sha), parsed)
}

// RefBlob adds a reference to an existing blob (COPY).
func (b *Batch) RefBlob(sha []byte) error {
	ref, err := b.BlobRef(sha)
	if err != nil {
		return err
	}
	ref.Refs++
	return b.put(bytesKey(FamilyBlobRef, sha), ref)
}

// ReleaseBlob drops a reference and deletes the blob, its parsed form, its
// header block (headers.go) and its blobref row when none is left. It reports whether the blob was deleted.
func (b *Batch) ReleaseBlob(sha []byte) (deleted bool, err error) {
	ref, err := b.BlobRef(sha)
	if err != nil {
		return false, err
	}
	if ref.Refs > 1 {
		ref.Refs--
		return false, b.put(bytesKey(FamilyBlobRef, sha), ref)
	}
	for _, f := range []Family{FamilyBlobRef, FamilyBlob, FamilyParsed, FamilyHeader} {
		if err := b.del(bytesKey(f, sha)); err != nil {
			return false, err
		}
	}
	return true, b.deleteChunkedBlob(sha)
}

// PutDedupe writes dedupe/<key> and its expiry index entry, replacing an
// earlier entry of the same key.
func (b *Batch) PutDedupe(key []byte, d *storagepb.Dedupe) error {
	if len(key) == 0 {
		return errors.New("storage: empty dedupe key")
	}
	old, err := b.Dedupe(key)
	switch {
	case err == nil:
		if err := b.del(dedupeExpKey(old.GetExpiresUnixNano(), key)); err != nil {
			return err
		}
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if err := b.put(bytesKey(FamilyDedupe, key), d); err != nil {
		return err
	}
	b.dedupeFloor = min(b.dedupeFloor, d.GetExpiresUnixNano())
	return b.set(dedupeExpKey(d.GetExpiresUnixNano(), key), nil)
}

// ExpireDedupe deletes up to max dedupe entries that expired before now (log
// time) and returns how many it deleted. The expiry index makes this one
// bounded range scan.
func (b *Batch) ExpireDedupe(now int64, max int) (int, error) {
	if max <= 0 || (b.dedupeFloorKnown && now <= b.dedupeFloor) {
		return 0, nil
	}
	lower := []byte{byte(FamilyDedupeExp)}
	upper := u64Key(FamilyDedupeExp, orderedInt64(now))
	var keys [][]byte
	errStop := errors.New("stop")
	err := b.scan(lower, upper, func(k, _ []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		if len(keys) == max {
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return 0, err
	}
	for _, k := range keys {
		if len(k) < 10 {
			return 0, fmt.Errorf("%w: dedupe-exp key of %d bytes", ErrCorrupt, len(k))
		}
		if err := b.del(k); err != nil {
			return 0, err
		}
		if err := b.del(bytesKey(FamilyDedupe, k[9:])); err != nil {
			return 0, err
		}
	}
	if len(keys) < max {
		// Every entry below now is gone: the floor is the earliest expiry
		// left, so the commands until then skip the scan.
		floor := int64(math.MaxInt64)
		err := b.scan(upper, []byte{byte(FamilyDedupeExp) + 1}, func(k, _ []byte) error {
			if len(k) >= 9 {
				floor = unorderedInt64(binary.BigEndian.Uint64(k[1:9]))
			}
			return errStop
		})
		if err != nil && err != errStop {
			return 0, err
		}
		b.dedupeFloor, b.dedupeFloorKnown = floor, true
	} else {
		b.dedupeFloorKnown = false
	}
	return len(keys), nil
}
