package node_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/loginguard"
	"github.com/continuum-mail/continuum/node/membership"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// TestGossipKeyRotation (issue 10, continuum cluster keys): through the
// admin API, install a new gossip key on every node, use it, remove the
// old one; use before install and bad keys are refused; gossip keeps
// working throughout (a login-throttle datagram still reaches every node),
// and a node restarted after the rotation comes back with the new keyring
// (it persists in the data directory) and rejoins the pool.
func TestGossipKeyRotation(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{})
	l := c.WaitLeader(10 * time.Second)
	ctx := c.Ctx(2 * time.Minute)
	adm := c.Admin(l)

	readKey := func(path string) (string, []byte) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.TrimSpace(string(b))
		k, err := base64.StdEncoding.DecodeString(text)
		if err != nil {
			t.Fatal(err)
		}
		return text, k
	}
	oldText, oldKey := readKey(identity.GossipKeyFile(c.TLSDir))
	newPath := filepath.Join(t.TempDir(), "new.key")
	if err := identity.WriteGossipKey(newPath); err != nil {
		t.Fatal(err)
	}
	newText, newKey := readKey(newPath)
	oldFP, newFP := membership.Fingerprint(oldKey), membership.Fingerprint(newKey)

	keys := func(op, key string, wantPrimary string, wantKeys ...string) {
		t.Helper()
		res, err := adm.GossipKeys(ctx, &adminpb.GossipKeysRequest{Op: op, Key: key})
		if err != nil {
			t.Fatalf("keys %s: %v", op, err)
		}
		if len(res.Nodes) != 3 {
			t.Fatalf("keys %s: %d nodes answered, want 3", op, len(res.Nodes))
		}
		for _, n := range res.Nodes {
			got := slices.Clone(n.Keys)
			slices.Sort(got)
			want := slices.Clone(wantKeys)
			slices.Sort(want)
			if n.Error != "" || n.Primary != wantPrimary || !slices.Equal(got, want) {
				t.Fatalf("keys %s on %s: primary %s keys %v error %q; want primary %s keys %v", op, n.Id, n.Primary, n.Keys, n.Error, wantPrimary, wantKeys)
			}
			if strings.Contains(n.Primary+strings.Join(n.Keys, ""), newText) || strings.Contains(n.Primary+strings.Join(n.Keys, ""), oldText) {
				t.Fatalf("keys %s on %s shows a key itself, not its fingerprint", op, n.Id)
			}
		}
	}
	// The throttle datagram proves gossip between all three still works.
	gossipWorks := func(addr string) {
		t.Helper()
		c.Nodes[0].Logins().Attempt(ctx, addr, func() loginguard.Outcome { return loginguard.Wrong })
		c.Eventually(10*time.Second, "gossip from n1 reaches every node", func() bool {
			for _, nd := range c.Nodes {
				if nd.Logins().Failures(addr) != 1 {
					return false
				}
			}
			return true
		})
	}

	keys("list", "", oldFP, oldFP)
	gossipWorks("192.0.2.10")
	for _, bad := range []*adminpb.GossipKeysRequest{
		{Op: "use", Key: newText}, // not installed anywhere yet
		{Op: "spin", Key: newText},
		{Op: "install", Key: "not base64!"},
		{Op: "install", Key: base64.StdEncoding.EncodeToString([]byte("short"))},
		{Op: "install"},
		{Op: "list", Key: newText},
	} {
		if _, err := adm.GossipKeys(ctx, bad); status.Code(err) != codes.FailedPrecondition && status.Code(err) != codes.InvalidArgument {
			t.Errorf("keys %s %q: %v, want refused", bad.Op, bad.Key, err)
		}
	}
	keys("list", "", oldFP, oldFP)

	keys("install", newText, oldFP, oldFP, newFP)
	gossipWorks("192.0.2.11")
	keys("use", newText, newFP, oldFP, newFP)
	gossipWorks("192.0.2.12")
	// Removing the primary is refused by every node, reported per node.
	res, err := adm.GossipKeys(ctx, &adminpb.GossipKeysRequest{Op: "remove", Key: newText})
	if err != nil {
		t.Fatalf("remove the primary: %v", err)
	}
	for _, n := range res.Nodes {
		if n.Error == "" {
			t.Fatalf("removing the primary key on %s: no error", n.Id)
		}
	}
	keys("remove", oldText, newFP, newFP)
	gossipWorks("192.0.2.13")

	// A restarted node reads its keyring from the data directory, not the
	// (old) key file it was started with, and rejoins.
	r := (l + 1) % 3
	c.StopNode(r)
	c.StartNode(r)
	c.Eventually(30*time.Second, "every node sees the other two alive", func() bool {
		for i, nd := range c.Nodes {
			alive := 0
			for _, m := range nd.Members() {
				if m.Alive && m.ID != c.Cfgs[i].ID {
					alive++
				}
			}
			if alive != 2 {
				return false
			}
		}
		return true
	})
	keys("list", "", newFP, newFP)
	gossipWorks("192.0.2.14")

	// Each change is in the audit log, by fingerprint; lists are not.
	audit, err := c.Admin(l).AuditList(ctx, &adminpb.AuditListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range audit.Entries {
		if strings.HasPrefix(e.Action, "cluster keys") {
			got = append(got, e.Action+" "+e.Detail)
		}
		if strings.Contains(e.Detail, newText) || strings.Contains(e.Detail, oldText) {
			t.Errorf("audit entry %q shows a key itself", e.Detail)
		}
	}
	slices.Reverse(got) // the list is newest first
	want := []string{"cluster keys install key " + newFP, "cluster keys use key " + newFP,
		"cluster keys remove key " + newFP, "cluster keys remove key " + oldFP}
	if !slices.Equal(got, want) {
		t.Errorf("audit log of key changes:\n got %q\nwant %q", got, want)
	}
}
