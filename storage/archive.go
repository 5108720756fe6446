package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// The compliance archive's rows (raftfsm/archive.go writes them):
//
//	retention/<scope>                   storagepb.RetentionPolicy
//	hold/<scope>                        storagepb.Hold
//	vault/<userID><mailboxID><uid>      storagepb.VaultEntry: expunged, kept
//	audit/<index>                       storagepb.AuditEntry
//	journal/<index>                     storagepb.JournalLink
//	meta/journal-head                   index u64 | SHA-256 of the last link
//
// A scope is "domain:NAME" or "user:EMAIL", validated by raftfsm.

// DomainScope and UserScope name the scope of a policy or a hold.
func DomainScope(name string) string { return "domain:" + name }

// UserScope is DomainScope for a user's canonical address.
func UserScope(email string) string { return "user:" + email }

func vaultKey(userID, mailboxID uint64, uid uint32) []byte {
	b := binary.BigEndian.AppendUint64(u64Key(FamilyVault, userID), mailboxID)
	return binary.BigEndian.AppendUint32(b, uid)
}

// RetentionPolicy returns the policy of a scope.
func (x reader) RetentionPolicy(scope string) (*storagepb.RetentionPolicy, error) {
	p := new(storagepb.RetentionPolicy)
	return p, x.get(stringKey(FamilyRetention, scope), p)
}

// RetentionPolicies lists every policy in scope order.
func (x reader) RetentionPolicies() ([]*storagepb.RetentionPolicy, error) {
	return scanProto(x, []byte{byte(FamilyRetention)}, []byte{byte(FamilyRetention) + 1}, func() *storagepb.RetentionPolicy { return new(storagepb.RetentionPolicy) })
}

// Hold returns the hold of a scope.
func (x reader) Hold(scope string) (*storagepb.Hold, error) {
	h := new(storagepb.Hold)
	return h, x.get(stringKey(FamilyHold, scope), h)
}

// Holds lists every hold in scope order.
func (x reader) Holds() ([]*storagepb.Hold, error) {
	return scanProto(x, []byte{byte(FamilyHold)}, []byte{byte(FamilyHold) + 1}, func() *storagepb.Hold { return new(storagepb.Hold) })
}

// Vault lists the user's vaulted messages in key order.
func (x reader) Vault(userID uint64) ([]*storagepb.VaultEntry, error) {
	p := u64Key(FamilyVault, userID)
	return scanProto(x, p, prefixEnd(p), func() *storagepb.VaultEntry { return new(storagepb.VaultEntry) })
}

// AuditEntries calls fn for every audit entry from index on, ascending.
func (x reader) AuditEntries(from uint64, fn func(*storagepb.AuditEntry) error) error {
	return scanEach(x, u64Key(FamilyAudit, from), []byte{byte(FamilyAudit) + 1}, func() *storagepb.AuditEntry { return new(storagepb.AuditEntry) }, fn)
}

