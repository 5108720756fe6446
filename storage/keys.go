package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Family is the first byte of every key: which kind of row it is. The values
// are part of the on-disk format and of the snapshot stream; they only grow.
type Family byte

// The key families. doc.go describes the layout of each.
const (
	FamilyMeta          Family = 0x01
	FamilyDomain        Family = 0x02
	FamilyUser          Family = 0x03
	FamilyUserByEmail   Family = 0x04
	FamilyAlias         Family = 0x05
	FamilyMailbox       Family = 0x06
	FamilyMailboxByName Family = 0x07
	FamilyMessage       Family = 0x08
	FamilyModSeq        Family = 0x09
	FamilyBlob          Family = 0x0a
	FamilyBlobRef       Family = 0x0b
	FamilyParsed        Family = 0x0c
	FamilyDedupe        Family = 0x0d
	FamilyDedupeExp     Family = 0x0e
	FamilyChunk         Family = 0x0f
	FamilyUpload        Family = 0x10
	FamilyUploadExp     Family = 0x11
	FamilyBlobChunks    Family = 0x12
	FamilyRetention     Family = 0x13
	FamilyHold          Family = 0x14
	FamilyVault         Family = 0x15
	FamilyAudit         Family = 0x16
	FamilyJournal       Family = 0x17
	FamilyHeader        Family = 0x18

	familyEnd Family = 0x19 // first byte above every family: the upper bound of a full scan
)

var familyNames = map[Family]string{
	FamilyMeta: "meta", FamilyDomain: "domain", FamilyUser: "user",
	FamilyUserByEmail: "user-by-email", FamilyAlias: "alias", FamilyMailbox: "mbox",
	FamilyMailboxByName: "mbox-by-name", FamilyMessage: "msg", FamilyModSeq: "modseq",
	FamilyBlob: "blob", FamilyBlobRef: "blobref", FamilyParsed: "parsed",
	FamilyDedupe: "dedupe", FamilyDedupeExp: "dedupe-exp",
	FamilyChunk: "chunk", FamilyUpload: "upload", FamilyUploadExp: "upload-exp",
	FamilyBlobChunks: "blob-chunks",
	FamilyRetention:  "retention", FamilyHold: "hold", FamilyVault: "vault",
	FamilyAudit: "audit", FamilyJournal: "journal", FamilyHeader: "header",
}

func (f Family) String() string {
	if n, ok := familyNames[f]; ok {
		return n
	}
	return fmt.Sprintf("family(%#x)", byte(f))
}

// Meta row names (the part of a meta key after the family byte).
const (
	MetaApplied         = "applied"
	MetaNextUserID      = "next-user-id"
	MetaNextMailboxID   = "next-mailbox-id"
	MetaNextUIDValidity = "next-uidvalidity"
	MetaLogTime         = "log-time"
	// MetaJournalHead is the journal's last link: index u64 | SHA-256.
	MetaJournalHead = "journal-head"
)

// SHA256Size is the length of a blob's identifier.
const SHA256Size = 32

// UploadIDSize is the length of a chunked upload's identifier.
const UploadIDSize = 16

// MaxKeySize bounds every key: names, e-mail addresses and dedupe keys are
// validated far below it by raftfsm; the snapshot decoder refuses longer keys.
const MaxKeySize = 4096

// ErrBadKey is wrapped by ParseKey errors.
var ErrBadKey = errors.New("storage: malformed key")

// Key is the decoded form of any key. Only the fields of its Family's layout
// are set; the others are zero. It exists for tests, tools and the snapshot
// decoder's validation: the hot paths build keys with the append functions.
type Key struct {
	Family    Family
	UserID    uint64
	MailboxID uint64
	UID       uint32
	ModSeq    uint64
	Expires   int64  // dedupe-exp: unix nanoseconds
	Name      string // meta name, domain, e-mail address, mailbox name
	Hash      []byte // blob SHA-256 (32 bytes) or dedupe key (1..MaxKeySize/2 bytes)
	Upload    []byte // chunk, upload, upload-exp: the upload ID (16 bytes)
	Seq       uint32 // chunk: the chunk's sequence number
	Index     uint64 // audit, journal: the Raft index of the entry
}

