package raftfsm

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/storage"
)

var quiet = slog.New(slog.DiscardHandler)

func openDB(t testing.TB, fs vfs.FS) *storage.DB {
	t.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	db, err := storage.Open("state", storage.Options{FS: fs, NoSync: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// harness is one FSM applying commands one entry at a time.
type harness struct {
	t      testing.TB
	db     *storage.DB
	f      *FSM
	index  uint64
	now    int64
	events []Event
	fatal  []error
}

func newHarness(t testing.TB) *harness {
	h := &harness{t: t, db: openDB(t, nil), now: 1_700_000_000e9}
	f, err := New(h.db, Options{Logger: quiet,
		OnApply: func(_ uint64, ev []Event) { h.events = append(h.events, ev...) },
		OnFatal: func(err error) { h.fatal = append(h.fatal, err) }})
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
	return h
}

func (h *harness) entry(data []byte) *raft.Log {
	h.index++
	return &raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data}
}

// applyRaw applies one entry and returns its response.
func (h *harness) applyRaw(data []byte) *Response {
	h.t.Helper()
	return h.f.ApplyBatch([]*raft.Log{h.entry(data)})[0].(*Response)
}

// apply applies c stamped with the harness clock and returns its result.
func (h *harness) apply(c *commandpb.Command) *commandpb.Result {
	h.t.Helper()
	if c.TimeUnixNano == 0 {
		c.TimeUnixNano = h.now
	}
	data, err := Encode(c)
	if err != nil {
		h.t.Fatal(err)
	}
	r := h.applyRaw(data)
	if r.Err != nil {
		h.t.Fatalf("apply %v: %v", c, r.Err)
	}
	return r.Result
}

// must applies c and fails the test unless the result code is want.
func (h *harness) must(want commandpb.Code, c *commandpb.Command) *commandpb.Result {
	h.t.Helper()
	res := h.apply(c)
	if res.GetCode() != want {
		h.t.Fatalf("%v: code %v (%q), want %v", c.GetOp(), res.GetCode(), res.GetMessage(), want)
	}
	return res
}

func (h *harness) snap() *storage.Snap {
	s := h.db.Snapshot()
	h.t.Cleanup(func() { _ = s.Close() })
	return s
}

func (h *harness) digest() []byte {
	h.t.Helper()
	d, err := h.db.Digest()
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) mailbox(userID uint64, name string) *storagepb.Mailbox {
	h.t.Helper()
	s := h.db.Snapshot()
	defer s.Close()
	m, err := s.MailboxByName(userID, name)
	if err != nil {
		h.t.Fatalf("mailbox %d/%s: %v", userID, name, err)
	}
	return m
}

func (h *harness) messages(mailboxID uint64) []*storagepb.Message {
	h.t.Helper()
	s := h.db.Snapshot()
	defer s.Close()
	var out []*storagepb.Message
	if err := s.Messages(mailboxID, 1, 0, func(m *storagepb.Message) error { out = append(out, m); return nil }); err != nil {
		h.t.Fatal(err)
	}
	return out
}

func (h *harness) user(email string) *storagepb.User {
	h.t.Helper()
	s := h.db.Snapshot()
	defer s.Close()
	u, err := s.UserByEmail(email)
	if err != nil {
		h.t.Fatalf("user %s: %v", email, err)
	}
	return u
}

func (h *harness) blobRefs(sha []byte) uint64 {
	s := h.db.Snapshot()
	defer s.Close()
	r, err := s.BlobRef(sha)
	if err != nil {
		return 0
	}
	return r.Refs
}

// setup creates example.test and the given users; it returns their IDs.
func (h *harness) setup(emails ...string) []uint64 {
	h.must(commandpb.Code_CODE_OK, domainAdd("example.test"))
	var ids []uint64
	for _, e := range emails {
		ids = append(ids, h.must(commandpb.Code_CODE_OK, userAdd(e, 0)).UserId)
	}
	return ids
}

// Command builders.

func cmd(op any) *commandpb.Command {
	c := &commandpb.Command{}
	switch o := op.(type) {
	case *commandpb.DomainAdd:
		c.Op = &commandpb.Command_DomainAdd{DomainAdd: o}
	case *commandpb.BlobChunk:
		c.Op = &commandpb.Command_BlobChunk{BlobChunk: o}
	case *commandpb.AppendBatch:
		c.Op = &commandpb.Command_AppendBatch{AppendBatch: o}
	case *commandpb.DomainDel:
		c.Op = &commandpb.Command_DomainDel{DomainDel: o}
	case *commandpb.UserAdd:
		c.Op = &commandpb.Command_UserAdd{UserAdd: o}
	case *commandpb.UserPasswd:
		c.Op = &commandpb.Command_UserPasswd{UserPasswd: o}
	case *commandpb.UserDel:
		c.Op = &commandpb.Command_UserDel{UserDel: o}
	case *commandpb.AliasSet:
		c.Op = &commandpb.Command_AliasSet{AliasSet: o}
	case *commandpb.QuotaSet:
		c.Op = &commandpb.Command_QuotaSet{QuotaSet: o}
	case *commandpb.MailboxCreate:
		c.Op = &commandpb.Command_MailboxCreate{MailboxCreate: o}
	case *commandpb.MailboxRename:
		c.Op = &commandpb.Command_MailboxRename{MailboxRename: o}
	case *commandpb.MailboxDelete:
		c.Op = &commandpb.Command_MailboxDelete{MailboxDelete: o}
	case *commandpb.MailboxSubscribe:
		c.Op = &commandpb.Command_MailboxSubscribe{MailboxSubscribe: o}
	case *commandpb.Deliver:
		c.Op = &commandpb.Command_Deliver{Deliver: o}
	case *commandpb.Append:
		c.Op = &commandpb.Command_Append{Append: o}
	case *commandpb.StoreFlags:
		c.Op = &commandpb.Command_StoreFlags{StoreFlags: o}
	case *commandpb.Copy:
		c.Op = &commandpb.Command_Copy{Copy: o}
	case *commandpb.Move:
		c.Op = &commandpb.Command_Move{Move: o}
	case *commandpb.Expunge:
		c.Op = &commandpb.Command_Expunge{Expunge: o}
	case *commandpb.ConsistencyCheck:
		c.Op = &commandpb.Command_ConsistencyCheck{ConsistencyCheck: o}
	case *commandpb.AdminCommand:
		c.Op = &commandpb.Command_AdminCommand{AdminCommand: o}
	case *commandpb.RetentionSet:
		c.Op = &commandpb.Command_RetentionSet{RetentionSet: o}
	case *commandpb.RetentionRun:
		c.Op = &commandpb.Command_RetentionRun{RetentionRun: o}
	case *commandpb.HoldPlace:
		c.Op = &commandpb.Command_HoldPlace{HoldPlace: o}
	case *commandpb.HoldRelease:
		c.Op = &commandpb.Command_HoldRelease{HoldRelease: o}
	case *commandpb.VaultRestore:
		c.Op = &commandpb.Command_VaultRestore{VaultRestore: o}
	case *commandpb.UidValidityRenew:
		c.Op = &commandpb.Command_UidValidityRenew{UidValidityRenew: o}
	default:
		panic(fmt.Sprintf("cmd: %T", op))
	}
	return c
}

func domainAdd(name string) *commandpb.Command { return cmd(&commandpb.DomainAdd{Name: name}) }

func userAdd(email string, quota uint64) *commandpb.Command {
	return cmd(&commandpb.UserAdd{Email: email, PasswordHash: []byte("$argon2id$x"), QuotaBytes: quota})
}

func blob(body string) *commandpb.Blob {
	data := []byte("Subject: test\r\n\r\n" + body + "\r\n")
	sum := sha256.Sum256(data)
	return &commandpb.Blob{Sha256: sum[:], Data: data,
		Parsed: &storagepb.ParsedMessage{Envelope: &storagepb.Envelope{Subject: "test"}}}
}

func deliver(b *commandpb.Blob, rcpts ...*commandpb.Recipient) *commandpb.Command {
	return cmd(&commandpb.Deliver{Blob: b, Recipients: rcpts, InternalDateUnix: 1_700_000_000})
}

func rcpt(email string) *commandpb.Recipient { return &commandpb.Recipient{Email: email} }

func appendMsg(user, mbox uint64, b *commandpb.Blob, flags ...string) *commandpb.Command {
	return cmd(&commandpb.Append{UserId: user, MailboxId: mbox, Blob: b, Flags: flags})
}

func all() []*commandpb.UIDRange { return []*commandpb.UIDRange{{Start: 1}} }

func uidRange(start, stop uint32) []*commandpb.UIDRange {
	return []*commandpb.UIDRange{{Start: start, Stop: stop}}
}

func store(user, mbox uint64, uids []*commandpb.UIDRange, op commandpb.FlagOp, flags ...string) *commandpb.StoreFlags {
	return &commandpb.StoreFlags{UserId: user, MailboxId: mbox, Uids: uids, Op: op, Flags: flags}
}

func uidsOf(msgs []*storagepb.Message) []uint32 {
	var out []uint32
	for _, m := range msgs {
		out = append(out, m.Uid)
	}
	return out
}

func eqDigest(a, b []byte) bool { return bytes.Equal(a, b) }

// chunked splits a blob into an upload of n chunks (as node/mail proposes
// a large message) and returns the chunk commands and the blob naming them.
func chunked(b *commandpb.Blob, id byte, n int) ([]*commandpb.Command, *commandpb.Blob) {
	frame := storage.Compress(b.GetData())
	if len(b.GetZstd()) > 0 {
		frame = b.GetZstd()
	}
	size := b.GetSize()
	if len(b.GetData()) > 0 {
		size = uint64(len(b.GetData()))
	}
	uid := bytes.Repeat([]byte{id}, storage.UploadIDSize)
	out := &commandpb.Blob{Sha256: b.GetSha256(), Parsed: b.GetParsed(), Size: size, UploadId: uid}
	var cmds []*commandpb.Command
	step := (len(frame) + n - 1) / n
	for seq := 0; len(frame) > 0; seq++ {
		k := min(step, len(frame))
		sum := sha256.Sum256(frame[:k])
		out.ChunkSha256 = append(out.ChunkSha256, sum[:])
		cmds = append(cmds, cmd(&commandpb.BlobChunk{UploadId: uid, Seq: uint32(seq), Data: frame[:k]}))
		frame = frame[k:]
	}
	out.Chunks = uint32(len(cmds))
	return cmds, out
}