// JournalLinks calls fn for every journal link, ascending by index; a row
// that does not decode is passed with its error (the verifier reports it
// as a break), a malformed key ends the scan with ErrCorrupt.
func (x reader) JournalLinks(fn func(index uint64, l *storagepb.JournalLink, err error) error) error {
	return x.scan([]byte{byte(FamilyJournal)}, []byte{byte(FamilyJournal) + 1}, func(k, v []byte) error {
		if len(k) != 9 {
			return fmt.Errorf("%w: journal key of %d bytes", ErrCorrupt, len(k))
		}
		l := new(storagepb.JournalLink)
		var derr error
		if err := proto.Unmarshal(v, l); err != nil {
			derr = fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		return fn(binary.BigEndian.Uint64(k[1:]), l, derr)
	})
}

// JournalHead returns the index and hash of the journal's last link
// (0, nil: no link yet).
func (x reader) JournalHead() (uint64, []byte, error) {
	v, err := x.getRaw(metaKey(MetaJournalHead))
	if errors.Is(err, ErrNotFound) {
		return 0, nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	if len(v) != 8+SHA256Size {
		return 0, nil, fmt.Errorf("%w: journal head of %d bytes", ErrCorrupt, len(v))
	}
	return binary.BigEndian.Uint64(v), v[8:], nil
}

func scanEach[M proto.Message](x reader, lower, upper []byte, newM func() M, fn func(M) error) error {
	return x.scan(lower, upper, func(k, v []byte) error {
		m := newM()
		if err := proto.Unmarshal(v, m); err != nil {
			return fmt.Errorf("%w: %v value: %v", ErrCorrupt, Family(k[0]), err)
		}
		return fn(m)
	})
}

// PutRetentionPolicy writes retention/<scope>.
func (b *Batch) PutRetentionPolicy(p *storagepb.RetentionPolicy) error {
	return b.put(stringKey(FamilyRetention, p.GetScope()), p)
}

// DeleteRetentionPolicy deletes retention/<scope>.
func (b *Batch) DeleteRetentionPolicy(scope string) error {
	return b.del(stringKey(FamilyRetention, scope))
}

// PutHold writes hold/<scope>.
func (b *Batch) PutHold(h *storagepb.Hold) error {
	return b.put(stringKey(FamilyHold, h.GetScope()), h)
}

// DeleteHold deletes hold/<scope>.
func (b *Batch) DeleteHold(scope string) error { return b.del(stringKey(FamilyHold, scope)) }

// PutVault writes vault/<user><mailbox><uid>.
func (b *Batch) PutVault(e *storagepb.VaultEntry) error {
	return b.put(vaultKey(e.GetUserId(), e.GetMailboxId(), e.GetMessage().GetUid()), e)
}

// DeleteVault deletes a vault row (the caller releases the blob).
func (b *Batch) DeleteVault(e *storagepb.VaultEntry) error {
	return b.del(vaultKey(e.GetUserId(), e.GetMailboxId(), e.GetMessage().GetUid()))
}

// PutAudit writes audit/<index>.
func (b *Batch) PutAudit(e *storagepb.AuditEntry) error {
	return b.put(u64Key(FamilyAudit, e.GetIndex()), e)
}

// PutJournalLink writes journal/<index> and moves the head to it.
func (b *Batch) PutJournalLink(l *storagepb.JournalLink) error {
	if len(l.GetHash()) != SHA256Size {
		return fmt.Errorf("storage: journal link with a hash of %d bytes", len(l.GetHash()))
	}
	if err := b.put(u64Key(FamilyJournal, l.GetIndex()), l); err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+SHA256Size), l.GetIndex())
	return b.set(metaKey(MetaJournalHead), append(v, l.GetHash()...))
}

// SetRaw writes one row as given, bypassing every check: only for tools
// and tests that simulate damage or tampering (archive verify's tests).
func (b *Batch) SetRaw(key, value []byte) error { return b.set(key, value) }

// GetRaw reads one row's bytes as stored (see SetRaw).
func (x reader) GetRaw(key []byte) ([]byte, error) { return x.getRaw(key) }

// VaultEntry returns one vault row.
func (x reader) VaultEntry(userID, mailboxID uint64, uid uint32) (*storagepb.VaultEntry, error) {
	e := new(storagepb.VaultEntry)
	return e, x.get(vaultKey(userID, mailboxID, uid), e)
}

// MetaRetentionCursor is the user ID the next RetentionRun entry starts
// at (absent: the first user): a run too big for one entry continues in
// the next one where it stopped.
const MetaRetentionCursor = "retention-cursor"

// SetRetentionCursor records where the next run starts; 0 deletes it.
func (b *Batch) SetRetentionCursor(userID uint64) error {
	if userID == 0 {
		return b.del(metaKey(MetaRetentionCursor))
	}
	return b.putUint64(metaKey(MetaRetentionCursor), userID)
}
