package imapd

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/raftfsm"
	"github.com/continuum-mail/continuum/storage"
)

// nameSeeds are mailbox names clients send or attackers try: the seeds of
// both fuzz tests below.
var nameSeeds = []string{"INBOX", "inbox/Sub", "Archive/2024", "../bob", "Other Users/bob", "a//b", "a/./b",
	"*", "%", "a\x00b", "Entw&APw-rfe", "Entwürfe", "INBOX.", "/", "x/", strings.Repeat("a", 1025),
	strings.Repeat("a", 1024), "iNbOx/Drafts", "INBOXES", "ÄRGER", "ärger", "İNBOX", "a\tb", "a\x7fb", "a\u0085b",
	"\xff\xfe", "~bob", "#news/x", "a/" + strings.Repeat("b/", 40) + "c", "Sent Items", "."}

// FuzzMailboxName holds normalizeName (applied to every mailbox name after
// go-imap has decoded its modified UTF-7, RFC 3501 §5.1.3) to its
// contract: a name it accepts has no NUL, CR, LF or wildcard, no empty,
// "." or ".." level (no path tricks), an upper-case INBOX, and normalising
// it again changes nothing.
func FuzzMailboxName(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := normalizeName(s)
		if !ok {
			return
		}
		if n == "" || strings.ContainsAny(n, "\x00\r\n*%") || len(n) > 1024 {
			t.Fatalf("normalizeName(%q) = %q: forbidden content", s, n)
		}
		for _, p := range strings.Split(n, "/") {
			if p == "" || p == "." || p == ".." {
				t.Fatalf("normalizeName(%q) = %q: level %q", s, n, p)
			}
		}
		first := strings.SplitN(n, "/", 2)[0]
		if strings.EqualFold(first, "INBOX") && first != "INBOX" {
			t.Fatalf("normalizeName(%q) = %q: INBOX not canonical", s, n)
		}
		if again, ok := normalizeName(n); !ok || again != n {
			t.Fatalf("normalizeName not idempotent: %q → %q → %q (%v)", s, n, again, ok)
		}
	})
}

// FuzzNameAgreesWithFSM pins imapd's mailbox names to the state machine's,
// which are the authority: a name normalizeName refuses, the FSM refuses
// as INVALID when a client CREATEs it, and a name it accepts, the FSM
// stores under the very form imapd will look it up by. (This test may
// reach raftfsm and storage: the layering rules hold for non-test code.)
func FuzzNameAgreesWithFSM(f *testing.F) {
	for _, s := range nameSeeds {
		f.Add(s)
	}
	db, err := storage.Open("db", storage.Options{FS: vfs.NewMem(), NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	index := uint64(0)
	apply := func(t testing.TB, c *commandpb.Command) *commandpb.Result {
		b := db.NewBatch()
		defer b.Close()
		index++
		res, _, err := raftfsm.ApplyCommand(b, index, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		return res
	}
	apply(f, &commandpb.Command{Op: &commandpb.Command_DomainAdd{DomainAdd: &commandpb.DomainAdd{Name: "example.test"}}})
	res := apply(f, &commandpb.Command{Op: &commandpb.Command_UserAdd{UserAdd: &commandpb.UserAdd{Email: "alice@example.test", PasswordHash: []byte("$argon2id$x")}}})
	user := res.GetUserId()
	if res.GetCode() != commandpb.Code_CODE_OK || user == 0 {
		f.Fatalf("user add: %v", res)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := normalizeName(s)
		res := apply(t, &commandpb.Command{Op: &commandpb.Command_MailboxCreate{MailboxCreate: &commandpb.MailboxCreate{UserId: user, Name: s}}})
		code := res.GetCode()
		if !ok {
			if code != commandpb.Code_CODE_INVALID {
				t.Fatalf("imapd refuses %q, the FSM answers %v", s, res)
			}
			return
		}
		if code != commandpb.Code_CODE_OK && code != commandpb.Code_CODE_EXISTS {
			t.Fatalf("imapd accepts %q as %q, the FSM answers %v", s, n, res)
		}
		snap := db.Snapshot()
		defer snap.Close()
		if _, err := snap.MailboxByName(user, n); err != nil {
			t.Fatalf("imapd looks %q up as %q, the FSM did not store that name: %v", s, n, err)
		}
	})
}
