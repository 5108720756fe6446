package propose

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/consensus"
	"github.com/continuum-mail/continuum/proto/commandpb"
	"github.com/continuum-mail/continuum/raftfsm"
)

// fakeRaft is this node ("n1"); leader is who leads. applied records what
// Apply was given; resp is what the FSM answers.
type fakeRaft struct {
	leader  string
	applied [][]byte
	resp    any
}

func (f *fakeRaft) ID() string                                   { return "n1" }
func (f *fakeRaft) Leader() (string, string)                     { return f.leader, "" }
func (f *fakeRaft) IsLeader() bool                               { return f.leader == "n1" }
func (f *fakeRaft) Stamp() int64                                 { return 1_700_000_000_000_000_000 }
func (f *fakeRaft) VerifyLeader(context.Context) (uint64, error) { return 7, nil }
func (f *fakeRaft) CommitIndex() uint64                          { return 3 }
func (f *fakeRaft) Apply(_ context.Context, data []byte) (any, uint64, error) {
	f.applied = append(f.applied, data)
	return f.resp, 42, nil
}

// fakeForward answers from errs in turn, then with a result.
type fakeForward struct {
	sent      [][]byte
	errs      []error
	waitLocal []bool   // per Forward call
	known     []uint64 // per ReadIndex call
	readErrs  []error  // ReadIndex answers these in turn, then 9
}

func (f *fakeForward) Forward(_ context.Context, _ string, data []byte, waitLocal bool) (*commandpb.Result, uint64, error) {
	f.sent = append(f.sent, data)
	f.waitLocal = append(f.waitLocal, waitLocal)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, 0, err
	}
	return &commandpb.Result{UserId: 5}, 43, nil
}

func (f *fakeForward) ReadIndex(_ context.Context, _ string, known uint64) (uint64, error) {
	f.known = append(f.known, known)
	if len(f.readErrs) > 0 {
		err := f.readErrs[0]
		f.readErrs = f.readErrs[1:]
		return 0, err
	}
	return 9, nil
}

type fakeApplied struct {
	waited []uint64
	err    error
}

func (f *fakeApplied) WaitApplied(_ context.Context, idx uint64) error {
	f.waited = append(f.waited, idx)
	return f.err
}

func domainAdd() *commandpb.Command {
	return &commandpb.Command{Op: &commandpb.Command_DomainAdd{DomainAdd: &commandpb.DomainAdd{Name: "x.test"}}}
}

func setup(leader string) (*Proposer, *fakeRaft, *fakeForward, *fakeApplied) {
	r := &fakeRaft{leader: leader, resp: &raftfsm.Response{Result: &commandpb.Result{UserId: 4}}}
	fw, ap := &fakeForward{}, &fakeApplied{}
	return New(Config{Raft: r, Forward: fw, Applied: ap, Timeout: 5 * time.Second, LeaderWait: time.Second}), r, fw, ap
}

// On the leader: the entry proposed is the command's encoding stamped by
// the leader, and the FSM's result comes back.
func TestProposeOnLeaderStampsAndUnwraps(t *testing.T) {
	p, r, fw, ap := setup("n1")
	res, idx, err := p.Propose(context.Background(), domainAdd(), AppliedHere)
	if err != nil || res.GetUserId() != 4 || idx != 42 {
		t.Fatalf("Propose = %v, %d, %v", res, idx, err)
	}
	if len(fw.sent) != 0 || len(r.applied) != 1 {
		t.Fatalf("forwarded %d, applied %d; want 0 and 1", len(fw.sent), len(r.applied))
	}
	c, err := raftfsm.Decode(r.applied[0])
	if err != nil || c.TimeUnixNano != r.Stamp() || c.GetDomainAdd().GetName() != "x.test" {
		t.Fatalf("proposed entry decodes to %v, %v; want the command stamped %d", c, err, r.Stamp())
	}
	if len(ap.waited) != 1 || ap.waited[0] != 42 {
		t.Fatalf("waited for %v, want [42]", ap.waited)
	}
}

