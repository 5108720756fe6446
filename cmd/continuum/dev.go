package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/admin"
	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// devNode is one entry of cluster.json (docs/ARCHITECTURE.md §8).
type devNode struct {
	ID     string `json:"id"`
	Site   string `json:"site"`
	PID    int    `json:"pid"`
	SMTP   string `json:"smtp"`
	LMTP   string `json:"lmtp"`
	IMAP   string `json:"imap"`
	SMTPS  string `json:"smtps,omitempty"`
	IMAPS  string `json:"imaps,omitempty"`
	HTTP   string `json:"http"`
	GRPC   string `json:"grpc"`
	Admin  string `json:"admin,omitempty"`
	Raft   string `json:"raft"`
	Gossip string `json:"gossip"`
}

type devUser struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type devCluster struct {
	Nodes  []devNode `json:"nodes"`
	Users  []devUser `json:"users"`
	Domain string    `json:"domain"`
	// Admin is the admin client certificate the CLI uses (absent when the
	// cluster runs with --insecure-dev).
	Admin *adminCreds `json:"admin,omitempty"`
}

const devDomain, devUserEmail = "example.test", "demo@example.test"

// Port offsets from a node's base (base-port + 100 × node index).
const (
	offLMTP   = 24
	offSMTP   = 25
	offIMAP   = 43
	offHTTP   = 80
	offGRPC   = 90
	offRaft   = 91
	offGossip = 92
	offAdmin  = 93
	offSMTPS  = 65 // as in 465
	offIMAPS  = 94
)

