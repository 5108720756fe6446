package search_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"mime"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/node/search"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

var quiet = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// harness is a state database fed by a raftfsm.FSM (no Raft), with the
// index following its applies as the node wires it.
type harness struct {
	t     testing.TB
	dir   string
	db    *storage.DB
	fsm   *raftfsm.FSM
	index *search.Index
	next  uint64
	now   int64
	user  uint64
	inbox uint64
	docs  map[string]*search.Doc // the oracle's extractions, by blob
	opts  search.Options
}

func newHarness(t testing.TB, dir string) *harness {
	t.Helper()
	return newHarnessOpts(t, dir, search.Options{})
}

// newHarnessOpts is newHarness with the index's options (Logger is set).
func newHarnessOpts(t testing.TB, dir string, opts search.Options) *harness {
	t.Helper()
	opts.Logger = quiet
	h := &harness{t: t, dir: dir, now: 1_700_000_000e9, opts: opts}
	db, err := storage.Open(filepath.Join(dir, "state"), storage.Options{NoSync: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	h.db = db
	h.openIndex()
	h.fsm, err = raftfsm.New(db, raftfsm.Options{Logger: quiet, OnApply: func(index uint64, events []raftfsm.Event) {
		var ev []search.Event
		for _, e := range events {
			if e.Kind != raftfsm.FlagsChanged && e.MailboxID != 0 {
				ev = append(ev, search.Event{UserID: e.UserID, MailboxID: e.MailboxID, Bulk: e.Bulk})
			}
		}
		if h.index != nil {
			h.index.Notify(index, ev)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	h.next = h.fsm.AppliedIndex()
	t.Cleanup(func() {
		if h.index != nil {
			h.index.Close()
		}
		h.db.Close()
	})
	return h
}

func (h *harness) openIndex() {
	x, err := search.Open(filepath.Join(h.dir, "index"), h.db, h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	h.index = x
}

func (h *harness) closeIndex() {
	h.index.Close()
	h.index = nil
}

func (h *harness) applyBatch(cmds ...*commandpb.Command) []*commandpb.Result {
	h.t.Helper()
	logs := make([]*raft.Log, len(cmds))
	for i, c := range cmds {
		h.now += 1000
		c.TimeUnixNano = h.now
		data, err := raftfsm.Encode(c)
		if err != nil {
			h.t.Fatal(err)
		}
		h.next++
		logs[i] = &raft.Log{Index: h.next, Term: 1, Type: raft.LogCommand, Data: data}
	}
	out := make([]*commandpb.Result, len(cmds))
	for i, r := range h.fsm.ApplyBatch(logs) {
		rsp := r.(*raftfsm.Response)
		if rsp.Err != nil {
			h.t.Fatalf("apply: %v", rsp.Err)
		}
		out[i] = rsp.Result
	}
	return out
}

func (h *harness) setup() {
	h.applyBatch(&commandpb.Command{Op: &commandpb.Command_DomainAdd{DomainAdd: &commandpb.DomainAdd{Name: "example.test"}}})
	res := h.applyBatch(&commandpb.Command{Op: &commandpb.Command_UserAdd{UserAdd: &commandpb.UserAdd{Email: "a@example.test", PasswordHash: []byte("$argon2id$x")}}})
	h.user = res[0].UserId
	snap := h.db.Snapshot()
	box, err := snap.MailboxByName(h.user, "INBOX")
	snap.Close()
	if err != nil {
		h.t.Fatal(err)
	}
	h.inbox = box.Id
}

func deliverCmd(t testing.TB, data []byte) *commandpb.Command {
	parsed, err := mimeparse.Parse(data, mimeparse.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return &commandpb.Command{Op: &commandpb.Command_Deliver{Deliver: &commandpb.Deliver{
		Blob:             &commandpb.Blob{Sha256: sum[:], Zstd: storage.Compress(data), Size: uint64(len(data)), Parsed: parsed},
		Recipients:       []*commandpb.Recipient{{Email: "a@example.test"}},
		InternalDateUnix: 1_700_000_000,
	}}}
}

func (h *harness) deliver(msgs ...[]byte) {
	cmds := make([]*commandpb.Command, len(msgs))
	for i, m := range msgs {
		cmds[i] = deliverCmd(h.t, m)
	}
	for _, r := range h.applyBatch(cmds...) {
		if r.Deliveries[0].Code != commandpb.Code_CODE_OK {
			h.t.Fatalf("deliver: %v", r)
		}
	}
}

func (h *harness) expunge(uids ...uint32) {
	var rs []*commandpb.UIDRange
	for _, u := range uids {
		rs = append(rs, &commandpb.UIDRange{Start: u, Stop: u})
	}
	h.applyBatch(&commandpb.Command{Op: &commandpb.Command_StoreFlags{StoreFlags: &commandpb.StoreFlags{
		UserId: h.user, MailboxId: h.inbox, Uids: rs, Op: commandpb.FlagOp_FLAG_OP_ADD, Flags: []string{`\Deleted`}}}})
	h.applyBatch(&commandpb.Command{Op: &commandpb.Command_Expunge{Expunge: &commandpb.Expunge{UserId: h.user, MailboxId: h.inbox}}})
}

func (h *harness) waitIndexed() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	if err := h.index.WaitCaughtUp(ctx, h.fsm.AppliedIndex()); err != nil {
		h.t.Fatalf("index did not catch up: %v", err)
	}
}

// uids lists the mailbox's messages.
func (h *harness) messages() []*storagepb.Message {
	var out []*storagepb.Message
	snap := h.db.Snapshot()
	defer snap.Close()
	if err := snap.Messages(h.inbox, 1, 0, func(m *storagepb.Message) error { out = append(out, m); return nil }); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// query is one text criterion.
type query struct {
	kind  string // text, body, header
	field string
	value string
}

func (q query) String() string { return fmt.Sprintf("%s %s %q", q.kind, q.field, q.value) }

func matches(d *search.Doc, qs []query) bool {
	for _, q := range qs {
		v := search.Fold(q.value)
		switch q.kind {
		case "text":
			if !d.MatchText(v) {
				return false
			}
		case "body":
			if !d.MatchBody(v) {
				return false
			}
		default:
			if !d.MatchHeader(q.field, v) {
				return false
			}
		}
	}
	return true
}

// scan is the oracle: every message's text extracted from the stored bytes.
func (h *harness) scan(qs []query) []uint32 {
	var out []uint32
	snap := h.db.Snapshot()
	defer snap.Close()
	if h.docs == nil {
		h.docs = map[string]*search.Doc{}
	}
	for _, m := range h.messages() {
		d := h.docs[string(m.Blob)]
		if d == nil {
			data, err := snap.Blob(m.Blob)
			if err != nil {
				h.t.Fatal(err)
			}
			parsed, _ := snap.Parsed(m.Blob)
			d = search.Extract(data, parsed)
			h.docs[string(m.Blob)] = d
		}
		if matches(d, qs) {
			out = append(out, m.Uid)
		}
	}
	return out
}

// indexed is the indexed path as node/mail.TextSearch runs it: candidates
// below the watermark, every message above it, each verified on its text.
func (h *harness) indexed(qs []query) []uint32 {
	v := h.index.View()
	defer v.Close()
	msgs := h.messages()
	hw, _, ok, err := v.Indexed(h.inbox)
	if err != nil {
		h.t.Fatal(err)
	}
	var folded []string
	for _, q := range qs {
		if f := search.Fold(q.value); search.Usable(f) {
			folded = append(folded, f)
		}
	}
	check := map[uint32]bool{}
	if ok && len(folded) > 0 {
		cands, err := v.Candidates(h.inbox, hw, folded)
		if err != nil {
			h.t.Fatal(err)
		}
		if !slices.IsSorted(cands) {
			h.t.Fatalf("candidates not sorted: %v", cands)
		}
		for _, u := range cands {
			check[u] = true
		}
		for _, m := range msgs {
			if m.Uid > hw {
				check[m.Uid] = true
			}
		}
	} else {
		for _, m := range msgs {
			check[m.Uid] = true
		}
	}
	snap := h.db.Snapshot()
	defer snap.Close()
	var out []uint32
	for _, m := range msgs {
		if !check[m.Uid] {
			continue
		}
		d, err := v.Doc(h.inbox, m.Uid)
		if err != nil {
			data, berr := snap.Blob(m.Blob)
			if berr != nil {
				h.t.Fatal(berr)
			}
			parsed, _ := snap.Parsed(m.Blob)
			d = search.Extract(data, parsed)
		}
		if matches(d, qs) {
			out = append(out, m.Uid)
		}
	}
	return out
}

// matched is the path archive search and IMAP SEARCH take for TEXT
// criteria (node/mail.TextSearch.Matching): sure UIDs unverified, maybe
// UIDs and those above the watermark verified. qs must all be "text".
func (h *harness) matched(qs []query) []uint32 {
	svc := mail.New(h.db, nil, nil, mail.Options{Logger: quiet})
	svc.SetIndex(h.index)
	snap := h.db.Snapshot()
	box, err := snap.Mailbox(h.user, h.inbox)
	snap.Close()
	if err != nil {
		h.t.Fatal(err)
	}
	ts, err := svc.TextSearch(h.inbox, box.UidValidity, false)
	if err != nil {
		h.t.Fatal(err)
	}
	defer ts.Close()
	var folded []string
	for _, q := range qs {
		folded = append(folded, search.Fold(q.value))
	}
	// The index view is open: the state snapshot is taken after it.
	snap = h.db.Snapshot()
	defer snap.Close()
	sure, maybe, hw, indexed, err := ts.Matching(folded)
	if err != nil {
		h.t.Fatal(err)
	}
	if !slices.IsSorted(sure) || !slices.IsSorted(maybe) {
		h.t.Fatalf("Matching: not sorted: %v %v", sure, maybe)
	}
	if !indexed {
		hw = 0
	}
	verify := map[uint32]bool{}
	for _, u := range sure {
		verify[u] = false
	}
	for _, u := range maybe {
		if _, dup := verify[u]; dup {
			h.t.Fatalf("Matching: %d both sure and maybe", u)
		}
		verify[u] = true
	}
	var out []uint32
	err = snap.Messages(h.inbox, 1, 0, func(m *storagepb.Message) error {
		v, listed := verify[m.Uid]
		if m.Uid > hw {
			listed, v = true, true
		}
		if !listed {
			return nil
		}
		if v {
			d, err := ts.Doc(snap, m)
			if err != nil {
				return err
			}
			if !matches(d, qs) {
				return nil
			}
		}
		out = append(out, m.Uid)
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return out
}

// Corpus: realistic messages with words from several scripts, encoded
// headers, quoted-printable, base64 and HTML bodies, and attachments of
// random bytes.

var vocab = strings.Fields(`meeting budget quarterly report invoice Straße STRASSE naïve café résumé
	ÉCOLE İstanbul ΣΊΣΥΦΟΣ σίσυφος 日本語 テスト Привет мир déjà vu password passport
	alpha beta gamma delta the and of to in archive continuum replica leader follower
	ﬁnance ｆｕｌｌｗｉｄｔｈ naïveté Ångström angstrom übermäßig ÜBERMÄSSIG ǅemal`)

func words(r *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = vocab[r.IntN(len(vocab))]
	}
	return strings.Join(w, " ")
}

func wrap(s string) string {
	var sb strings.Builder
	for len(s) > 70 {
		i := strings.LastIndexByte(s[:70], ' ')
		if i <= 0 {
			i = 70
		}
		sb.WriteString(s[:i] + "\r\n")
		s = strings.TrimLeft(s[i:], " ")
	}
	sb.WriteString(s + "\r\n")
	return sb.String()
}

// randomMessage returns message n: text (in one of several encodings),
// maybe an HTML alternative, maybe an attachment of attach random bytes.
func randomMessage(r *rand.Rand, n int, attach int) []byte {
	var sb strings.Builder
	subject := words(r, 2+r.IntN(5))
	switch r.IntN(3) {
	case 0:
		subject = mime.BEncoding.Encode("utf-8", subject)
	case 1:
		subject = mime.QEncoding.Encode("utf-8", subject)
	}
	fmt.Fprintf(&sb, "Message-ID: <%d.%d@corpus.test>\r\n", n, r.Uint64())
	fmt.Fprintf(&sb, "From: %s <sender%d@example.org>\r\n", mime.QEncoding.Encode("utf-8", words(r, 2)), r.IntN(50))
	fmt.Fprintf(&sb, "To: rcpt%d@example.test\r\n", r.IntN(20))
	if r.IntN(2) == 0 {
		fmt.Fprintf(&sb, "Cc: %s <cc%d@example.net>\r\n", words(r, 1), r.IntN(20))
	}
	if r.IntN(8) == 0 { // a token longer than search.MaxToken
		fmt.Fprintf(&sb, "X-Tag: %s\r\n", strings.ReplaceAll(words(r, 25), " ", "-"))
	} else {
		fmt.Fprintf(&sb, "X-Tag: %s\r\n", words(r, 1))
	}
	fmt.Fprintf(&sb, "Subject: %s\r\nDate: Mon, 30 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\n", subject)
	body := words(r, 20+r.IntN(200))
	if r.IntN(8) == 0 {
		body += " " + strings.ReplaceAll(words(r, 25), " ", "_") // long, if not wrapped
	}
	var text string
	switch r.IntN(3) {
	case 0:
		text = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + wrap(body)
	case 1:
		text = "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(body)
	default:
		text = "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n<html><style>p{x:password}</style><body><p>" +
			wrap(strings.ReplaceAll(body, " ", " <b>")) + "</p></body></html>\r\n"
	}
	if attach == 0 {
		sb.WriteString(text)
		return []byte(sb.String())
	}
	sb.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n")
	sb.WriteString(text)
	raw := make([]byte, attach)
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	fmt.Fprintf(&sb, "--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"%s.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s--b1--\r\n",
		vocab[r.IntN(len(vocab))], b64raw(raw))
	return []byte(sb.String())
}

func b64(s string) string { return b64raw([]byte(s)) }

func b64raw(b []byte) string {
	e := base64.StdEncoding.EncodeToString(b)
	var sb strings.Builder
	for len(e) > 76 {
		sb.WriteString(e[:76] + "\r\n")
		e = e[76:]
	}
	sb.WriteString(e + "\r\n")
	return sb.String()
}

// randomQuery picks a criterion that often hits: a piece of a word from
// the vocabulary or of a message's text, in random case.
func randomQuery(r *rand.Rand) query {
	w := []rune(vocab[r.IntN(len(vocab))])
	if r.IntN(3) == 0 {
		w = []rune(words(r, 2))
	}
	i := r.IntN(len(w))
	j := i + 1 + r.IntN(len(w)-i)
	v := string(w[i:j])
	switch r.IntN(3) {
	case 0:
		v = strings.ToUpper(v)
	case 1:
		v = strings.ToLower(v)
	}
	switch r.IntN(8) {
	case 0, 1, 2:
		return query{kind: "text", value: v}
	case 3, 4:
		return query{kind: "body", value: v}
	case 5:
		return query{kind: "header", field: "Subject", value: v}
	case 6:
		return query{kind: "header", field: []string{"From", "To", "Cc", "Bcc"}[r.IntN(4)], value: v}
	default:
		return query{kind: "header", field: "x-tag", value: v}
	}
}
