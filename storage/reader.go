package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/cockroachdb/errors/oserror"
	"github.com/cockroachdb/pebble/v2"
	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

func oserrNotExist(err error) bool { return oserror.IsNotExist(err) }

// Reader is the typed read interface of the state database, implemented by
// *Snap (a consistent view) and *Batch (the view of an apply in progress,
// including its own writes). Every method returns ErrNotFound for a missing
// row; every returned value is the caller's own copy.
type Reader interface {
	Domain(name string) (*storagepb.Domain, error)
	Domains() ([]*storagepb.Domain, error)
	User(id uint64) (*storagepb.User, error)
	UserByEmail(email string) (*storagepb.User, error)
	Users() ([]*storagepb.User, error)
	Alias(email string) (*storagepb.Alias, error)
	Mailbox(userID, mailboxID uint64) (*storagepb.Mailbox, error)
	MailboxByName(userID uint64, name string) (*storagepb.Mailbox, error)
	Mailboxes(userID uint64) ([]*storagepb.Mailbox, error)
	Message(mailboxID uint64, uid uint32) (*storagepb.Message, error)
	// Messages calls fn for every message with start <= UID <= stop in
	// ascending UID order; stop 0 means no upper bound. An error from fn
	// stops the scan and is returned.
	Messages(mailboxID uint64, start, stop uint32, fn func(*storagepb.Message) error) error
	// Blob returns the decompressed bytes of a blob.
	Blob(sha []byte) ([]byte, error)
	Parsed(sha []byte) (*storagepb.ParsedMessage, error)
	// HeaderBlock returns the header block of a blob's message
	// (headers.go), without decompressing the message when it can.
	HeaderBlock(sha []byte) ([]byte, error)
	// HeaderBlocks is HeaderBlock for many blobs, in hash order, with
	// one iterator (headers.go).
	HeaderBlocks(shas [][]byte, fn func(i int, block []byte) error) error
	// Changes calls fn for every modseq/ entry of the mailbox above
	// sinceModSeq, ascending: live messages at their current MODSEQ and
	// expunge tombstones.
	Changes(mailboxID uint64, sinceModSeq uint64, fn func(modseq uint64, e *storagepb.ModSeqEntry) error) error
	Dedupe(key []byte) (*storagepb.Dedupe, error)
}

// reader implements Reader over anything pebble can read: a snapshot, an
// indexed batch, or the DB itself.
type reader struct {
	r pebble.Reader
	// cache, set only for a Batch, holds the values of small rows read or
	// written through the batch (nil value: known absent), so an apply reads
	// each user, mailbox and counter from pebble once per batch. It is exact:
	// the batch is the only writer while it is open (see Batch).
	cache map[string][]byte
	// filter, set only for a Batch, says which blobref/ and dedupe/ keys
	// are certainly not in the committed database (keyfilter.go).
	filter *keyFilter
}

// cacheable reports whether rows of the key's family go into a batch cache:
// the small, hot rows of apply, not blobs, messages or scanned families.
func cacheable(key []byte) bool {
	switch Family(key[0]) {
	case FamilyMeta, FamilyDomain, FamilyUser, FamilyUserByEmail, FamilyMailbox, FamilyMailboxByName, FamilyBlobRef, FamilyDedupe:
		return true
	}
	return false
}

// lookup returns the value of key, or nil and false; the value is only
// valid until the next write when it comes from the cache, so callers copy
// or decode it at once.
func (x reader) lookup(key []byte) (v []byte, ok bool, err error) {
	if x.cache != nil && cacheable(key) {
		if v, hit := x.cache[string(key)]; hit {
			return v, v != nil, nil
		}
	}
	// Not written by this batch (else it would be cached) and not in the
	// committed database either: no Pebble read.
	if x.filter != nil && filtered(key) && x.filter.absent(key) {
		if x.cache != nil && cacheable(key) {
			x.cache[string(key)] = nil
		}
		return nil, false, nil
	}
	pv, closer, err := getValue(x.r, key)
	if errors.Is(err, pebble.ErrNotFound) {
		if x.cache != nil && cacheable(key) {
			x.cache[string(key)] = nil
		}
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: get %v: %w", Family(key[0]), err)
	}
	v = append(make([]byte, 0, len(pv)), pv...)
	if err := closer.Close(); err != nil {
		return nil, false, err
	}
	if x.cache != nil && cacheable(key) {
		x.cache[string(key)] = v
	}
	return v, true, nil
}

