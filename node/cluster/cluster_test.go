package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/proto/peerpb"
)

// fakeRaft is a configuration in memory; leader says whether this node
// ("n1") leads. ops records the configuration changes made.
type fakeRaft struct {
	leader  bool
	servers []raft.Server
	ops     []string
}

func (f *fakeRaft) ID() string                              { return "n1" }
func (f *fakeRaft) IsLeader() bool                          { return f.leader }
func (f *fakeRaft) Leader() (string, string)                { return "", "" }
func (f *fakeRaft) CommitIndex() uint64                     { return 1000 }
func (f *fakeRaft) Fresh() bool                             { return false }
func (f *fakeRaft) Admit()                                  {}
func (f *fakeRaft) TransferLeadership(string, string) error { return nil }
func (f *fakeRaft) BootstrapWith([]consensus.Peer) error    { return nil }
func (f *fakeRaft) Servers() ([]raft.Server, error) {
	return slices.Clone(f.servers), nil
}

func (f *fakeRaft) AddServer(id, addr string, voter bool) error {
	if !f.leader {
		return consensus.ErrNotLeader
	}
	s := raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(addr), Suffrage: raft.Nonvoter}
	op := "nonvoter " + id
	if voter {
		s.Suffrage, op = raft.Voter, "voter "+id
	}
	f.servers = slices.DeleteFunc(f.servers, func(x raft.Server) bool { return string(x.ID) == id })
	f.servers = append(f.servers, s)
	f.ops = append(f.ops, op)
	return nil
}

func (f *fakeRaft) RemoveServer(id string) error {
	if !f.leader {
		return consensus.ErrNotLeader
	}
	f.servers = slices.DeleteFunc(f.servers, func(x raft.Server) bool { return string(x.ID) == id })
	f.ops = append(f.ops, "remove "+id)
	return nil
}

type fakeGossip map[string]membership.Member

func (g fakeGossip) Join([]string) (int, error) { return 1, nil }
func (g fakeGossip) Members() []membership.Member {
	var out []membership.Member
	for _, m := range g {
		out = append(out, m)
	}
	return out
}
func (g fakeGossip) Lookup(id string) (membership.Member, bool) { m, ok := g[id]; return m, ok }

// fakePeers answers Info for the IDs in up.
type fakePeers struct{ up map[string]bool }

func (p fakePeers) Join(context.Context, string, *peerpb.JoinRequest) error { return nil }
func (p fakePeers) Info(_ context.Context, id string) (*peerpb.InfoResponse, error) {
	if !p.up[id] {
		return nil, errors.New("unreachable")
	}
	return &peerpb.InfoResponse{Id: id, AppliedIndex: 1000}, nil
}
func (p fakePeers) InfoAt(context.Context, string) (*peerpb.InfoResponse, error) {
	return nil, errors.New("unreachable")
}

func voter(id string) raft.Server {
	return raft.Server{ID: raft.ServerID(id), Address: raft.ServerAddress(id + ":7000"), Suffrage: raft.Voter}
}

func newManager(r *fakeRaft, g fakeGossip, p fakePeers, deadAfter time.Duration) *Manager {
	return New(Config{ID: "n1", RaftAddr: "n1:7000", Voter: true, AutopilotDeadAfter: deadAfter,
		Raft: r, Gossip: g, Peers: p, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// TestAdmit pins the leader's answer to a join, the wiped-voter rule first.
func TestAdmit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		leader  bool
		id      string
		addr    string
		fresh   bool
		wantErr error
		wantOps []string
	}{
		{name: "new node joins as non-voter", leader: true, id: "n4", addr: "n4:7000", wantOps: []string{"nonvoter n4"}},
		{name: "wiped voter is removed and re-added as non-voter", leader: true, id: "n2", addr: "n2:7000", fresh: true, wantOps: []string{"remove n2", "nonvoter n2"}},
		{name: "fresh join on a follower is refused, nothing changes", leader: false, id: "n2", addr: "n2:7000", fresh: true, wantErr: consensus.ErrNotLeader},
		{name: "fresh join in the leader's name is refused", leader: true, id: "n1", addr: "n1:7000", fresh: true, wantErr: ErrRefused},
		{name: "a member at its address is already in", leader: true, id: "n2", addr: "n2:7000"},
		{name: "a member at another address must be removed first", leader: true, id: "n2", addr: "elsewhere:7000", wantErr: ErrConflict},
		{name: "an address another node holds is refused", leader: true, id: "n9", addr: "n3:7000", wantErr: ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRaft{leader: tc.leader, servers: []raft.Server{voter("n1"), voter("n2"), voter("n3")}}
			err := newManager(r, fakeGossip{}, fakePeers{}, 0).Admit(tc.id, tc.addr, tc.fresh)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Admit(%s, %s, fresh=%v) = %v, want %v", tc.id, tc.addr, tc.fresh, err, tc.wantErr)
			}
			if !slices.Equal(r.ops, tc.wantOps) {
				t.Fatalf("configuration changes %q, want %q", r.ops, tc.wantOps)
			}
		})
	}
}

