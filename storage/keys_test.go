package storage

import (
	"bytes"
	"cmp"
	"math/rand/v2"
	"reflect"
	"testing"
)

func sampleKeys() []Key {
	sha := bytes.Repeat([]byte{0xab}, SHA256Size)
	return []Key{
		{Family: FamilyMeta, Name: MetaApplied},
		{Family: FamilyDomain, Name: "example.test"},
		{Family: FamilyUser, UserID: 1},
		{Family: FamilyUser, UserID: 1 << 60},
		{Family: FamilyUserByEmail, Name: "a@example.test"},
		{Family: FamilyAlias, Name: "postmaster@example.test"},
		{Family: FamilyMailbox, UserID: 7, MailboxID: 300},
		{Family: FamilyMailboxByName, UserID: 7, Name: "INBOX/Sub ü"},
		{Family: FamilyMessage, MailboxID: 300, UID: 1<<32 - 1},
		{Family: FamilyModSeq, MailboxID: 300, ModSeq: 12345},
		{Family: FamilyBlob, Hash: sha},
		{Family: FamilyBlobRef, Hash: sha},
		{Family: FamilyParsed, Hash: sha},
		{Family: FamilyHeader, Hash: sha},
		{Family: FamilyDedupe, Hash: []byte{0, 1, 2}},
		{Family: FamilyDedupeExp, Expires: -5, Hash: []byte{9}},
		{Family: FamilyDedupeExp, Expires: 1 << 62, Hash: []byte{0}},
		{Family: FamilyChunk, Upload: sha[:UploadIDSize], Seq: 41},
		{Family: FamilyUpload, Upload: sha[:UploadIDSize]},
		{Family: FamilyUploadExp, Expires: 1 << 61, Upload: sha[:UploadIDSize]},
		{Family: FamilyBlobChunks, Hash: sha},
		{Family: FamilyRetention, Name: "domain:example.test"},
		{Family: FamilyHold, Name: "user:a@example.test"},
		{Family: FamilyVault, UserID: 3, MailboxID: 17, UID: 9},
		{Family: FamilyAudit, Index: 1 << 40},
		{Family: FamilyJournal, Index: 12},
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, k := range sampleKeys() {
		got, err := ParseKey(k.Encode())
		if err != nil {
			t.Fatalf("ParseKey(%v): %v", k, err)
		}
		if !reflect.DeepEqual(got, k) {
			t.Errorf("round trip: got %+v, want %+v", got, k)
		}
	}
}

func TestParseKeyRejects(t *testing.T) {
	for _, b := range [][]byte{
		nil, {0x01}, {0x00, 1}, {0x0f, 1}, {0xff, 1},
		{byte(FamilyUser), 1, 2},                      // short id
		{byte(FamilyMessage), 0, 0, 0, 0, 0, 0, 0, 1}, // no uid
		append([]byte{byte(FamilyBlob)}, make([]byte, 31)...),
		{byte(FamilyMailboxByName), 0, 0, 0, 0, 0, 0, 0, 1}, // no name
		{byte(FamilyDedupeExp), 0, 0, 0, 0, 0, 0, 0, 1},     // no key
	} {
		if k, err := ParseKey(b); err == nil {
			t.Errorf("ParseKey(%x) = %+v, want an error", b, k)
		}
	}
}

// compareTuple is the intended order of keys: family, then the identity
// fields in key order.
func compareTuple(a, b Key) int {
	if c := cmp.Compare(a.Family, b.Family); c != 0 {
		return c
	}
	switch a.Family {
	case FamilyMailbox:
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.MailboxID, b.MailboxID))
	case FamilyMailboxByName:
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.Name, b.Name))
	case FamilyMessage:
		return cmp.Or(cmp.Compare(a.MailboxID, b.MailboxID), cmp.Compare(a.UID, b.UID))
	case FamilyModSeq:
		return cmp.Or(cmp.Compare(a.MailboxID, b.MailboxID), cmp.Compare(a.ModSeq, b.ModSeq))
	case FamilyUser:
		return cmp.Compare(a.UserID, b.UserID)
	case FamilyVault:
		return cmp.Or(cmp.Compare(a.UserID, b.UserID), cmp.Compare(a.MailboxID, b.MailboxID), cmp.Compare(a.UID, b.UID))
	case FamilyAudit, FamilyJournal:
		return cmp.Compare(a.Index, b.Index)
	case FamilyDedupeExp:
		return cmp.Or(cmp.Compare(a.Expires, b.Expires), bytes.Compare(a.Hash, b.Hash))
	case FamilyBlob, FamilyBlobRef, FamilyParsed, FamilyHeader, FamilyDedupe:
		return bytes.Compare(a.Hash, b.Hash)
	default:
		return cmp.Compare(a.Name, b.Name)
	}
}

