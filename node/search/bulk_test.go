package search_test

import (
	"crypto/sha256"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/mail/mimeparse"
	"github.com/continuum-mail/continuum/node/search"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/storage"
)

// importBatch applies one AppendBatch (continuum import) of msgs to the
// harness's INBOX.
func (h *harness) importBatch(msgs ...[]byte) {
	h.t.Helper()
	op := &commandpb.AppendBatch{UserId: h.user, MailboxId: h.inbox}
	for _, data := range msgs {
		parsed, err := mimeparse.Parse(data, mimeparse.DefaultLimits())
		if err != nil {
			h.t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		op.Items = append(op.Items, &commandpb.AppendItem{
			Blob:             &commandpb.Blob{Sha256: sum[:], Zstd: storage.Compress(data), Size: uint64(len(data)), Parsed: parsed},
			InternalDateUnix: 1_600_000_000,
		})
	}
	res := h.applyBatch(&commandpb.Command{Op: &commandpb.Command_AppendBatch{AppendBatch: op}})
	for _, d := range res[0].Deliveries {
		if d.Code != commandpb.Code_CODE_OK {
			h.t.Fatalf("import: %v", res[0])
		}
	}
}

// mailboxOf returns the ID of a user's mailbox.
func (h *harness) mailboxOf(user uint64, name string) uint64 {
	h.t.Helper()
	snap := h.db.Snapshot()
	defer snap.Close()
	box, err := snap.MailboxByName(user, name)
	if err != nil {
		h.t.Fatal(err)
	}
	return box.Id
}

// watermark is a mailbox's indexed watermark (0 when not indexed).
func (h *harness) watermark(mbox uint64) uint32 {
	h.t.Helper()
	v := h.index.View()
	defer v.Close()
	hw, _, _, err := v.Indexed(mbox)
	if err != nil {
		h.t.Fatal(err)
	}
	return hw
}

// TestBulkImportDefersIndexing: what an import writes (AppendBatch) is not
// indexed while the import goes on (Options.BulkQuiet), searches stay
// exact meanwhile, an ordinary delivery is indexed as before, and
// WaitCaughtUp does not wait for the quiet period.
func TestBulkImportDefersIndexing(t *testing.T) {
	h := newHarnessOpts(t, t.TempDir(), search.Options{Lag: -1, BulkQuiet: time.Hour})
	h.setup()
	r := rand.New(rand.NewPCG(7, 7))
	h.deliver(randomMessage(r, 60, 0))
	h.waitIndexed()
	if hw := h.watermark(h.inbox); hw != 1 {
		t.Fatalf("after a delivery: watermark %d, want 1", hw)
	}
	var batch [][]byte
	for range 40 {
		batch = append(batch, randomMessage(r, 60, 0))
	}
	h.importBatch(batch[:20]...)
	h.importBatch(batch[20:]...)
	imported := h.fsm.AppliedIndex()

	// A second user's delivery after the import: once it is indexed, the
	// indexer has run a pass that saw the import's events.
	res := h.applyBatch(&commandpb.Command{Op: &commandpb.Command_UserAdd{UserAdd: &commandpb.UserAdd{Email: "b@example.test", PasswordHash: []byte("$argon2id$x")}}})
	other := h.mailboxOf(res[0].UserId, "INBOX")
	cmd := deliverCmd(t, randomMessage(r, 60, 0))
	cmd.GetDeliver().Recipients[0].Email = "b@example.test"
	h.applyBatch(cmd)
	deadline := time.Now().Add(time.Minute)
	for h.watermark(other) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the other user's delivery was not indexed within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if hw := h.watermark(h.inbox); hw != 1 {
		t.Fatalf("during the import: INBOX watermark %d, want 1 (deferred)", hw)
	}
	if a := h.index.Applied(); a >= imported {
		t.Fatalf("index records applied %d while the import's %d is deferred", a, imported)
	}
	// Searches stay exact: everything above the watermark is scanned.
	for range 30 {
		qs := []query{randomQuery(r)}
		if got, want := h.indexed(qs), h.scan(qs); !slices.Equal(got, want) {
			t.Fatalf("%v while deferred: index path %v, scan %v", qs, got, want)
		}
	}
	h.waitIndexed()
	if hw := h.watermark(h.inbox); hw != 41 {
		t.Fatalf("after WaitCaughtUp: INBOX watermark %d, want 41", hw)
	}
}

// TestBulkImportIndexedOnceQuiet: without anyone waiting, the import's
// mailbox is indexed once no import has written for BulkQuiet.
func TestBulkImportIndexedOnceQuiet(t *testing.T) {
	h := newHarnessOpts(t, t.TempDir(), search.Options{Lag: -1, BulkQuiet: 200 * time.Millisecond})
	h.setup()
	r := rand.New(rand.NewPCG(8, 8))
	var batch [][]byte
	for range 10 {
		batch = append(batch, randomMessage(r, 60, 0))
	}
	h.importBatch(batch...)
	deadline := time.Now().Add(time.Minute)
	for h.watermark(h.inbox) != 10 {
		if time.Now().After(deadline) {
			t.Fatalf("import not indexed a minute after it ended: watermark %d, want 10", h.watermark(h.inbox))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBulkImportMaxDefer: an import that never pauses is still indexed, at
// least every BulkMaxDefer.
func TestBulkImportMaxDefer(t *testing.T) {
	h := newHarnessOpts(t, t.TempDir(), search.Options{Lag: -1, BulkQuiet: time.Hour, BulkMaxDefer: 300 * time.Millisecond})
	h.setup()
	r := rand.New(rand.NewPCG(9, 9))
	deadline := time.Now().Add(time.Minute)
	var uids uint32
	for h.watermark(h.inbox) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a continuous import of %d messages was not indexed within a minute", uids)
		}
		h.importBatch(randomMessage(r, 60, 0), randomMessage(r, 60, 0))
		uids += 2
		time.Sleep(20 * time.Millisecond)
	}
}