// getValue is r.Get, except that a value Pebble could not read is an
// error. A value of valueSeparationMin bytes or more lives in a blob file
// (db.go, valueSeparation); when its block fails to read (a checksum
// mismatch), Pebble v2.1.7's Get returns an empty value and no error, and
// the error only from the closer's Close. A failed read always gives an
// empty value, so an empty value is closed at once and its error
// returned; a non-empty one was read whole.
func getValue(r pebble.Reader, key []byte) ([]byte, io.Closer, error) {
	v, closer, err := r.Get(key)
	if err != nil || len(v) > 0 {
		return v, closer, err
	}
	if err := closer.Close(); err != nil {
		return nil, nil, err
	}
	return v, nopCloser{}, nil
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

func (x reader) getRaw(key []byte) ([]byte, error) {
	if x.cache != nil && cacheable(key) {
		v, ok, err := x.lookup(key)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, ErrNotFound
		}
		return bytes.Clone(v), nil
	}
	v, closer, err := getValue(x.r, key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get %v: %w", Family(key[0]), err)
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	return out, closer.Close()
}

// get unmarshals the value of key into m without copying it first.
func (x reader) get(key []byte, m proto.Message) error {
	if x.cache != nil && cacheable(key) {
		v, ok, err := x.lookup(key)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		if err := proto.Unmarshal(v, m); err != nil {
			return fmt.Errorf("%w: %v value: %v", ErrCorrupt, Family(key[0]), err)
		}
		return nil
	}
	v, closer, err := getValue(x.r, key)
	if errors.Is(err, pebble.ErrNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("storage: get %v: %w", Family(key[0]), err)
	}
	err = proto.Unmarshal(v, m)
	if cerr := closer.Close(); err == nil && cerr != nil {
		return cerr
	} else if err != nil {
		return fmt.Errorf("%w: %v value: %v", ErrCorrupt, Family(key[0]), err)
	}
	return nil
}

func (x reader) getUint64(key []byte) (uint64, error) {
	v, err := x.getRaw(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: %v value of %d bytes", ErrCorrupt, Family(key[0]), len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// scan calls fn for every key in [lower, upper). The key and value are only
// valid during the call.
func (x reader) scan(lower, upper []byte, fn func(k, v []byte) error) error {
	it, err := x.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("storage: iterate: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, verr := it.ValueAndErr()
		if verr != nil {
			err = verr
			break
		}
		if err = fn(it.Key(), v); err != nil {
			break
		}
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

func scanProto[M proto.Message](x reader, lower, upper []byte, newM func() M) ([]M, error) {
	var out []M
	err := x.scan(lower, upper, func(k, v []byte) error {
		m := newM()
		if err := proto.Unmarshal(v, m); err != nil {
			return fmt.Errorf("%w: %v value: %v", ErrCorrupt, Family(k[0]), err)
		}
		out = append(out, m)
		return nil
	})
	return out, err
}

func (x reader) Domain(name string) (*storagepb.Domain, error) {
	if name == "" {
		return nil, ErrNotFound
	}
	d := new(storagepb.Domain)
	return d, x.get(stringKey(FamilyDomain, name), d)
}

func (x reader) Domains() ([]*storagepb.Domain, error) {
	return scanProto(x, []byte{byte(FamilyDomain)}, []byte{byte(FamilyDomain) + 1}, func() *storagepb.Domain { return new(storagepb.Domain) })
}

func (x reader) User(id uint64) (*storagepb.User, error) {
	u := new(storagepb.User)
	if err := x.get(userKey(id), u); err != nil {
		return nil, err
	}
	return u, nil
}

func (x reader) UserByEmail(email string) (*storagepb.User, error) {
	if email == "" {
		return nil, ErrNotFound
	}
	id, err := x.getUint64(stringKey(FamilyUserByEmail, email))
	if err != nil {
		return nil, err
	}
	u, err := x.User(id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: user-by-email/%s points at missing user %d", ErrCorrupt, email, id)
	}
	return u, err
}

func (x reader) Users() ([]*storagepb.User, error) {
	return scanProto(x, []byte{byte(FamilyUser)}, []byte{byte(FamilyUser) + 1}, func() *storagepb.User { return new(storagepb.User) })
}

func (x reader) Alias(email string) (*storagepb.Alias, error) {
	if email == "" {
		return nil, ErrNotFound
	}
	a := new(storagepb.Alias)
	if err := x.get(stringKey(FamilyAlias, email), a); err != nil {
		return nil, err
	}
	return a, nil
}

func (x reader) Mailbox(userID, mailboxID uint64) (*storagepb.Mailbox, error) {
	m := new(storagepb.Mailbox)
	if err := x.get(mailboxKey(userID, mailboxID), m); err != nil {
		return nil, err
	}
	return m, nil
}

func (x reader) MailboxByName(userID uint64, name string) (*storagepb.Mailbox, error) {
	if name == "" {
		return nil, ErrNotFound
	}
	id, err := x.getUint64(mailboxNameKey(userID, name))
	if err != nil {
		return nil, err
	}
	m, err := x.Mailbox(userID, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: mbox-by-name/%d/%s points at missing mailbox %d", ErrCorrupt, userID, name, id)
	}
	return m, err
}

// Mailboxes returns the user's mailboxes in mailbox ID order.
func (x reader) Mailboxes(userID uint64) ([]*storagepb.Mailbox, error) {
	p := u64Key(FamilyMailbox, userID)
	return scanProto(x, p, prefixEnd(p), func() *storagepb.Mailbox { return new(storagepb.Mailbox) })
}

// MailboxNames calls fn for every mailbox name of the user that starts with
// prefix, in byte order, with the mailbox ID.
func (x reader) MailboxNames(userID uint64, prefix string, fn func(name string, id uint64) error) error {
	p := mailboxNameKey(userID, prefix)
	n := len(u64Key(FamilyMailboxByName, userID))
	return x.scan(p, prefixEnd(p), func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: mbox-by-name value of %d bytes", ErrCorrupt, len(v))
		}
		return fn(string(k[n:]), binary.BigEndian.Uint64(v))
	})
}

func (x reader) Message(mailboxID uint64, uid uint32) (*storagepb.Message, error) {
	m := new(storagepb.Message)
	if err := x.get(messageKey(mailboxID, uid), m); err != nil {
		return nil, err
	}
	return m, nil
}

func (x reader) Messages(mailboxID uint64, start, stop uint32, fn func(*storagepb.Message) error) error {
	lower := messageKey(mailboxID, start)
	var upper []byte
	if stop == 0 || stop == ^uint32(0) {
		upper = prefixEnd(u64Key(FamilyMessage, mailboxID))
	} else {
		if stop < start {
			return nil
		}
		upper = messageKey(mailboxID, stop+1)
	}
	return x.scan(lower, upper, func(k, v []byte) error {
		m := new(storagepb.Message)
		if err := proto.Unmarshal(v, m); err != nil {
			return fmt.Errorf("%w: msg value: %v", ErrCorrupt, err)
		}
		return fn(m)
	})
}

func (x reader) Blob(sha []byte) ([]byte, error) {
	if len(sha) != SHA256Size {
		return nil, ErrNotFound
	}
	v, closer, err := getValue(x.r, bytesKey(FamilyBlob, sha))
	if errors.Is(err, pebble.ErrNotFound) {
		cb, cerr := x.ChunkedBlob(sha)
		if cerr != nil {
			return nil, cerr
		}
		frame, cerr := x.chunkedFrame(cb)
		if cerr != nil {
			return nil, cerr
		}
		out, cerr := decompress(frame)
		if cerr != nil {
			return nil, fmt.Errorf("%w: blob %x: %v", ErrCorrupt, sha, cerr)
		}
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get blob: %w", err)
	}
	defer closer.Close()
	out, err := decompress(v)
	if err != nil {
		return nil, fmt.Errorf("%w: blob %x: %v", ErrCorrupt, sha, err)
	}
	return out, nil
}

func (x reader) blobRef(sha []byte) (*storagepb.BlobRef, error) {
	r := new(storagepb.BlobRef)
	if err := x.get(bytesKey(FamilyBlobRef, sha), r); err != nil {
		return nil, err
	}
	return r, nil
}

// BlobRef returns the reference count and size of a blob.
func (x reader) BlobRef(sha []byte) (*storagepb.BlobRef, error) {
	if len(sha) != SHA256Size {
		return nil, ErrNotFound
	}
	return x.blobRef(sha)
}

func (x reader) Parsed(sha []byte) (*storagepb.ParsedMessage, error) {
	if len(sha) != SHA256Size {
		return nil, ErrNotFound
	}
	p := new(storagepb.ParsedMessage)
	if err := x.get(bytesKey(FamilyParsed, sha), p); err != nil {
		return nil, err
	}
	return p, nil
}

func (x reader) Changes(mailboxID uint64, sinceModSeq uint64, fn func(modseq uint64, e *storagepb.ModSeqEntry) error) error {
	if sinceModSeq == ^uint64(0) {
		return nil
	}
	lower := modseqKey(mailboxID, sinceModSeq+1)
	upper := prefixEnd(u64Key(FamilyModSeq, mailboxID))
	return x.scan(lower, upper, func(k, v []byte) error {
		e := new(storagepb.ModSeqEntry)
		if err := proto.Unmarshal(v, e); err != nil {
			return fmt.Errorf("%w: modseq value: %v", ErrCorrupt, err)
		}
		return fn(binary.BigEndian.Uint64(k[9:]), e)
	})
}

func (x reader) Dedupe(key []byte) (*storagepb.Dedupe, error) {
	if len(key) == 0 {
		return nil, ErrNotFound
	}
	d := new(storagepb.Dedupe)
	if err := x.get(bytesKey(FamilyDedupe, key), d); err != nil {
		return nil, err
	}
	return d, nil
}

// Counter returns the value of a meta counter (MetaNextUserID, …): the next
// value it will hand out, or 0 when it was never used.
func (x reader) Counter(name string) (uint64, error) {
	v, err := x.getUint64(metaKey(name))
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	return v, err
}

// LogTime returns the last log time recorded by an apply (unix nanoseconds).
func (x reader) LogTime() (int64, error) {
	v, err := x.Counter(MetaLogTime)
	return int64(v), err
}
