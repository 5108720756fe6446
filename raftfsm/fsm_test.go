package raftfsm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/storage"
)

// gen produces a random but reproducible command stream over a small world,
// so that commands often hit existing rows and often fail.
type gen struct {
	r     *rand.Rand
	a     *rand.Rand // the archive operations' own stream
	queue []*commandpb.Command
	now   int64
	last  uint64 // the user ID last picked
	// pending are uploads in progress: chunk commands not sent yet, and
	// the blob that will name them.
	pending []*pendingUpload
	uploads byte
	// batches, when set, draws the AppendBatch commands mixed in.
	batches *rand.Rand
}

type pendingUpload struct {
	chunks []*commandpb.Command
	blob   *commandpb.Blob
	sent   int
}

// chunkCommand advances the chunked uploads: opens one, sends a chunk
// (sometimes twice, sometimes out of order), or names the upload in a
// Deliver or Append, sometimes before every chunk is there.
func (g *gen) chunkCommand() *commandpb.Command {
	if len(g.pending) == 0 || g.r.IntN(4) == 0 {
		g.uploads++
		cmds, b := chunked(blob(fmt.Sprint("big", g.r.IntN(10))), g.uploads, 2+g.r.IntN(3))
		g.pending = append(g.pending, &pendingUpload{chunks: cmds, blob: b})
	}
	i := g.r.IntN(len(g.pending))
	p := g.pending[i]
	switch {
	case p.sent < len(p.chunks) && g.r.IntN(6) != 0:
		c := p.chunks[p.sent]
		if p.sent+1 < len(p.chunks) && g.r.IntN(4) == 0 {
			p.chunks[p.sent], p.chunks[p.sent+1] = p.chunks[p.sent+1], p.chunks[p.sent]
		}
		if g.r.IntN(5) != 0 {
			p.sent++
		}
		switch g.r.IntN(40) {
		case 0:
			return cmd(&commandpb.BlobChunk{UploadId: []byte("short"), Data: []byte("x")})
		case 1:
			return cmd(&commandpb.BlobChunk{UploadId: c.GetBlobChunk().GetUploadId(), Seq: 1 << 30, Data: []byte("x")})
		}
		return c
	default:
		g.pending = append(g.pending[:i], g.pending[i+1:]...)
		if g.r.IntN(2) == 0 {
			var rs []*commandpb.Recipient
			for range 1 + g.r.IntN(2) {
				r := &commandpb.Recipient{Email: g.email()}
				if g.r.IntN(2) == 0 {
					r.DedupeKey = []byte(fmt.Sprint("k", g.r.IntN(20)))
				}
				rs = append(rs, r)
			}
			return deliver(p.blob, rs...)
		}
		return appendMsg(g.id(), g.mboxID(), p.blob, g.flags()...)
	}
}

// appendBatch is an import batch: mostly good messages, some with bad
// blobs or flags, dedupe keys that repeat (a resumed import), sometimes a
// missing mailbox or an empty or oversized batch.
func (g *gen) appendBatch() *commandpb.Command {
	op := &commandpb.AppendBatch{UserId: g.id(), MailboxId: g.mboxID()}
	n := 1 + g.r.IntN(5)
	switch g.r.IntN(30) {
	case 0:
		n = 0
	case 1:
		n = maxBatchItems + 1
	}
	for range n {
		it := &commandpb.AppendItem{Blob: g.blob(), Flags: g.flags(), InternalDateUnix: int64(g.r.IntN(3)) * 1_000_000_000}
		if g.r.IntN(2) == 0 {
			it.DedupeKey = []byte(fmt.Sprint("i", g.r.IntN(30)))
		}
		op.Items = append(op.Items, it)
	}
	return cmd(op)
}

