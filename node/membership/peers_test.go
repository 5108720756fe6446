package membership

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestPeersFileRemembersMembers: a pool with a peers file remembers the
// members it saw alive, a new pool over the same file starts with them,
// one that stops cleanly is kept, and a damaged file is ignored rather
// than refused.
func TestPeersFileRemembersMembers(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gossip-peers")
	freeAddr := func() string {
		t.Helper()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return fmt.Sprintf("127.0.0.1:%d", l.Addr().(*net.TCPAddr).Port)
	}
	aAddr := freeAddr() // a restarts where it ran
	start := func(id, peersFile string) *Pool {
		t.Helper()
		addr := aAddr
		if id != "a" {
			addr = freeAddr()
		}
		p, err := Start(Config{
			Meta:       Meta{ID: id},
			GossipAddr: addr,
			Profile:    "local",
			Logger:     slog.New(slog.DiscardHandler),
			PeersFile:  peersFile,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	a := start("a", file)
	if got := a.Remembered(); len(got) != 0 {
		t.Fatalf("a fresh pool remembers %v", got)
	}
	b, c := start("b", ""), start("c", "")
	for _, p := range []*Pool{b, c} {
		if _, err := p.Join([]string{a.cfg.GossipAddr}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{b.cfg.GossipAddr, c.cfg.GossipAddr}
	slices.Sort(want)
	// The file is written just after memory changes: wait for both.
	inFile := func() []string {
		p := &Pool{cfg: Config{Meta: Meta{ID: "a"}, PeersFile: file, Logger: slog.New(slog.DiscardHandler)}}
		p.loadPeers()
		return p.Remembered()
	}
	eventually("a remembers b and c", func() bool {
		return slices.Equal(a.Remembered(), want) && slices.Equal(inFile(), want)
	})

	// A new pool over the file (the restarted node) starts with them.
	a.Close()
	a2 := start("a", file)
	if got := a2.Remembered(); !slices.Equal(got, want) {
		t.Fatalf("restarted: remembers %v, want %v", got, want)
	}
	if _, err := a2.Join(a2.Remembered()); err != nil {
		t.Fatalf("join the remembered peers: %v", err)
	}
	// c stops cleanly (it leaves the pool): still remembered, in memory
	// and in the file, for it will be back.
	eventually("a sees c", func() bool { m, ok := a2.Lookup("c"); return ok && m.Alive })
	if err := c.Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	eventually("a sees c gone", func() bool { m, _ := a2.Lookup("c"); return !m.Alive })
	if got := a2.Remembered(); !slices.Equal(got, want) {
		t.Fatalf("after c left: remembers %v, want %v", got, want)
	}
	a2.Close()
	a3 := start("a", file)
	if got := a3.Remembered(); !slices.Equal(got, want) {
		t.Fatalf("after c left, restarted: the file remembers %v, want %v", got, want)
	}
	a3.Close()

	// A damaged file is a hint lost, not a node that cannot start.
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := start("a", file).Remembered(); len(got) != 0 {
		t.Fatalf("damaged file: remembers %v", got)
	}
}
