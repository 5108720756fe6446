package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Cluster is a local Continuum cluster run by `continuum dev` (one process
// per node, mTLS between them, fsync on): real processes, as a user runs
// them.
type Cluster struct {
	Dir              string
	LMTP, SMTP, IMAP []string // per node
	PIDs             []int
	IDs              []string
	bin              string
	env              []string
	admin            string
	cmd              *exec.Cmd
	exited           chan struct{}
}

// StartCluster runs `bin dev --dir dir --nodes 3 --base-port base` and
// waits until the cluster is ready (dev writes cluster.json then).
func StartCluster(bin, dir string, base int) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin, exited: make(chan struct{})}
	logf, err := os.Create(filepath.Join(dir, "dev.out"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	c.cmd = exec.Command(bin, "dev", "--dir", dir, "--nodes", "3", "--base-port", strconv.Itoa(base))
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	var desc struct {
		Nodes []struct {
			ID               string
			PID              int
			SMTP, LMTP, IMAP string
			Admin            string
		}
		Admin *struct{ CA, Cert, Key string }
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, err := os.ReadFile(filepath.Join(dir, "cluster.json"))
		if err == nil && json.Unmarshal(b, &desc) == nil && len(desc.Nodes) == 3 {
			break
		}
		select {
		case <-c.exited:
			out, _ := os.ReadFile(filepath.Join(dir, "dev.out"))
			return nil, fmt.Errorf("continuum dev exited:\n%s", out)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, errors.New("continuum dev: no cluster.json after 2 minutes (see " + dir + ")")
		}
	}
	for _, n := range desc.Nodes {
		c.LMTP, c.SMTP, c.IMAP = append(c.LMTP, n.LMTP), append(c.SMTP, n.SMTP), append(c.IMAP, n.IMAP)
		c.PIDs = append(c.PIDs, n.PID)
		c.IDs = append(c.IDs, n.ID)
	}
	c.admin = desc.Nodes[0].Admin
	if desc.Admin != nil {
		c.env = []string{"CONTINUUM_CA=" + desc.Admin.CA, "CONTINUUM_CERT=" + desc.Admin.Cert, "CONTINUUM_KEY=" + desc.Admin.Key}
	}
	return c, nil
}

// AddUsers creates the users (the dev domain example.test exists) through
// the admin CLI, a few at a time.
func (c *Cluster) AddUsers(users []string, password string) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var mu sync.Mutex
	var first error
	for _, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cmd := exec.Command(c.bin, "user", "add", u, "--password-stdin", "--server", c.admin)
			cmd.Env = append(os.Environ(), c.env...)
			cmd.Stdin = strings.NewReader(password + "\n")
			if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "exists") {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("user add %s: %v: %s", u, err, out)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// Leader returns the index of the node that leads now (`continuum cluster
// status --json`).
func (c *Cluster) Leader() (int, error) {
	cmd := exec.Command(c.bin, "cluster", "status", "--json", "--server", c.admin)
	cmd.Env = append(os.Environ(), c.env...)
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("cluster status: %w", err)
	}
	var st struct{ Leader string }
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, fmt.Errorf("cluster status: %w", err)
	}
	for i, id := range c.IDs {
		if id == st.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("cluster status: no leader (%q)", st.Leader)
}

// Stop stops the cluster (dev stops its nodes in order on SIGTERM).
func (c *Cluster) Stop() {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		for _, p := range c.PIDs {
			_ = syscall.Kill(-p, syscall.SIGKILL)
		}
		<-c.exited
	}
}
