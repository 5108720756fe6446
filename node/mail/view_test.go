package mail

import (
	"bytes"
	"errors"
	"testing"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// TestView: what a frontend reads through a View, and that every missing
// row is this package's ErrNotFound (the frontends cannot name storage's).
func TestView(t *testing.T) {
	hs := newHeaderStore(t, 3, false)
	u, err := hs.svc.UserByEmail("alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	v := hs.svc.View()
	defer v.Close()

	inbox, err := v.Mailbox(u.Id, "INBOX")
	if err != nil || inbox.Messages != 3 {
		t.Fatalf("Mailbox(INBOX) = %v, %v; want 3 messages", inbox, err)
	}
	if boxes, err := v.Mailboxes(u.Id); err != nil || len(boxes) == 0 {
		t.Fatalf("Mailboxes = %v, %v", boxes, err)
	}
	var uids []uint32
	err = v.Messages(inbox.Id, 2, 0, func(m *storagepb.Message) error { uids = append(uids, m.Uid); return nil })
	if err != nil || len(uids) != 2 || uids[0] != 2 || uids[1] != 3 {
		t.Fatalf("Messages from UID 2 = %v, %v; want [2 3]", uids, err)
	}
	stop := errors.New("stop")
	if err := v.Messages(inbox.Id, 1, 0, func(*storagepb.Message) error { return stop }); err != stop {
		t.Errorf("a callback's error came back as %v, want it unchanged", err)
	}
	m, err := v.Message(inbox.Id, 1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := v.Blob(m.Blob)
	if err != nil || !bytes.HasPrefix(data, []byte(hs.heads[0])) {
		t.Fatalf("Blob: %d bytes, %v; want message 0", len(data), err)
	}
	if p, err := v.Parsed(m.Blob); err != nil || p.GetRoot().GetHeaderEnd() != uint64(len(hs.heads[0])) {
		t.Errorf("Parsed: header end %d, %v; want %d", p.GetRoot().GetHeaderEnd(), err, len(hs.heads[0]))
	}
	if h, err := v.HeaderBlock(m.Blob); err != nil || string(h) != hs.heads[0] {
		t.Errorf("HeaderBlock = %q, %v", h, err)
	}
	var changes int
	err = v.Changes(inbox.Id, 0, func(_ uint64, e *storagepb.ModSeqEntry) error { changes++; return nil })
	if err != nil || changes != 3 {
		t.Errorf("Changes since 0: %d, %v; want 3 arrivals", changes, err)
	}
	if used, limit, err := v.Quota(u.Id); err != nil || used != u.UsedBytes || used == 0 || limit != 0 {
		t.Errorf("Quota = %d, %d, %v; want %d used, no limit", used, limit, err, u.UsedBytes)
	}

	for name, err := range map[string]error{
		"Mailbox":  second(v.Mailbox(u.Id, "Nope")),
		"Message":  second(v.Message(inbox.Id, 99)),
		"Blob":     second(v.Blob(make([]byte, 32))),
		"Parsed":   second(v.Parsed(make([]byte, 32))),
		"Quota":    third(v.Quota(999)),
		"OpenBlob": second(hs.svc.OpenBlob(make([]byte, 32))),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of a missing row: %v, want ErrNotFound", name, err)
		}
	}
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }
