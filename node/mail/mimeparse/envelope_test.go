package mimeparse

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/continuum-mail/continuum/proto/storagepb"
)

// TestEnvelopeAddresses: issue #21's ENVELOPE cases, as imaptest's
// fetch-envelope checks them: group syntax kept (RFC 9051 §7.5.2 start and
// end markers), an empty group is a start and an end, not a fake address,
// a source route goes to the adl, and comments inside an addr-spec are not
// part of the mailbox or host.
func TestEnvelopeAddresses(t *testing.T) {
	type A = storagepb.Address
	for _, tc := range []struct {
		name, to string
		want     []*A
	}{
		{"group", "group: a@b, c@d;", []*A{{Mailbox: "group", Group: true}, {Mailbox: "a", Host: "b"}, {Mailbox: "c", Host: "d"}, {Group: true}}},
		{"empty group", "undisclosed-recipients:;", []*A{{Mailbox: "undisclosed-recipients", Group: true}, {Group: true}}},
		{"groups and addresses", `x@y, "The Team": "Al" <al@ex.org>;, z@w`, []*A{{Mailbox: "x", Host: "y"}, {Mailbox: "The Team", Group: true}, {Name: "Al", Mailbox: "al", Host: "ex.org"}, {Group: true}, {Mailbox: "z", Host: "w"}}},
		{"group without ;", "g: a@b", []*A{{Mailbox: "g", Group: true}, {Mailbox: "a", Host: "b"}, {Group: true}}},
		{"source route", "<@route:user@domain>", []*A{{Mailbox: "user", Host: "domain", Route: "@route"}}},
		{"source route two hops", "Name <@r1,@r2:user@domain>", []*A{{Name: "Name", Mailbox: "user", Host: "domain", Route: "@r1,@r2"}}},
		{"comments in addr-spec", "<user-from (comment)@ (comment) domain.org>", []*A{{Mailbox: "user-from", Host: "domain.org"}}},
		{"plain list unchanged", `Bob <bob@example.org>, carol@example.net`, []*A{{Name: "Bob", Mailbox: "bob", Host: "example.org"}, {Mailbox: "carol", Host: "example.net"}}},
		{"colon in quoted name is no group", `"a:b" <x@y>`, []*A{{Name: "a:b", Mailbox: "x", Host: "y"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := "From: f@example.com\r\nTo: " + tc.to + "\r\nSubject: s\r\n\r\nbody\r\n"
			m, err := Parse([]byte(msg), DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			got := m.Envelope.To
			if len(got) != len(tc.want) {
				t.Fatalf("To = %v, want %v", got, tc.want)
			}
			for i := range got {
				if !proto.Equal(got[i], tc.want[i]) {
					t.Errorf("To[%d] = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}