func runDev(args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	dir := fs.String("dir", ".dev", "directory for node data, logs and cluster.json")
	nodes := fs.Int("nodes", 3, "number of nodes, one site each")
	base := fs.Int("base-port", 7000, "first port; node i uses base+100×i+{25 smtp, 24 lmtp, 43 imap, 65 smtps, 94 imaps, 80 http, 90 grpc, 91 raft, 92 gossip, 93 admin}")
	insecureDev := fs.Bool("insecure-dev", false, "INSECURE: no TLS between nodes, no admin certificate, no gossip key, no smtps/imaps")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 9 {
		return fmt.Errorf("--nodes %d: want 1 to 9", *nodes)
	}
	if *base < 1024 || *base+100*(*nodes) > 65535 {
		return fmt.Errorf("--base-port %d: want 1024 or more, leaving room for %d nodes", *base, *nodes)
	}
	if err := os.MkdirAll(*dir, 0o750); err != nil {
		return err
	}
	absDir, _ := filepath.Abs(*dir)
	self, err := os.Executable()
	if err != nil {
		return err
	}

	addr := func(i, off int) string { return "127.0.0.1:" + strconv.Itoa(*base+100*i+off) }
	cluster := devCluster{Domain: devDomain}
	tlsDir := filepath.Join(absDir, "tls")
	if !*insecureDev {
		creds, err := devTLS(tlsDir, *nodes)
		if err != nil {
			return err
		}
		cluster.Admin = &creds
	}
	var procs []*exec.Cmd
	for i := 0; i < *nodes; i++ {
		n := devNode{
			ID: fmt.Sprintf("n%d", i+1), Site: string(rune('a' + i)),
			SMTP: addr(i, offSMTP), LMTP: addr(i, offLMTP), IMAP: addr(i, offIMAP), HTTP: addr(i, offHTTP),
			GRPC: addr(i, offGRPC), Raft: addr(i, offRaft), Gossip: addr(i, offGossip),
		}
		args := []string{"serve", "--dev", "--id", n.ID, "--site", n.Site, "--data", filepath.Join(absDir, n.ID),
			"--smtp", n.SMTP, "--lmtp", n.LMTP, "--imap", n.IMAP, "--http", n.HTTP,
			"--grpc", n.GRPC, "--raft", n.Raft, "--gossip", n.Gossip, "--admin", addr(i, offAdmin),
			"--raft-profile", "local", "--hostname", n.ID + ".example.test"}
		if *insecureDev {
			args = append(args, "--insecure-dev")
		} else {
			n.SMTPS, n.IMAPS, n.Admin = addr(i, offSMTPS), addr(i, offIMAPS), addr(i, offAdmin)
			cert, key := identity.NodeFiles(tlsDir, n.ID)
			args = append(args, "--cluster-ca", cluster.Admin.CA, "--node-cert", cert, "--node-key", key,
				"--cluster-key-file", identity.GossipKeyFile(tlsDir),
				"--tls-cert", cert, "--tls-key", key, "--smtps", n.SMTPS, "--imaps", n.IMAPS)
		}
		// Every node joins every other and they form the cluster together,
		// all voters at once: never a two-voter window.
		var join []string
		for j := 0; j < *nodes; j++ {
			if j != i {
				join = append(join, addr(j, offGossip))
			}
		}
		args = append(args, "--bootstrap-expect", strconv.Itoa(*nodes))
		if len(join) > 0 {
			args = append(args, "--join", strings.Join(join, ","))
		}
		logf, err := os.OpenFile(filepath.Join(absDir, n.ID+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return err
		}
		cmd := exec.Command(self, args...)
		cmd.Stdout, cmd.Stderr = logf, logf
		// Each node in its own process group: Ctrl-C reaches dev, which
		// then stops the nodes in order.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			stopAll(procs)
			return fmt.Errorf("start %s: %w", n.ID, err)
		}
		logf.Close()
		n.PID = cmd.Process.Pid
		procs = append(procs, cmd)
		cluster.Nodes = append(cluster.Nodes, n)
	}

	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := p.Wait()
			fmt.Fprintf(os.Stderr, "dev: node %s (pid %d) exited: %v (not restarted; the others go on)\n", cluster.Nodes[i].ID, p.Process.Pid, err)
		}()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	adminAddr, creds := cluster.Nodes[0].GRPC, adminCreds{}
	if cluster.Admin != nil {
		adminAddr, creds = cluster.Nodes[0].Admin, *cluster.Admin
	} else {
		adminAddr = addr(0, offAdmin)
	}
	password, err := devSetup(ctx, absDir, adminAddr, creds, *nodes)
	if err != nil {
		stopAll(procs)
		wg.Wait()
		return err
	}
	cluster.Users = []devUser{{Email: devUserEmail, Password: password}}
	b, _ := json.MarshalIndent(cluster, "", "  ")
	if err := os.WriteFile(filepath.Join(absDir, "cluster.json"), append(b, '\n'), 0o640); err != nil {
		stopAll(procs)
		return err
	}

	fmt.Printf("Continuum dev cluster: %d nodes, data and logs in %s\n\n", *nodes, absDir)
	fmt.Printf("%-4s %-4s %-7s %-16s %-16s %-16s %-16s %-16s %-16s %-16s %-16s\n", "node", "site", "pid", "smtp", "smtps", "lmtp", "imap", "imaps", "http", "grpc", "admin")
	for _, n := range cluster.Nodes {
		fmt.Printf("%-4s %-4s %-7d %-16s %-16s %-16s %-16s %-16s %-16s %-16s %-16s\n", n.ID, n.Site, n.PID, n.SMTP, dash(n.SMTPS), n.LMTP, n.IMAP, dash(n.IMAPS), n.HTTP, n.GRPC, dash(n.Admin))
	}
	fmt.Printf("\nDomain %s; user %s, password %s\n", devDomain, devUserEmail, password)
	if cluster.Admin != nil {
		fmt.Printf("TLS: cluster CA %s (trust it for STARTTLS, smtps and imaps); admin certificate %s\n", cluster.Admin.CA, cluster.Admin.Cert)
	} else {
		fmt.Println("INSECURE: --insecure-dev: no TLS between nodes, admin API unauthenticated")
	}
	fmt.Printf("Try: bin/continuum cluster status --server %s\n", adminAddr)
	fmt.Printf("Cluster description: %s\nCtrl-C stops every node.\n", filepath.Join(absDir, "cluster.json"))
	fmt.Printf("Console: http://%s/ (every node's HTTP address serves one)\n", cluster.Nodes[0].HTTP)

	<-ctx.Done()
	fmt.Fprintln(os.Stderr, "dev: stopping nodes")
	stopAll(procs)
	wg.Wait()
	return nil
}