// Encode returns the key's bytes. It panics on a Key that ParseKey could not
// have produced (an empty name or a hash of the wrong length): that is a bug
// in the caller, not input.
func (k Key) Encode() []byte {
	b := []byte{byte(k.Family)}
	switch k.Family {
	case FamilyMeta, FamilyDomain, FamilyUserByEmail, FamilyAlias, FamilyRetention, FamilyHold:
		mustName(k.Name)
		b = append(b, k.Name...)
	case FamilyVault:
		b = binary.BigEndian.AppendUint64(b, k.UserID)
		b = binary.BigEndian.AppendUint64(b, k.MailboxID)
		b = binary.BigEndian.AppendUint32(b, k.UID)
	case FamilyAudit, FamilyJournal:
		b = binary.BigEndian.AppendUint64(b, k.Index)
	case FamilyUser:
		b = binary.BigEndian.AppendUint64(b, k.UserID)
	case FamilyMailbox:
		b = binary.BigEndian.AppendUint64(b, k.UserID)
		b = binary.BigEndian.AppendUint64(b, k.MailboxID)
	case FamilyMailboxByName:
		mustName(k.Name)
		b = binary.BigEndian.AppendUint64(b, k.UserID)
		b = append(b, k.Name...)
	case FamilyMessage:
		b = binary.BigEndian.AppendUint64(b, k.MailboxID)
		b = binary.BigEndian.AppendUint32(b, k.UID)
	case FamilyModSeq:
		b = binary.BigEndian.AppendUint64(b, k.MailboxID)
		b = binary.BigEndian.AppendUint64(b, k.ModSeq)
	case FamilyBlob, FamilyBlobRef, FamilyParsed, FamilyHeader:
		if len(k.Hash) != SHA256Size {
			panic("storage: blob key with a hash of the wrong length")
		}
		b = append(b, k.Hash...)
	case FamilyDedupe:
		mustName(string(k.Hash))
		b = append(b, k.Hash...)
	case FamilyDedupeExp:
		mustName(string(k.Hash))
		b = binary.BigEndian.AppendUint64(b, orderedInt64(k.Expires))
		b = append(b, k.Hash...)
	case FamilyChunk:
		mustUpload(k.Upload)
		b = binary.BigEndian.AppendUint32(append(b, k.Upload...), k.Seq)
	case FamilyUpload:
		mustUpload(k.Upload)
		b = append(b, k.Upload...)
	case FamilyUploadExp:
		mustUpload(k.Upload)
		b = binary.BigEndian.AppendUint64(b, orderedInt64(k.Expires))
		b = append(b, k.Upload...)
	case FamilyBlobChunks:
		if len(k.Hash) != SHA256Size {
			panic("storage: blob key with a hash of the wrong length")
		}
		b = append(b, k.Hash...)
	default:
		panic(fmt.Sprintf("storage: encode key of unknown %v", k.Family))
	}
	return b
}

func mustUpload(id []byte) {
	if len(id) != UploadIDSize {
		panic("storage: upload key with an ID of the wrong length")
	}
}

func mustName(s string) {
	if s == "" {
		panic("storage: key with an empty name")
	}
}

