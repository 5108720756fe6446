package membership

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// TestRefreshLearnsAMemberGossipMissed: with gossip and periodic syncs off,
// b (joined through a before c) never hears of c; Refresh's state sync
// with the members it knows brings c, with its gRPC address.
func TestRefreshLearnsAMemberGossipMissed(t *testing.T) {
	quiet := func(mc *memberlist.Config) {
		mc.GossipInterval = time.Hour
		mc.PushPullInterval = time.Hour
		mc.ProbeInterval = time.Hour
	}
	start := func(id string) *Pool {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		p, err := Start(Config{
			Meta:       Meta{ID: id, GRPC: "127.0.0.1:" + strconv.Itoa(9000+port%1000)},
			GossipAddr: fmt.Sprintf("127.0.0.1:%d", port),
			Profile:    "local",
			Logger:     slog.New(slog.DiscardHandler),
			tune:       quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	a, b, c := start("a"), start("b"), start("c")
	if _, err := b.Join([]string{a.cfg.GossipAddr}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Join([]string{a.cfg.GossipAddr}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, ok := b.Lookup("c"); ok {
		t.Fatal("b learned c with gossip off: the test shows nothing")
	}
	b.Refresh()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m, ok := b.Lookup("c"); ok {
			if m.GRPC != c.cfg.Meta.GRPC {
				t.Fatalf("b has c at %q, want %q", m.GRPC, c.cfg.Meta.GRPC)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("b did not learn c within 5 s of Refresh")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
