package admin_test

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// TestBadInputChangesNothing sends admin requests with invalid names and
// addresses to a follower: each gets a clear InvalidArgument (or the
// matching code) and the replicated state is byte-identical afterwards.
func TestBadInputChangesNothing(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	f := (c.WaitLeader(10*time.Second) + 1) % 3
	cl := c.Admin(f)
	ctx := c.Ctx(30 * time.Second)
	if _, err := cl.DomainAdd(ctx, &adminpb.DomainAddRequest{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.UserAdd(ctx, &adminpb.UserAddRequest{Email: "alice@example.test", Password: "long enough"}); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(10 * time.Second)
	l := c.Leader()
	lastBefore, barriersBefore := c.Nodes[l].Raft().LastIndex(), c.Nodes[l].Raft().Barriers()
	usersBefore, _ := c.Nodes[f].Mail().Users()
	domainsBefore, _ := c.Nodes[f].Mail().Domains()

	cases := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"domain with space", func() error { _, err := cl.DomainAdd(ctx, &adminpb.DomainAddRequest{Name: "bad domain"}); return err }, codes.InvalidArgument},
		{"domain empty", func() error { _, err := cl.DomainAdd(ctx, &adminpb.DomainAddRequest{Name: ""}); return err }, codes.InvalidArgument},
		{"domain label too long", func() error {
			_, err := cl.DomainAdd(ctx, &adminpb.DomainAddRequest{Name: string(bytes.Repeat([]byte("a"), 64)) + ".test"})
			return err
		}, codes.InvalidArgument},
		{"domain exists", func() error { _, err := cl.DomainAdd(ctx, &adminpb.DomainAddRequest{Name: "EXAMPLE.test"}); return err }, codes.AlreadyExists},
		{"user no at", func() error {
			_, err := cl.UserAdd(ctx, &adminpb.UserAddRequest{Email: "alice", Password: "long enough"})
			return err
		}, codes.InvalidArgument},
		{"user NUL", func() error {
			_, err := cl.UserAdd(ctx, &adminpb.UserAddRequest{Email: "al\x00ice@example.test", Password: "long enough"})
			return err
		}, codes.InvalidArgument},
		{"user short password", func() error {
			_, err := cl.UserAdd(ctx, &adminpb.UserAddRequest{Email: "bob@example.test", Password: "short"})
			return err
		}, codes.InvalidArgument},
		{"user unknown domain", func() error {
			_, err := cl.UserAdd(ctx, &adminpb.UserAddRequest{Email: "bob@elsewhere.test", Password: "long enough"})
			return err
		}, codes.NotFound},
		{"user exists (case)", func() error {
			_, err := cl.UserAdd(ctx, &adminpb.UserAddRequest{Email: "ALICE@example.test", Password: "long enough"})
			return err
		}, codes.AlreadyExists},
		{"passwd unknown user", func() error {
			_, err := cl.UserPasswd(ctx, &adminpb.UserPasswdRequest{Email: "nobody@example.test", Password: "long enough"})
			return err
		}, codes.NotFound},
		{"del bad address", func() error { _, err := cl.UserDel(ctx, &adminpb.UserDelRequest{Email: "@@"}); return err }, codes.InvalidArgument},
		{"alias bad target", func() error {
			_, err := cl.AliasSet(ctx, &adminpb.AliasSetRequest{Email: "info@example.test", Targets: []string{"not an address"}})
			return err
		}, codes.InvalidArgument},
	}
	for _, tc := range cases {
		err := tc.call()
		if got := status.Code(err); got != tc.want {
			t.Errorf("%s: code %v (%v), want %v", tc.name, got, err, tc.want)
		} else if status.Convert(err).Message() == "" {
			t.Errorf("%s: no message in the error", tc.name)
		}
	}
	c.WaitConverged(10 * time.Second)
	// Invalid input is refused before anything is proposed; the refusals
	// that need the state (exists, not found) are log entries that change
	// only the log time. So: no new entry for the first kind, and the same
	// users and domains for all.
	invalid := 0
	for _, tc := range cases {
		if tc.want == codes.InvalidArgument {
			invalid++
		}
	}
	// Barrier entries (consensus.PublishCommit, for a follower waiting on
	// its own write) carry no command: they are not proposals.
	barriers := c.Nodes[l].Raft().Barriers() - barriersBefore
	if got := c.Nodes[l].Raft().LastIndex() - lastBefore - barriers; got > uint64(len(cases)-invalid) {
		t.Errorf("%d log entries for %d requests that needed the state; invalid ones must propose nothing", got, len(cases)-invalid)
	}
	usersAfter, _ := c.Nodes[f].Mail().Users()
	domainsAfter, _ := c.Nodes[f].Mail().Domains()
	if len(usersAfter) != len(usersBefore) || len(usersAfter) != 1 || usersAfter[0].Email != "alice@example.test" ||
		!bytes.Equal(usersAfter[0].PasswordHash, usersBefore[0].PasswordHash) {
		t.Errorf("users changed: before %v, after %v", usersBefore, usersAfter)
	}
	if len(domainsAfter) != 1 || len(domainsBefore) != 1 || domainsAfter[0] != "example.test" {
		t.Errorf("domains changed: before %v, after %v", domainsBefore, domainsAfter)
	}
}

func TestPlacementWarnings(t *testing.T) {
	for _, tc := range []struct {
		voters int
		sites  map[string]int
		warn   int
	}{
		{3, map[string]int{"a": 1, "b": 1, "c": 1}, 0},
		{3, map[string]int{"a": 2, "b": 1}, 1},
		{5, map[string]int{"a": 2, "b": 2, "c": 1}, 0},
		{5, map[string]int{"a": 3, "b": 1, "c": 1}, 1},
		{1, map[string]int{"a": 1}, 0},
	} {
		if got := admin.PlacementWarnings(tc.voters, tc.sites); len(got) != tc.warn {
			t.Errorf("PlacementWarnings(%d, %v) = %q, want %d warnings", tc.voters, tc.sites, got, tc.warn)
		}
	}
}