// TestAutopilot: a voter dead in gossip and unreachable over gRPC for
// longer than the bound is removed, once per pass, never below three
// voters, and never on gossip's word alone.
func TestAutopilot(t *testing.T) {
	long := time.Now().Add(-time.Hour)
	alive := func(id string) membership.Member {
		return membership.Member{Meta: membership.Meta{ID: id, Role: "voter"}, Alive: true, Since: long}
	}
	dead := func(id string) membership.Member {
		return membership.Member{Meta: membership.Meta{ID: id, Role: "voter"}, Since: long}
	}
	for _, tc := range []struct {
		name    string
		voters  []string
		gossip  fakeGossip
		up      map[string]bool
		after   time.Duration
		wantOps []string
	}{
		{name: "four voters, one dead: removed", voters: []string{"n1", "n2", "n3", "n4"},
			gossip: fakeGossip{"n2": alive("n2"), "n3": alive("n3"), "n4": dead("n4")}, up: map[string]bool{"n2": true, "n3": true},
			after: time.Minute, wantOps: []string{"remove n4"}},
		{name: "three voters: never below the floor", voters: []string{"n1", "n2", "n3"},
			gossip: fakeGossip{"n2": alive("n2"), "n3": dead("n3")}, up: map[string]bool{"n2": true},
			after: time.Minute},
		{name: "dead in gossip but answering gRPC: kept", voters: []string{"n1", "n2", "n3", "n4"},
			gossip: fakeGossip{"n2": alive("n2"), "n3": alive("n3"), "n4": dead("n4")}, up: map[string]bool{"n2": true, "n3": true, "n4": true},
			after: time.Minute},
		{name: "two dead of five: one removed per pass", voters: []string{"n1", "n2", "n3", "n4", "n5"},
			gossip: fakeGossip{"n2": alive("n2"), "n3": alive("n3"), "n4": dead("n4"), "n5": dead("n5")}, up: map[string]bool{"n2": true, "n3": true},
			after: time.Minute, wantOps: []string{"remove n4"}},
		{name: "healthy voters not a quorum of the smaller set: kept", voters: []string{"n1", "n2", "n3", "n4", "n5"},
			gossip: fakeGossip{"n2": dead("n2"), "n3": dead("n3"), "n4": dead("n4"), "n5": alive("n5")}, up: map[string]bool{"n5": true},
			after: time.Minute},
		{name: "off", voters: []string{"n1", "n2", "n3", "n4"},
			gossip: fakeGossip{"n2": alive("n2"), "n3": alive("n3"), "n4": dead("n4")}, up: map[string]bool{"n2": true, "n3": true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &fakeRaft{leader: true}
			for _, id := range tc.voters {
				r.servers = append(r.servers, voter(id))
			}
			m := newManager(r, tc.gossip, fakePeers{up: tc.up}, tc.after)
			servers, _ := r.Servers()
			m.autopilot(servers)
			if !slices.Equal(r.ops, tc.wantOps) {
				t.Fatalf("configuration changes %q, want %q", r.ops, tc.wantOps)
			}
		})
	}
}

// TestPromote: a caught-up non-voter whose role is "voter" is promoted; a
// lagging one, one whose role is not "voter", and one not alive are not.
func TestPromote(t *testing.T) {
	r := &fakeRaft{leader: true, servers: []raft.Server{voter("n1"),
		{ID: "n2", Address: "n2:7000", Suffrage: raft.Nonvoter},
		{ID: "n3", Address: "n3:7000", Suffrage: raft.Nonvoter},
		{ID: "n4", Address: "n4:7000", Suffrage: raft.Nonvoter},
		{ID: "n5", Address: "n5:7000", Suffrage: raft.Nonvoter}}}
	g := fakeGossip{
		"n2": {Meta: membership.Meta{ID: "n2", Role: "voter"}, Alive: true},
		"n3": {Meta: membership.Meta{ID: "n3", Role: "nonvoter"}, Alive: true},
		"n4": {Meta: membership.Meta{ID: "n4", Role: "voter"}},
		"n5": {Meta: membership.Meta{ID: "n5", Role: "voter"}, Alive: true},
	}
	m := newManager(r, g, fakePeers{up: map[string]bool{"n2": true, "n3": true, "n4": true}}, 0)
	servers, _ := r.Servers()
	m.promote(servers)
	if want := []string{"voter n2"}; !slices.Equal(r.ops, want) {
		t.Fatalf("configuration changes %q, want %q (n5 does not answer: not known to be caught up)", r.ops, want)
	}
}