// devSetup waits for a leader, creates the dev domain and user, then waits
// until the cluster is ready and fault tolerant: every node a voter, in
// contact with the leader and applied up to the leader's state
// (admin.FullyReady), so that cluster.json, written after it, means a kill
// of any one node is survived. The password is kept in the directory so a
// restarted dev cluster reuses it.
func devSetup(ctx context.Context, dir, server string, creds adminCreds, nodes int) (string, error) {
	pwFile := filepath.Join(dir, "demo-password")
	password := ""
	if b, err := os.ReadFile(pwFile); err == nil {
		password = string(b)
	} else {
		buf := make([]byte, 9)
		rand.Read(buf)
		password = hex.EncodeToString(buf)
		if err := os.WriteFile(pwFile, []byte(password), 0o600); err != nil {
			return "", err
		}
	}
	conn, err := dialAdmin(server, creds)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	client := adminpb.NewAdminClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	try := func(f func(ctx context.Context) error) error {
		for {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := f(cctx)
			cancel()
			if err == nil || status.Code(err) == codes.AlreadyExists {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("dev cluster not ready after 60 s (see the node logs): %w", err)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	if err := try(func(ctx context.Context) error {
		st, err := client.ClusterStatus(ctx, &adminpb.ClusterStatusRequest{})
		if err != nil {
			return err
		}
		if st.Leader == "" {
			return errors.New("no leader yet")
		}
		return nil
	}); err != nil {
		return "", err
	}
	if err := try(func(ctx context.Context) error {
		_, err := client.DomainAdd(ctx, &adminpb.DomainAddRequest{Name: devDomain})
		return err
	}); err != nil {
		return "", err
	}
	if err := try(func(ctx context.Context) error {
		_, err := client.UserAdd(ctx, &adminpb.UserAddRequest{Email: devUserEmail, Password: password})
		return err
	}); err != nil {
		return "", err
	}
	if err := try(func(ctx context.Context) error {
		st, err := client.ClusterStatus(ctx, &adminpb.ClusterStatusRequest{})
		if err != nil {
			return err
		}
		if ok, why := admin.FullyReady(st, nodes); !ok {
			return errors.New("not ready and fault tolerant yet: " + why)
		}
		return nil
	}); err != nil {
		return "", err
	}
	return password, nil
}

// devTLS makes (or reuses) the dev cluster's CA and gossip key in dir and
// issues fresh node certificates (loopback and nX.example.test) and the
// admin certificate "dev"; it returns the admin credentials.
func devTLS(dir string, nodes int) (adminCreds, error) {
	ca, _ := identity.CAFiles(dir)
	if _, err := os.Stat(ca); err != nil {
		if err := identity.CreateCA(dir); err != nil {
			return adminCreds{}, err
		}
	}
	if _, err := os.Stat(identity.GossipKeyFile(dir)); err != nil {
		if err := identity.WriteGossipKey(identity.GossipKeyFile(dir)); err != nil {
			return adminCreds{}, err
		}
	}
	for i := 0; i < nodes; i++ {
		id := fmt.Sprintf("n%d", i+1)
		if _, _, err := identity.IssueNode(dir, id, []string{"localhost", id + ".example.test", "127.0.0.1", "::1"}); err != nil {
			return adminCreds{}, err
		}
	}
	cert, key, err := identity.IssueAdmin(dir, "dev")
	if err != nil {
		return adminCreds{}, err
	}
	return adminCreds{CA: ca, Cert: cert, Key: key}, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stopAll asks every node to stop, and kills those still running after
// 15 s. The callers' Wait goroutines reap them.
func stopAll(procs []*exec.Cmd) {
	for _, p := range procs {
		p.Process.Signal(syscall.SIGTERM)
	}
	time.AfterFunc(15*time.Second, func() {
		for _, p := range procs {
			p.Process.Kill()
		}
	})
}
