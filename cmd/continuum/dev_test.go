package main

import (
	"encoding/json"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildBinary builds bin/continuum into the test's temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "continuum")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeBase finds a base port whose node ports are free for 3 nodes.
func freeBase(t *testing.T) int {
	t.Helper()
	for try := 0; try < 50; try++ {
		base := 20000 + rand.IntN(400)*100
		ok := true
		for i := 0; i < 3 && ok; i++ {
			for _, off := range []int{offLMTP, offSMTP, offIMAP, offHTTP, offGRPC, offRaft, offGossip, offAdmin, offSMTPS, offIMAPS} {
				ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+100*i+off))
				if err != nil {
					ok = false
					break
				}
				ln.Close()
			}
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// TestDevClusterEndToEnd runs `continuum dev` as a user would, reads
// cluster.json, asks `cluster status --json` for three healthy nodes, kills
// the leader's process, and checks that the other two elect a new leader
// and go on taking admin writes.
func TestDevClusterEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	base := freeBase(t)
	dev := exec.Command(bin, "dev", "--dir", dir, "--base-port", strconv.Itoa(base))
	out, _ := os.Create(filepath.Join(dir, "dev.out"))
	dev.Stdout, dev.Stderr = out, out
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		dev.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { dev.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			dev.Process.Kill()
		}
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "dev.out"))
			t.Logf("dev output:\n%s", b)
		}
	})

	var cluster devCluster
	poll(t, 60*time.Second, "cluster.json", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
		return err == nil && json.Unmarshal(b, &cluster) == nil
	})
	if len(cluster.Nodes) != 3 || cluster.Domain != "example.test" || len(cluster.Users) != 1 ||
		cluster.Users[0].Email != "demo@example.test" || cluster.Users[0].Password == "" {
		t.Fatalf("cluster.json = %+v", cluster)
	}
	for _, n := range cluster.Nodes {
		if n.ID == "" || n.Site == "" || n.PID == 0 || n.SMTP == "" || n.IMAP == "" || n.GRPC == "" || n.Raft == "" || n.Gossip == "" || n.HTTP == "" || n.LMTP == "" ||
			n.Admin == "" || n.SMTPS == "" || n.IMAPS == "" {
			t.Fatalf("cluster.json node incomplete: %+v", n)
		}
	}
	if cluster.Admin == nil || cluster.Admin.CA == "" || cluster.Admin.Cert == "" || cluster.Admin.Key == "" {
		t.Fatalf("cluster.json has no admin credentials: %+v", cluster.Admin)
	}
	// The CLI takes its credentials from the environment (in ./.dev it
	// would find them in cluster.json).
	cli := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "CONTINUUM_CA="+cluster.Admin.CA, "CONTINUUM_CERT="+cluster.Admin.Cert, "CONTINUUM_KEY="+cluster.Admin.Key)
		return cmd
	}

	status := func(server string) (statusJSON, error) {
		var st statusJSON
		b, err := cli("cluster", "status", "--json", "--server", server).Output()
		if err != nil {
			return st, err
		}
		return st, json.Unmarshal(b, &st)
	}
	var st statusJSON
	poll(t, 30*time.Second, "three healthy nodes", func() bool {
		var err error
		st, err = status(cluster.Nodes[1].Admin)
		if err != nil || st.Leader == "" || len(st.Nodes) != 3 {
			return false
		}
		for _, n := range st.Nodes {
			if !n.Healthy || n.Role != "voter" {
				return false
			}
		}
		return true
	})

	// The demo user can be listed from any node.
	b, err := cli("user", "list", "--server", cluster.Nodes[2].Admin).CombinedOutput()
	if err != nil || !strings.Contains(string(b), "demo@example.test") {
		t.Fatalf("user list: %v\n%s", err, b)
	}
	// Not without the admin certificate, and not on the peer port.
	if b, err := exec.Command(bin, "user", "list", "--server", cluster.Nodes[2].Admin).CombinedOutput(); err == nil {
		t.Fatalf("user list without credentials succeeded:\n%s", b)
	}
	if b, err := cli("user", "list", "--server", cluster.Nodes[2].GRPC).CombinedOutput(); err == nil {
		t.Fatalf("user list on the peer gRPC port succeeded:\n%s", b)
	}

	// Kill the leader's process: dev does not restart it, the others go on.
	var leader devNode
	for _, n := range cluster.Nodes {
		if n.ID == st.Leader {
			leader = n
		}
	}
	if err := syscall.Kill(leader.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var survivor devNode
	for _, n := range cluster.Nodes {
		if n.ID != leader.ID {
			survivor = n
		}
	}
	poll(t, 30*time.Second, "a new leader", func() bool {
		st, err := status(survivor.Admin)
		return err == nil && st.Leader != "" && st.Leader != leader.ID
	})
	add := cli("user", "add", "carol@example.test", "--password-stdin", "--server", survivor.Admin)
	add.Stdin = strings.NewReader("a-long-password\n")
	if b, err := add.CombinedOutput(); err != nil {
		t.Fatalf("user add after failover: %v\n%s", err, b)
	}
	// Bad input is refused with a clear message and a non-zero exit.
	bad := cli("domain", "add", "not a domain", "--server", survivor.Admin)
	if b, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(b), "not a valid host name") {
		t.Fatalf("domain add with a bad name: err=%v output=%s", err, b)
	}
}

func poll(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