// ParseKey decodes any key written by Encode. Every byte string it accepts
// re-encodes to itself (FuzzKey checks this).
func ParseKey(b []byte) (Key, error) {
	if len(b) < 2 {
		return Key{}, fmt.Errorf("%w: %d bytes", ErrBadKey, len(b))
	}
	if len(b) > MaxKeySize {
		return Key{}, fmt.Errorf("%w: %d bytes, over %d", ErrBadKey, len(b), MaxKeySize)
	}
	k := Key{Family: Family(b[0])}
	rest := b[1:]
	fixed := func(n int) error {
		if len(rest) != n {
			return fmt.Errorf("%w: %v key of %d bytes, want %d", ErrBadKey, k.Family, len(b), n+1)
		}
		return nil
	}
	switch k.Family {
	case FamilyMeta, FamilyDomain, FamilyUserByEmail, FamilyAlias, FamilyRetention, FamilyHold:
		k.Name = string(rest)
	case FamilyVault:
		if err := fixed(20); err != nil {
			return Key{}, err
		}
		k.UserID = binary.BigEndian.Uint64(rest)
		k.MailboxID = binary.BigEndian.Uint64(rest[8:])
		k.UID = binary.BigEndian.Uint32(rest[16:])
	case FamilyAudit, FamilyJournal:
		if err := fixed(8); err != nil {
			return Key{}, err
		}
		k.Index = binary.BigEndian.Uint64(rest)
	case FamilyUser:
		if err := fixed(8); err != nil {
			return Key{}, err
		}
		k.UserID = binary.BigEndian.Uint64(rest)
	case FamilyMailbox:
		if err := fixed(16); err != nil {
			return Key{}, err
		}
		k.UserID = binary.BigEndian.Uint64(rest)
		k.MailboxID = binary.BigEndian.Uint64(rest[8:])
	case FamilyMailboxByName:
		if len(rest) < 9 {
			return Key{}, fmt.Errorf("%w: %v key of %d bytes", ErrBadKey, k.Family, len(b))
		}
		k.UserID = binary.BigEndian.Uint64(rest)
		k.Name = string(rest[8:])
	case FamilyMessage:
		if err := fixed(12); err != nil {
			return Key{}, err
		}
		k.MailboxID = binary.BigEndian.Uint64(rest)
		k.UID = binary.BigEndian.Uint32(rest[8:])
	case FamilyModSeq:
		if err := fixed(16); err != nil {
			return Key{}, err
		}
		k.MailboxID = binary.BigEndian.Uint64(rest)
		k.ModSeq = binary.BigEndian.Uint64(rest[8:])
	case FamilyBlob, FamilyBlobRef, FamilyParsed, FamilyHeader:
		if err := fixed(SHA256Size); err != nil {
			return Key{}, err
		}
		k.Hash = bytes.Clone(rest)
	case FamilyDedupe:
		k.Hash = bytes.Clone(rest)
	case FamilyDedupeExp:
		if len(rest) < 9 {
			return Key{}, fmt.Errorf("%w: %v key of %d bytes", ErrBadKey, k.Family, len(b))
		}
		k.Expires = unorderedInt64(binary.BigEndian.Uint64(rest))
		k.Hash = bytes.Clone(rest[8:])
	case FamilyChunk:
		if err := fixed(UploadIDSize + 4); err != nil {
			return Key{}, err
		}
		k.Upload = bytes.Clone(rest[:UploadIDSize])
		k.Seq = binary.BigEndian.Uint32(rest[UploadIDSize:])
	case FamilyUpload:
		if err := fixed(UploadIDSize); err != nil {
			return Key{}, err
		}
		k.Upload = bytes.Clone(rest)
	case FamilyUploadExp:
		if err := fixed(8 + UploadIDSize); err != nil {
			return Key{}, err
		}
		k.Expires = unorderedInt64(binary.BigEndian.Uint64(rest))
		k.Upload = bytes.Clone(rest[8:])
	case FamilyBlobChunks:
		if err := fixed(SHA256Size); err != nil {
			return Key{}, err
		}
		k.Hash = bytes.Clone(rest)
	default:
		return Key{}, fmt.Errorf("%w: unknown family %#x", ErrBadKey, b[0])
	}
	return k, nil
}

// orderedInt64 maps an int64 to a uint64 whose big-endian bytes sort in the
// same order as the signed values (flip the sign bit).
func orderedInt64(v int64) uint64 { return uint64(v) ^ (1 << 63) }

func unorderedInt64(u uint64) int64 { return int64(u ^ (1 << 63)) }

// Hot-path key builders. Each appends to dst so callers can reuse a buffer.

func metaKey(name string) []byte { return append([]byte{byte(FamilyMeta)}, name...) }

func stringKey(f Family, s string) []byte {
	b := make([]byte, 0, 1+len(s))
	return append(append(b, byte(f)), s...)
}

func bytesKey(f Family, s []byte) []byte {
	b := make([]byte, 0, 1+len(s))
	return append(append(b, byte(f)), s...)
}

func userKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), byte(FamilyUser)), id)
}

func u64Key(f Family, a uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 17), byte(f)), a)
}

func mailboxKey(userID, mailboxID uint64) []byte {
	return binary.BigEndian.AppendUint64(u64Key(FamilyMailbox, userID), mailboxID)
}

func mailboxNameKey(userID uint64, name string) []byte {
	return append(u64Key(FamilyMailboxByName, userID), name...)
}

func messageKey(mailboxID uint64, uid uint32) []byte {
	return binary.BigEndian.AppendUint32(u64Key(FamilyMessage, mailboxID), uid)
}

func modseqKey(mailboxID, modseq uint64) []byte {
	return binary.BigEndian.AppendUint64(u64Key(FamilyModSeq, mailboxID), modseq)
}

func dedupeExpKey(expires int64, key []byte) []byte {
	b := u64Key(FamilyDedupeExp, orderedInt64(expires))
	return append(b, key...)
}

func chunkKey(upload []byte, seq uint32) []byte {
	b := make([]byte, 0, 1+UploadIDSize+4)
	return binary.BigEndian.AppendUint32(append(append(b, byte(FamilyChunk)), upload...), seq)
}

func uploadExpKey(expires int64, upload []byte) []byte {
	return append(u64Key(FamilyUploadExp, orderedInt64(expires)), upload...)
}

// prefixEnd returns the smallest key above every key that starts with p, or
// nil when there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
