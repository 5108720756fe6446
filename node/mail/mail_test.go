package mail

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/continuum-mail/continuum/raftfsm"
)

func TestCanonicalEmail(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"Alice@Example.TEST", "alice@example.test", true},
		{" bob+tag@example.test ", "bob+tag@example.test", true},
		{"o'brien@example.test", "o'brien@example.test", true},
		{"user@bücher.example", "user@xn--bcher-kva.example", true},
		{"user@example.test.", "user@example.test", true},
		{"alice", "", false},
		{"@example.test", "", false},
		{"alice@", "", false},
		{"a..b@example.test", "", false},
		{".a@example.test", "", false},
		{"a b@example.test", "", false},
		{"a\x00b@example.test", "", false},
		{"\"quoted\"@example.test", "", false},
		{strings.Repeat("a", 65) + "@example.test", "", false},
		{"a@exa mple.test", "", false},
		{"a@-example.test", "", false},
		{"a@" + strings.Repeat("b", 64) + ".test", "", false},
		{"a@ex_ample.test", "", false},
		// UTF-8 local parts: the state machine refuses them (canon.Email),
		// so no user or alias is created with one.
		{"jörg@example.test", "", false},
	} {
		got, err := CanonicalEmail(tc.in)
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("CanonicalEmail(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if !tc.ok && (err == nil || !errors.Is(err, ErrInvalid)) {
			t.Errorf("CanonicalEmail(%q) = %q, %v; want ErrInvalid", tc.in, got, err)
		}
	}
}

// TestRecipientAddress: an envelope recipient with a UTF-8 local part is
// looked up (it can reach a catch-all), not refused as invalid; what
// CanonicalEmail refuses otherwise, it refuses too.
func TestRecipientAddress(t *testing.T) {
	if got, err := recipientAddress("Jörg@Bücher.example"); err != nil || got != "jörg@xn--bcher-kva.example" {
		t.Fatalf("recipientAddress = %q, %v", got, err)
	}
	for _, in := range []string{"a..b@example.test", "\"quoted\"@example.test", "a@ex_ample.test", "alice"} {
		if _, err := recipientAddress(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("recipientAddress(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(h, []byte("$argon2id$v=19$m=19456,t=2,p=1$")) {
		t.Errorf("hash %q is not a PHC argon2id string with the chosen parameters", h)
	}
	if !CheckPassword(h, "correct horse battery") {
		t.Error("right password refused")
	}
	for _, wrong := range []string{"", "correct horse batterY", "correct horse battery "} {
		if CheckPassword(h, wrong) {
			t.Errorf("wrong password %q accepted", wrong)
		}
	}
	h2, _ := HashPassword("correct horse battery")
	if bytes.Equal(h, h2) {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, bad := range []string{"", "$argon2id$", "$argon2id$v=19$m=999999999,t=2,p=1$AAAA$AAAA", "$bcrypt$x$y$z$w"} {
		if CheckPassword([]byte(bad), "x") {
			t.Errorf("malformed hash %q accepted", bad)
		}
	}
	if _, err := HashPassword("short"); !errors.Is(err, ErrInvalid) {
		t.Errorf("short password: %v, want ErrInvalid", err)
	}
}

func TestDedupeKeyIgnoresTraceHeaders(t *testing.T) {
	body := []byte("Subject: x\r\n\r\nhi\r\n")
	a := DedupeKey("alice@example.test", "bob@remote.test", body)
	if !bytes.Equal(a, DedupeKey("alice@example.test", "bob@remote.test", append([]byte(nil), body...))) {
		t.Error("same delivery, different keys")
	}
	for name, k := range map[string][]byte{
		"recipient": DedupeKey("carol@example.test", "bob@remote.test", body),
		"sender":    DedupeKey("alice@example.test", "eve@remote.test", body),
		"body":      DedupeKey("alice@example.test", "bob@remote.test", []byte("Subject: y\r\n\r\nhi\r\n")),
		// "a"+"b@c" must not collide with "ab"+"@c".
		"boundary": DedupeKey("alice@example.tes", "tbob@remote.test", body),
	} {
		if bytes.Equal(a, k) {
			t.Errorf("changing the %s kept the key", name)
		}
	}
}

func TestFeedFansOutPerUserAndNeverBlocks(t *testing.T) {
	f := NewFeed()
	a1, a2, b := f.Subscribe(1), f.Subscribe(1), f.Subscribe(2)
	f.Publish(7, []raftfsm.Event{{UserID: 1, MailboxID: 10, UID: 1}, {UserID: 2, MailboxID: 20, UID: 5}, {UserID: 3}})
	for _, s := range []*Subscription{a1, a2} {
		if e := <-s.C; e.UserID != 1 || e.UID != 1 {
			t.Errorf("user 1 got %+v", e)
		}
	}
	if e := <-b.C; e.UserID != 2 || e.UID != 5 {
		t.Errorf("user 2 got %+v", e)
	}
	// A subscriber that does not read loses events, not the apply path.
	for i := 0; i < cap(a1.C)+10; i++ {
		f.Publish(8, []raftfsm.Event{{UserID: 2}})
	}
	if !b.Overflowed() || b.Overflowed() {
		t.Error("Overflowed should report true once after drops")
	}
	a1.Cancel()
	if _, ok := <-a1.C; ok {
		t.Error("channel open after Cancel")
	}
	if n := f.Subscribers(); n != 2 {
		t.Errorf("Subscribers = %d, want 2", n)
	}
}