// On a follower: the leader gets the command encoded once, unstamped, and
// a Committed write does not wait for the local apply.
func TestProposeOnFollowerForwardsTheEncodingOnce(t *testing.T) {
	p, r, fw, ap := setup("n2")
	cmd := domainAdd()
	cmd.TimeUnixNano = 99 // a proposer's stamp is cleared: the leader stamps
	res, idx, err := p.Propose(context.Background(), cmd, Committed)
	if err != nil || res.GetUserId() != 5 || idx != 43 {
		t.Fatalf("Propose = %v, %d, %v", res, idx, err)
	}
	want, _ := raftfsm.Encode(domainAdd())
	if len(fw.sent) != 1 || !bytes.Equal(fw.sent[0], want) || len(r.applied) != 0 {
		t.Fatalf("sent %x (applied locally %d), want exactly %x", fw.sent, len(r.applied), want)
	}
	if len(ap.waited) != 0 {
		t.Fatalf("Committed waited for the local apply: %v", ap.waited)
	}
}

// Only a refusal that proves nothing was proposed is retried.
func TestProposeRetriesOnlyNotLeader(t *testing.T) {
	p, _, fw, _ := setup("n2")
	fw.errs = []error{consensus.ErrNotLeader, consensus.ErrNotLeader}
	if _, _, err := p.Propose(context.Background(), domainAdd(), Committed); err != nil || len(fw.sent) != 3 {
		t.Fatalf("after two not-leader refusals: %v, %d sends; want success on the third", err, len(fw.sent))
	}
	p, _, fw, _ = setup("n2")
	fw.errs = []error{consensus.ErrUnknownOutcome}
	if _, _, err := p.Propose(context.Background(), domainAdd(), Committed); !errors.Is(err, consensus.ErrUnknownOutcome) || len(fw.sent) != 1 {
		t.Fatalf("unknown outcome: %v after %d sends; want it returned after one", err, len(fw.sent))
	}
	p, _, fw, _ = setup("n2")
	fw.errs = []error{consensus.ErrNotLeader, consensus.ErrNotLeader, consensus.ErrNotLeader, consensus.ErrNotLeader, consensus.ErrNotLeader, consensus.ErrNotLeader, consensus.ErrNotLeader}
	if _, _, err := p.Propose(context.Background(), domainAdd(), Committed); !errors.Is(err, consensus.ErrNoLeader) || len(fw.sent) != maxAttempts {
		t.Fatalf("always not leader: %v after %d sends; want ErrNoLeader after %d", err, len(fw.sent), maxAttempts)
	}
}

// An ordered proposal (consensus.WithEnqueued) is never forwarded: on a
// follower it fails at once, having proposed nothing; on the leader it is
// proposed locally.
func TestOrderedProposalIsNeverForwarded(t *testing.T) {
	ctx := consensus.WithEnqueued(context.Background(), func() {})
	p, r, fw, _ := setup("n2")
	if _, _, err := p.Propose(ctx, domainAdd(), Committed); !errors.Is(err, consensus.ErrNoLeader) || len(fw.sent) != 0 || len(r.applied) != 0 {
		t.Fatalf("ordered on a follower: %v, %d forwarded, %d applied; want a refusal with nothing sent", err, len(fw.sent), len(r.applied))
	}
	p, r, fw, _ = setup("n1")
	r.resp = &raftfsm.Response{Result: &commandpb.Result{UserId: 5}}
	if res, _, err := p.Propose(ctx, domainAdd(), Committed); err != nil || res.GetUserId() != 5 || len(r.applied) != 1 || len(fw.sent) != 0 {
		t.Fatalf("ordered on the leader: %v, %v, %d applied, %d forwarded", res, err, len(r.applied), len(fw.sent))
	}
}

// A write committed but not applied here within the bound is an unknown
// outcome for the caller, not a success.
func TestProposeAppliedHereFailure(t *testing.T) {
	p, _, _, ap := setup("n1")
	ap.err = context.DeadlineExceeded
	if _, _, err := p.Propose(context.Background(), domainAdd(), AppliedHere); !errors.Is(err, consensus.ErrUnknownOutcome) {
		t.Fatalf("got %v, want ErrUnknownOutcome", err)
	}
}

