package clustertest

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/continuum-mail/continuum/proto/peerpb"
)

// TestFaultF15FreshClusterLeaderKill is docs/TESTPLAN.md F15: start a fresh
// 3-node cluster the way a user does (`continuum dev`, real processes on
// loopback, every node with --bootstrap-expect 3), kill -9 the leader the
// moment the cluster says it is ready (cluster.json appears), and expect a
// new leader within 2 s. CONTINUUM_F15_RUNS sets the number of fresh
// clusters (3 by default; make test-faults runs 50). Each run's time to
// the new leader is logged, and the slowest and median at the end.
func TestFaultF15FreshClusterLeaderKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	runs := 3
	if s := os.Getenv("CONTINUUM_F15_RUNS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			t.Fatalf("CONTINUUM_F15_RUNS %q: want a positive count", s)
		}
		runs = v
	}
	bin := Binary(t, "")
	var times []time.Duration
	for run := 1; run <= runs; run++ {
		d := freshClusterLeaderKill(t, bin, run)
		times = append(times, d)
		t.Logf("F15 run %d/%d: new leader %v after the kill", run, runs, d.Round(time.Millisecond))
		if t.Failed() {
			return
		}
	}
	slices.Sort(times)
	t.Logf("F15: %d runs; new leader after the kill: median %v, slowest %v, fastest %v",
		runs, times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), times[0].Round(time.Millisecond))
}

// devClusterJSON is the part of cluster.json this test reads.
type devClusterJSON struct {
	Nodes []struct {
		ID   string `json:"id"`
		PID  int    `json:"pid"`
		HTTP string `json:"http"`
	} `json:"nodes"`
}

// freshClusterLeaderKill runs one fresh dev cluster and returns how long
// after the leader's kill a new leader was seen by both survivors.
func freshClusterLeaderKill(t *testing.T, bin string, run int) time.Duration {
	t.Helper()
	dir := t.TempDir()
	base := freeDevBase(t)
	dev := exec.Command(bin, "dev", "--dir", dir, "--base-port", strconv.Itoa(base))
	out, err := os.Create(filepath.Join(dir, "dev.out"))
	if err != nil {
		t.Fatal(err)
	}
	dev.Stdout, dev.Stderr = out, out
	dev.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { dev.Wait(); close(done) }()
	var cluster devClusterJSON
	defer func() {
		dev.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			dev.Process.Kill()
			<-done
		}
		for _, n := range cluster.Nodes {
			syscall.Kill(n.PID, syscall.SIGKILL) // the dev process stops them; this is a backstop
		}
		if t.Failed() {
			keep, _ := os.MkdirTemp("", fmt.Sprintf("clustertest-F15-run%d-", run))
			exec.Command("cp", "-r", dir+"/.", keep).Run()
			t.Logf("F15 run %d: dev output and node logs kept in %s", run, keep)
		}
	}()

	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	info := func(addr string) *peerpb.InfoResponse {
		resp, err := hc.Get("http://" + addr + "/status")
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		in := new(peerpb.InfoResponse)
		if resp.StatusCode != http.StatusOK || (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, in) != nil {
			return nil
		}
		return in
	}

	deadline := time.Now().Add(90 * time.Second)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
		if err == nil && json.Unmarshal(b, &cluster) == nil {
			break
		}
		select {
		case <-done:
			t.Fatalf("F15 run %d: continuum dev exited before cluster.json", run)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("F15 run %d: no cluster.json after 90 s", run)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(cluster.Nodes) != 3 {
		t.Fatalf("F15 run %d: cluster.json has %d nodes", run, len(cluster.Nodes))
	}
	// The leader, at once: the first node that says it leads.
	leader := -1
	for leader < 0 && time.Now().Before(deadline) {
		for i, n := range cluster.Nodes {
			if in := info(n.HTTP); in != nil && in.State == "leader" {
				leader = i
				break
			}
		}
	}
	if leader < 0 {
		t.Fatalf("F15 run %d: no node says it leads", run)
	}
	killed := cluster.Nodes[leader]
	if err := syscall.Kill(killed.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("F15 run %d: kill %s: %v", run, killed.ID, err)
	}
	t0 := time.Now()
	const bound = 2 * time.Second
	for {
		// A new leader that both survivors follow in the same term.
		var ins []*peerpb.InfoResponse
		for i, n := range cluster.Nodes {
			if i != leader {
				ins = append(ins, info(n.HTTP))
			}
		}
		if ins[0] != nil && ins[1] != nil && ins[0].LeaderId != "" && ins[0].LeaderId != killed.ID &&
			ins[0].LeaderId == ins[1].LeaderId && ins[0].Term == ins[1].Term {
			return time.Since(t0)
		}
		if time.Since(t0) > bound {
			// Go on polling a little to tell "slow" from "stuck" in the log.
			for time.Since(t0) < 15*time.Second {
				if in := info(cluster.Nodes[(leader+1)%3].HTTP); in != nil && in.LeaderId != "" && in.LeaderId != killed.ID {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Errorf("F15 run %d: killed leader %s; no new leader within %v (after %v: %+v / %+v)", run, killed.ID, bound, time.Since(t0).Round(time.Millisecond), ins[0], ins[1])
			return time.Since(t0)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeDevBase finds a base port whose dev ports (3 nodes) are free now;
// ports below Linux's ephemeral range, chosen at random.
func freeDevBase(t *testing.T) int {
	t.Helper()
	for try := 0; try < 100; try++ {
		base := 20000 + rand.IntN(120)*100
		ok := true
		for i := 0; i < 3 && ok; i++ {
			for _, off := range []int{24, 25, 43, 80, 90, 91, 92} {
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
	t.Fatal("F15: no free port range")
	return 0
}