func randomKey(r *rand.Rand) Key {
	fams := []Family{FamilyMeta, FamilyDomain, FamilyUser, FamilyUserByEmail, FamilyAlias, FamilyMailbox,
		FamilyMailboxByName, FamilyMessage, FamilyModSeq, FamilyBlob, FamilyBlobRef, FamilyParsed,
		FamilyDedupe, FamilyDedupeExp, FamilyRetention, FamilyHold, FamilyVault, FamilyAudit, FamilyJournal, FamilyHeader}
	// Small ranges so that ties in leading fields are frequent.
	u64 := func() uint64 {
		if r.IntN(4) == 0 {
			return r.Uint64()
		}
		return uint64(r.IntN(4))
	}
	str := func() string {
		const alphabet = "aZ/\x00\xff.é"
		n := 1 + r.IntN(4)
		b := make([]byte, 0, n)
		for range n {
			b = append(b, alphabet[r.IntN(len(alphabet))])
		}
		return string(b)
	}
	k := Key{Family: fams[r.IntN(len(fams))]}
	switch k.Family {
	case FamilyMeta, FamilyDomain, FamilyUserByEmail, FamilyAlias, FamilyRetention, FamilyHold:
		k.Name = str()
	case FamilyVault:
		k.UserID, k.MailboxID, k.UID = u64(), u64(), uint32(u64())
	case FamilyAudit, FamilyJournal:
		k.Index = u64()
	case FamilyUser:
		k.UserID = u64()
	case FamilyMailbox:
		k.UserID, k.MailboxID = u64(), u64()
	case FamilyMailboxByName:
		k.UserID, k.Name = u64(), str()
	case FamilyMessage:
		k.MailboxID, k.UID = u64(), uint32(u64())
	case FamilyModSeq:
		k.MailboxID, k.ModSeq = u64(), u64()
	case FamilyBlob, FamilyBlobRef, FamilyParsed, FamilyHeader:
		k.Hash = bytes.Repeat([]byte(str()[:1]), SHA256Size)
	case FamilyDedupe:
		k.Hash = []byte(str())
	case FamilyDedupeExp:
		k.Expires, k.Hash = int64(u64())-2, []byte(str())
	}
	return k
}

func TestKeyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		a, b := randomKey(r), randomKey(r)
		if r.IntN(3) == 0 {
			b.Family = a.Family
			b = randomKeyOf(r, a.Family)
		}
		want := compareTuple(a, b)
		got := bytes.Compare(a.Encode(), b.Encode())
		if got != want {
			t.Fatalf("order of %+v and %+v: bytes give %d, tuples %d", a, b, got, want)
		}
	}
}

func randomKeyOf(r *rand.Rand, f Family) Key {
	for {
		if k := randomKey(r); k.Family == f {
			return k
		}
	}
}

func FuzzKey(f *testing.F) {
	for _, k := range sampleKeys() {
		f.Add(k.Encode())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err != nil {
			return
		}
		if got := k.Encode(); !bytes.Equal(got, b) {
			t.Fatalf("ParseKey(%x).Encode() = %x", b, got)
		}
		k2, err := ParseKey(k.Encode())
		if err != nil || !reflect.DeepEqual(k, k2) {
			t.Fatalf("second round trip: %+v, %v", k2, err)
		}
	})
}