// Local refuses what it must not propose, before proposing it.
func TestLocalRefuses(t *testing.T) {
	good, _ := raftfsm.Encode(domainAdd())
	p, r, _, _ := setup("n2")
	if _, _, err := p.Local(context.Background(), good); !errors.Is(err, consensus.ErrNotLeader) {
		t.Fatalf("on a follower: %v, want ErrNotLeader", err)
	}
	p, r, _, _ = setup("n1")
	for name, data := range map[string][]byte{
		"garbage":                 {0xff, 0xee},
		"stamped by the proposer": raftfsm.Stamp(good, 5),
	} {
		if _, _, err := p.Local(context.Background(), data); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: %v, want ErrRejected", name, err)
		}
	}
	if len(r.applied) != 0 {
		t.Fatalf("proposed %d refused entries", len(r.applied))
	}
	r.resp = &raftfsm.Response{Err: raftfsm.ErrMalformed}
	if _, _, err := p.Local(context.Background(), good); !errors.Is(err, ErrRejected) {
		t.Fatalf("FSM refused the entry: %v, want ErrRejected", err)
	}
}

func TestSync(t *testing.T) {
	for leader, want := range map[string]uint64{"n1": 7, "n2": 9} {
		p, _, _, ap := setup(leader)
		if err := p.Sync(context.Background()); err != nil || len(ap.waited) != 1 || ap.waited[0] != want {
			t.Fatalf("leader %s: Sync = %v, waited %v; want a wait for %d", leader, err, ap.waited, want)
		}
	}
	p, _, _, _ := setup("")
	p.cfg.LeaderWait = 50 * time.Millisecond
	if err := p.Sync(context.Background()); !errors.Is(err, consensus.ErrNoLeader) {
		t.Fatalf("no leader: %v, want ErrNoLeader", err)
	}
}

// A forward says whether the proposer waits for its own apply (the leader
// then publishes its commit index at once), and a read-index request
// carries this node's commit index.
func TestForwardSaysWhoWaits(t *testing.T) {
	p, _, fw, _ := setup("n2")
	for _, wait := range []Wait{Committed, AppliedHere} {
		if _, _, err := p.Propose(context.Background(), domainAdd(), wait); err != nil {
			t.Fatalf("Propose(%v): %v", wait, err)
		}
	}
	if got, want := fw.waitLocal, []bool{false, true}; !slices.Equal(got, want) {
		t.Fatalf("waitLocal sent = %v, want %v", got, want)
	}
	if err := p.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got, want := fw.known, []uint64{3}; !slices.Equal(got, want) {
		t.Fatalf("known commit index sent = %v, want %v", got, want)
	}
}

// A read index that fails (a new leader not answering yet, or its gRPC
// address not yet known from gossip: TestReadIndexAfterElection once got
// "no gRPC address known for node n3" right after an election) is asked
// again, up to maxAttempts; then the error comes back.
func TestReadIndexRetries(t *testing.T) {
	p, _, fw, _ := setup("n2")
	noAddr := errors.New("consensus: no leader: peer: no gRPC address known for node n2")
	fw.readErrs = []error{noAddr, noAddr}
	idx, err := p.ReadIndex(context.Background())
	if err != nil || idx != 9 || len(fw.known) != 3 {
		t.Fatalf("ReadIndex = %d, %v after %d asks; want 9 on the third", idx, err, len(fw.known))
	}
	fw.known = nil
	for range maxAttempts {
		fw.readErrs = append(fw.readErrs, noAddr)
	}
	if _, err := p.ReadIndex(context.Background()); !errors.Is(err, noAddr) || len(fw.known) != maxAttempts {
		t.Fatalf("ReadIndex = %v after %d asks; want the error after %d", err, len(fw.known), maxAttempts)
	}
}