func (g *gen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

func (g *gen) email() string {
	return g.pick("a", "b", "c", "d", "A", "post") + "@" + g.pick("x.test", "y.test", "X.TEST", "nowhere.test")
}

func (g *gen) mbox() string {
	return g.pick("INBOX", "inbox", "Sent", "Work", "Work/Sub", "Work/Sub/Deep", "Old", "Trash", "a//b", "Lists/go")
}

func (g *gen) id() uint64 {
	g.last = uint64(1 + g.r.IntN(4))
	if g.r.IntN(10) == 0 {
		return 0
	}
	return g.last
}

// mboxID is mostly one of the default mailboxes of user g.last (users'
// mailbox IDs are allocated six at a time), sometimes anything.
func (g *gen) mboxID() uint64 {
	if g.r.IntN(4) == 0 {
		return uint64(g.r.IntN(30))
	}
	return (g.last-1)*6 + 1 + uint64(g.r.IntN(6))
}

func (g *gen) flags() []string {
	var f []string
	for range g.r.IntN(3) {
		f = append(f, g.pick(`\Seen`, `\Deleted`, `\Flagged`, `\Recent`, "$Junk", "work", `\bogus`, `\seen`))
	}
	return f
}

func (g *gen) ranges() []*commandpb.UIDRange {
	var rs []*commandpb.UIDRange
	for range 1 + g.r.IntN(2) {
		start := uint32(g.r.IntN(6))
		rs = append(rs, &commandpb.UIDRange{Start: start, Stop: start + uint32(g.r.IntN(4)) - 1})
	}
	if g.r.IntN(4) == 0 {
		rs = nil
	}
	return rs
}

func (g *gen) blob() *commandpb.Blob {
	b := blob(fmt.Sprint(g.r.IntN(40)))
	switch g.r.IntN(50) {
	case 0:
		b.Sha256 = b.Sha256[:5]
	case 1:
		b.Zstd = []byte("not checked") // both data and zstd: refused
	}
	// About half the blobs come compressed by the proposer, as node/mail
	// sends them (decided by content, leaving the generator's stream as it
	// was); the same message may arrive both ways across commands.
	if len(b.Zstd) == 0 && b.Data[len(b.Data)-3]%2 == 0 {
		b.Zstd, b.Size, b.Data = storage.Compress(b.Data), uint64(len(b.Data)), nil
	}
	return b
}

// archiveCommand is one of the archive's operations: policies, holds,
// retention runs, vault restores and admin-wrapped commands, each sometimes
// invalid. It draws only from g.a, so the stream of the other operations
// (from g.r) is the one it was before the archive existed. Now and then it
// queues a scenario that makes the rarer successes happen: a hold, a
// delivery flagged \Deleted, its expunge into the hold vault, a restore
// from the vault, the release.
func (g *gen) archiveCommand() *commandpb.Command {
	if len(g.queue) > 0 {
		c := g.queue[0]
		g.queue = g.queue[1:]
		return c
	}
	pick := func(s ...string) string { return s[g.a.IntN(len(s))] }
	email := func() string {
		return pick("a", "b", "c", "d", "A", "post") + "@" + pick("x.test", "y.test", "X.TEST", "nowhere.test")
	}
	id := func() uint64 { return uint64(g.a.IntN(5)) }
	if g.a.IntN(10) == 0 {
		b := blob(fmt.Sprint("vault", g.a.IntN(5)))
		g.queue = append(g.queue,
			deliver(b, &commandpb.Recipient{Email: "a@x.test", Flags: []string{`\Deleted`}}),
			cmd(&commandpb.Expunge{UserId: 1, MailboxId: 1}),
			cmd(&commandpb.VaultRestore{UserId: 1}),
			cmd(&commandpb.HoldRelease{User: "a@x.test"}),
			cmd(&commandpb.RetentionSet{User: "a@x.test", Days: 30}),
			cmd(&commandpb.RetentionRun{}),
			cmd(&commandpb.RetentionSet{User: "a@x.test", Days: 0}),
			// and one refusal of each
			cmd(&commandpb.RetentionRun{Max: maxRetentionMax + 1}),
			cmd(&commandpb.RetentionSet{Domain: "x.test", User: "a@x.test", Days: 3}),
			cmd(&commandpb.HoldPlace{User: "a@x.test"}),
			cmd(&commandpb.HoldRelease{User: "a@x.test"}),
			cmd(&commandpb.VaultRestore{UserId: 1, Uid: 1}),
			cmd(&commandpb.AdminCommand{Action: "no actor"}))
		return cmd(&commandpb.HoldPlace{User: "a@x.test", Reason: "scenario"})
	}
	d, u := "", email()
	switch g.a.IntN(8) {
	case 0:
		u = ""
	case 1:
		d = "x.test"
	case 2, 3:
		d, u = pick("x.test", "y.test", "nowhere.test"), ""
	}
	switch g.a.IntN(7) {
	case 0:
		days := []uint32{0, 1, 30, 30, 400, maxRetentionDays + 1}[g.a.IntN(6)]
		return cmd(&commandpb.RetentionSet{Domain: d, User: u, Days: days})
	case 1:
		return cmd(&commandpb.HoldPlace{Domain: d, User: u, Reason: pick("", "matter 1", "matter 2"), PlacedBy: "ops"})
	case 2:
		return cmd(&commandpb.HoldRelease{Domain: d, User: u})
	case 3:
		return cmd(&commandpb.RetentionRun{Max: []uint32{0, 0, 2, maxRetentionMax + 1}[g.a.IntN(4)]})
	case 4:
		switch g.a.IntN(3) {
		case 0:
			return cmd(&commandpb.VaultRestore{UserId: id(), MailboxId: uint64(g.a.IntN(30)), Uid: uint32(1 + g.a.IntN(4))})
		case 1:
			return cmd(&commandpb.VaultRestore{UserId: id(), Uid: 1})
		}
		return cmd(&commandpb.VaultRestore{UserId: id()})
	default:
		op := &commandpb.AdminCommand{Actor: pick("local-admin", "cn=ops", ""), Action: "test", Detail: "detail"}
		switch g.a.IntN(5) {
		case 0: // an audited read: only the record
		case 1:
			op.Command = cmd(&commandpb.AdminCommand{Actor: "x", Action: "nested"})
		case 2:
			op.Command = userAdd(email(), 0)
		case 3:
			op.Command = cmd(&commandpb.UserDel{Email: email()})
		default:
			op.Command = cmd(&commandpb.AliasSet{Email: email(), Targets: []string{email()}})
		}
		return cmd(op)
	}
}

func (g *gen) command() *commandpb.Command {
	var c *commandpb.Command
	if g.batches != nil && g.batches.IntN(12) == 0 {
		// Import batches draw from their own source, so the stream of
		// the other operations stays as it was before they existed.
		main := g.r
		g.r = g.batches
		c = g.appendBatch()
		g.r = main
		c.TimeUnixNano = g.now
		return c
	}
	switch g.r.IntN(21) {
	case 0:
		c = cmd(&commandpb.DomainAdd{Name: g.pick("x.test", "y.test", "X.test", "z.test", "bad..test")})
	case 1:
		c = cmd(&commandpb.DomainDel{Name: g.pick("x.test", "y.test", "z.test")})
	case 2, 3:
		c = userAdd(g.email(), uint64(g.r.IntN(3))*2000)
	case 4:
		c = cmd(&commandpb.UserPasswd{Email: g.email(), PasswordHash: []byte(g.pick("h1", "h2"))})
	case 5:
		if g.r.IntN(3) == 0 {
			c = cmd(&commandpb.UserDel{Email: g.email()})
		} else {
			c = cmd(&commandpb.QuotaSet{Email: g.email(), QuotaBytes: uint64(g.r.IntN(3)) * 3000})
		}
	case 6:
		var t []string
		for range g.r.IntN(3) {
			t = append(t, g.email())
		}
		c = cmd(&commandpb.AliasSet{Email: g.email(), Targets: t})
	case 7:
		c = cmd(&commandpb.MailboxCreate{UserId: g.id(), Name: g.mbox(), SpecialUse: g.pick("", "", `\Junk`, `\bad`)})
	case 8:
		c = cmd(&commandpb.MailboxRename{UserId: g.id(), From: g.mbox(), To: g.mbox()})
	case 9:
		if g.r.IntN(2) == 0 {
			c = cmd(&commandpb.MailboxDelete{UserId: g.id(), Name: g.mbox()})
		} else {
			c = cmd(&commandpb.MailboxSubscribe{UserId: g.id(), Name: g.mbox(), Subscribed: g.r.IntN(2) == 0})
		}
	case 10, 11, 12:
		var rs []*commandpb.Recipient
		for range 1 + g.r.IntN(3) {
			r := &commandpb.Recipient{Email: g.email(), Flags: g.flags()}
			if g.r.IntN(2) == 0 {
				r.Mailbox = g.mbox()
			}
			if g.r.IntN(2) == 0 {
				r.DedupeKey = []byte(fmt.Sprint("k", g.r.IntN(20)))
			}
			rs = append(rs, r)
		}
		c = deliver(g.blob(), rs...)
	case 13:
		c = appendMsg(g.id(), g.mboxID(), g.blob(), g.flags()...)
	case 14:
		c = cmd(&commandpb.StoreFlags{UserId: g.id(), MailboxId: g.mboxID(), Uids: g.ranges(),
			Op: commandpb.FlagOp(g.r.IntN(4)), Flags: g.flags(), UnchangedSince: uint64(g.r.IntN(3) * g.r.IntN(10))})
	case 15:
		c = cmd(&commandpb.Copy{UserId: g.id(), MailboxId: g.mboxID(), Uids: g.ranges(), DestMailboxId: g.mboxID()})
	case 16:
		c = cmd(&commandpb.Move{UserId: g.id(), MailboxId: g.mboxID(), Uids: g.ranges(), DestMailboxId: g.mboxID()})
	case 17:
		c = cmd(&commandpb.Expunge{UserId: g.id(), MailboxId: g.mboxID(), Uids: g.ranges()})
	case 20:
		c = cmd(&commandpb.ConsistencyCheck{Id: uint64(g.r.IntN(1000))})
	case 18, 19:
		c = g.chunkCommand()
	}
	// Time mostly advances, sometimes jumps a day, sometimes goes back.
	switch g.r.IntN(20) {
	case 0:
		g.now += 24 * 3600e9
	case 1:
		c.TimeUnixNano = g.now - 3600e9
		return c
	default:
		g.now += int64(g.r.IntN(1000)) * 1e6
	}
	c.TimeUnixNano = g.now
	return c
}

// entries returns n log entries from a seeded generator, including a few
// that are not commands or are malformed.
func entries(seed uint64, n int) []*raft.Log {
	g := &gen{r: rand.New(rand.NewPCG(seed, 7)), a: rand.New(rand.NewPCG(seed, 8)), now: 1_700_000_000e9, batches: rand.New(rand.NewPCG(seed, 60))}
	logs := make([]*raft.Log, 0, n)
	renew := rand.New(rand.NewPCG(seed, 300))
	// A world to play in first.
	setup := []*commandpb.Command{domainAdd("x.test"), domainAdd("y.test"), userAdd("a@x.test", 0), userAdd("b@x.test", 0), userAdd("c@y.test", 5000)}
	for i := 1; i <= n; i++ {
		l := &raft.Log{Index: uint64(i), Term: uint64(1 + i/1000), Type: raft.LogCommand}
		switch {
		case i <= len(setup):
			setup[i-1].TimeUnixNano = g.now
			l.Data, _ = Encode(setup[i-1])
		case g.a.IntN(8) == 0:
			// An archive entry, at the last entry's time; drawn from g.a
			// only, so the other entries are the ones they always were.
			c := g.archiveCommand()
			c.TimeUnixNano = g.now
			l.Data, _ = Encode(c)
		case renew.IntN(150) == 0:
			// A UIDVALIDITY renewal, of everyone or of one user (some
			// unknown); its own source keeps the other entries as they were.
			c := cmd(&commandpb.UidValidityRenew{UserId: uint64(renew.IntN(5))})
			c.TimeUnixNano = g.now
			l.Data, _ = Encode(c)
		case g.r.IntN(200) == 0:
			l.Type = raft.LogConfiguration
			l.Data = []byte{1, 2, 3}
		case g.r.IntN(200) == 0:
			l.Data = []byte{0xff, byte(i), 0x00}
		default:
			var err error
			if l.Data, err = Encode(g.command()); err != nil {
				panic(err)
			}
		}
		logs = append(logs, l)
	}
	return logs
}

// applyInBatches applies logs through ApplyBatch in random batch sizes and
// counts the result codes.
func applyInBatches(t testing.TB, f *FSM, logs []*raft.Log, r *rand.Rand, codes map[string]int) {
	for len(logs) > 0 {
		n := min(len(logs), 1+r.IntN(64))
		for i, resp := range f.ApplyBatch(logs[:n]) {
			rsp := resp.(*Response)
			switch {
			case rsp.Err != nil && errors.Is(rsp.Err, ErrMalformed):
				if codes != nil {
					codes["malformed"]++
				}
			case rsp.Err != nil:
				t.Fatalf("index %d: %v", logs[i].Index, rsp.Err)
			case rsp.Result != nil && codes != nil:
				c := mustDecode(logs[i].Data)
				codes[fmt.Sprintf("%T %v", c.Op, rsp.Result.Code)]++
			}
		}
		logs = logs[n:]
	}
}

func mustDecode(b []byte) *commandpb.Command {
	c, err := Decode(b)
	if err != nil {
		panic(err)
	}
	return c
}

func TestDeterminism(t *testing.T) {
	n := 3000
	if testing.Short() {
		n = 800
	}
	logs := entries(42, n)
	var digests [][]byte
	var fsms []*FSM
	// checks[i][index] is fsm i's digest at each consistency check entry:
	// whatever the batching, every replica must see the same state there.
	checks := make([]map[uint64]string, 3)
	for i := 0; i < 3; i++ {
		db := openDB(t, nil)
		checks[i] = map[uint64]string{}
		f, err := New(db, Options{Logger: quiet, OnFatal: func(err error) { t.Errorf("fatal: %v", err) },
			OnCheck: func(index uint64, _ *commandpb.ConsistencyCheck) {
				if got, _, _ := db.Applied(); got != index {
					t.Errorf("fsm %d: check at index %d sees applied %d", i, index, got)
				}
				d, err := db.Digest()
				if err != nil {
					t.Error(err)
				}
				checks[i][index] = fmt.Sprintf("%x", d)
			}})
		if err != nil {
			t.Fatal(err)
		}
		var codes map[string]int
		if i == 0 {
			codes = map[string]int{}
		}
		applyInBatches(t, f, logs, rand.New(rand.NewPCG(uint64(i), 99)), codes)
		if f.AppliedIndex() != uint64(n) {
			t.Fatalf("fsm %d applied %d, want %d", i, f.AppliedIndex(), n)
		}
		d, err := db.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
		fsms = append(fsms, f)
		if i == 0 {
			// Every operation ran, and every one both succeeded and failed.
			for field := range handlers {
				name := opOneof.Fields().ByNumber(field).Message().Name()
				if name == "ConsistencyCheck" {
					continue // cannot fail
				}
				okN, failN := 0, 0
				for k, v := range codes {
					if !bytes.Contains([]byte(k), []byte("_"+string(name)+" ")) {
						continue
					}
					if bytes.HasSuffix([]byte(k), []byte(" CODE_OK")) {
						okN += v
					} else {
						failN += v
					}
				}
				if okN == 0 || failN == 0 {
					t.Errorf("%s: %d OK, %d failed; the generator must exercise both", name, okN, failN)
				}
			}
			t.Logf("%d result kinds, %d malformed: %v", len(codes), codes["malformed"], codes)
		}
	}
	if len(checks[0]) < 10 {
		t.Fatalf("%d consistency checks applied; the generator should make more", len(checks[0]))
	}
	for i := 1; i < 3; i++ {
		if !maps.Equal(checks[0], checks[i]) {
			t.Fatalf("fsm %d's digests at the consistency checks differ from fsm 0's", i)
		}
	}
	for i := 1; i < 3; i++ {
		if !bytes.Equal(digests[0], digests[i]) {
			t.Fatalf("fsm %d digest %x, fsm 0 %x", i, digests[i], digests[0])
		}
	}

	// Snapshot → Persist → Restore into a fresh FSM.
	var buf bytes.Buffer
	snap, err := fsms[0].Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{Buffer: &buf}
	if err := snap.Persist(sink); err != nil || !sink.closed {
		t.Fatalf("persist: %v (closed %v)", err, sink.closed)
	}
	snap.Release()
	db := openDB(t, nil)
	fresh, err := New(db, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.Restore(nopCloser{bytes.NewReader(buf.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if fresh.AppliedIndex() != uint64(n) {
		t.Fatalf("restored applied index %d, want %d", fresh.AppliedIndex(), n)
	}
	if d, _ := db.Digest(); !bytes.Equal(d, digests[0]) {
		t.Fatal("restored digest differs")
	}
	// The restored FSM continues exactly like the others.
	more := entries(43, n+200)[n:]
	applyInBatches(t, fresh, more, rand.New(rand.NewPCG(5, 5)), nil)
	applyInBatches(t, fsms[1], more, rand.New(rand.NewPCG(6, 6)), nil)
	d1, _ := db.Digest()
	d2, _ := fsms[1].db.Digest()
	if !bytes.Equal(d1, d2) {
		t.Fatal("after restore, applying the same entries diverged")
	}
}

type memSink struct {
	*bytes.Buffer
	closed, cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { s.closed = true; return nil }

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func TestRestoreRefusesBackwards(t *testing.T) {
	h := newHarness(t)
	uid := h.setup("a@example.test")[0]
	var old bytes.Buffer
	if err := h.db.WriteSnapshot(&old); err != nil {
		t.Fatal(err)
	}
	h.must(OK, appendMsg(uid, h.mailbox(uid, "INBOX").Id, blob("new")))
	before := h.digest()
	err := h.f.Restore(nopCloser{bytes.NewReader(old.Bytes())})
	if !errors.Is(err, ErrBackwards) {
		t.Fatalf("restore of an older snapshot: %v, want ErrBackwards", err)
	}
	if !eqDigest(before, h.digest()) || h.f.AppliedIndex() != h.index {
		t.Fatal("refused restore changed the state")
	}
	// A corrupt stream is refused too.
	bad := bytes.Clone(old.Bytes())
	bad[len(bad)/2] ^= 1
	if err := h.f.Restore(nopCloser{bytes.NewReader(bad)}); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("corrupt restore: %v", err)
	}
}

func TestReplaySkipsApplied(t *testing.T) {
	db := openDB(t, nil)
	f, _ := New(db, Options{Logger: quiet})
	logs := entries(1, 300)
	applyInBatches(t, f, logs, rand.New(rand.NewPCG(1, 1)), nil)
	before, _ := db.Digest()
	idx, term, _ := db.Applied()
	// The same entries again, as raft replays them after a restart, to a
	// new FSM over the same database.
	f2, _ := New(db, Options{Logger: quiet})
	if f2.AppliedIndex() != 300 {
		t.Fatalf("resumed at %d", f2.AppliedIndex())
	}
	for _, r := range f2.ApplyBatch(logs[250:]) {
		if !errors.Is(r.(*Response).Err, ErrAlreadyApplied) {
			t.Fatalf("replayed entry: %v", r)
		}
	}
	after, _ := db.Digest()
	idx2, term2, _ := db.Applied()
	if !bytes.Equal(before, after) || idx != idx2 || term != term2 {
		t.Fatal("replay changed the state")
	}
}

func TestMalformedEntries(t *testing.T) {
	valid, _ := Encode(domainAdd("x.test"))
	r := rand.New(rand.NewPCG(3, 3))
	cases := map[string][]byte{
		"empty":          nil,
		"truncated":      valid[:len(valid)-3],
		"bad varint":     {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"no op":          protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 5),
		"wrong op shape": protowire.AppendVarint(protowire.AppendTag(nil, 10, protowire.VarintType), 1),
	}
	for i := 0; i < 200; i++ {
		b := make([]byte, r.IntN(40))
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		cases[fmt.Sprint("random ", i)] = b
	}
	for name, data := range cases {
		h := newHarness(t)
		resp := h.applyRaw(data)
		if _, err := Decode(data); err == nil {
			// Random bytes can be a valid command; then it applied normally
			// or is an unknown op, and either way nothing panicked.
			continue
		}
		if !errors.Is(resp.Err, ErrMalformed) {
			t.Errorf("%s: response %v, want ErrMalformed", name, resp.Err)
		}
		if h.f.AppliedIndex() != 1 || len(h.fatal) != 0 {
			t.Errorf("%s: applied %d, fatal %v; a malformed entry advances and is not fatal", name, h.f.AppliedIndex(), h.fatal)
		}
	}
}

func TestUnknownOp(t *testing.T) {
	unknown := func(skippable bool) []byte {
		b := protowire.AppendTag(nil, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, 1)
		if skippable {
			b = protowire.AppendVarint(protowire.AppendTag(b, 2, protowire.VarintType), 1)
		}
		return protowire.AppendBytes(protowire.AppendTag(b, 99, protowire.BytesType), []byte{8, 1})
	}
	h := newHarness(t)
	h.must(OK, domainAdd("x.test"))
	if r := h.applyRaw(unknown(true)); r.Err != nil || h.f.AppliedIndex() != 2 {
		t.Fatalf("skippable unknown op: %v, applied %d", r.Err, h.f.AppliedIndex())
	}
	before := h.digest()
	if r := h.applyRaw(unknown(false)); !errors.Is(r.Err, ErrUnknownOp) {
		t.Fatalf("unknown op: %v", r.Err)
	}
	if len(h.fatal) != 1 || h.f.AppliedIndex() != 2 {
		t.Fatalf("fatal %v, applied %d", h.fatal, h.f.AppliedIndex())
	}
	// Every later entry is refused and nothing changes.
	data, _ := Encode(domainAdd("y.test"))
	if r := h.applyRaw(data); !errors.Is(r.Err, ErrStopped) {
		t.Fatalf("entry after fatal: %v", r.Err)
	}
	if !eqDigest(before, h.digest()) || h.f.AppliedIndex() != 2 || len(h.fatal) != 1 {
		t.Fatal("the FSM went on after a fatal error")
	}
}

func TestBatchStopsAtUnknownOp(t *testing.T) {
	h := newHarness(t)
	good, _ := Encode(domainAdd("x.test"))
	bad := protowire.AppendBytes(protowire.AppendTag(nil, 77, protowire.BytesType), nil)
	good2, _ := Encode(domainAdd("y.test"))
	out := h.f.ApplyBatch([]*raft.Log{h.entry(good), h.entry(bad), h.entry(good2)})
	if out[0].(*Response).Err != nil || out[1].(*Response).Err == nil || out[2].(*Response).Err == nil {
		t.Fatalf("responses %v %v %v", out[0], out[1], out[2])
	}
	if h.f.AppliedIndex() != 1 {
		t.Fatalf("applied %d, want 1 (the entry before the unknown op)", h.f.AppliedIndex())
	}
}

func TestWaitApplied(t *testing.T) {
	h := newHarness(t)
	done := make(chan error, 1)
	go func() { done <- h.f.WaitApplied(context.Background(), 2) }()
	h.must(OK, domainAdd("x.test"))
	select {
	case err := <-done:
		t.Fatalf("returned at index 1: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	h.must(OK, domainAdd("y.test"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.f.WaitApplied(ctx, 10); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
	if err := h.f.WaitApplied(ctx, 2); err != nil {
		t.Fatalf("wait for an applied index: %v", err)
	}
}

func TestNonCommandEntries(t *testing.T) {
	h := newHarness(t)
	before := h.digest()
	h.index++
	out := h.f.ApplyBatch([]*raft.Log{{Index: h.index, Term: 3, Type: raft.LogConfiguration, Data: []byte("cfg")}})
	if out[0].(*Response).Err != nil || h.f.AppliedIndex() != 1 {
		t.Fatal("configuration entry not applied")
	}
	if idx, term, _ := h.db.Applied(); idx != 1 || term != 3 || !eqDigest(before, h.digest()) {
		t.Fatalf("applied %d/%d", idx, term)
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range []*commandpb.Command{domainAdd("x.test"), deliver(blob("b"), rcpt("a@x.test")),
		cmd(store(1, 2, all(), commandpb.FlagOp_FLAG_OP_ADD, `\Seen`))} {
		b, _ := Encode(c)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes applies without panicking.
		h := newHarness(t)
		h.must(OK, domainAdd("x.test"))
		h.must(OK, userAdd("a@x.test", 0))
		_ = c
		h.applyRaw(data)
	})
}

func FuzzSnapshotRestore(f *testing.F) {
	h := newHarness(f)
	h.setup("a@example.test")
	h.must(OK, deliver(blob("z"), rcpt("a@example.test")))
	var buf bytes.Buffer
	if err := h.db.WriteSnapshot(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, stream []byte) {
		h := newHarness(t)
		before := h.digest()
		if err := h.f.Restore(nopCloser{bytes.NewReader(stream)}); err != nil {
			if !eqDigest(before, h.digest()) {
				t.Fatal("failed restore changed the state")
			}
			return
		}
		sum := sha256.Sum256(stream)
		_ = sum
	})
}
