// Package compose holds the 3-site Docker Compose deployment
// (docker-compose.yml) and its test, which `make test-docker` runs against
// the continuum:dev image (CONTINUUM_DOCKER=1; skipped otherwise).
package compose

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

const project = "continuumtest"

// caFile is the cluster CA, copied out of the tls volume: clients at the
// sites check the nodes' certificates against it.
var caFile string

// site is one node's host-side ports (docker-compose.yml: site a on 1xxxx).
type site struct {
	node, name string
	smtp, imap string
	http       string
}

var sites = []site{
	{"n1", "a", "127.0.0.1:12525", "127.0.0.1:11143", "127.0.0.1:17080"},
	{"n2", "b", "127.0.0.1:22525", "127.0.0.1:21143", "127.0.0.1:27080"},
	{"n3", "c", "127.0.0.1:32525", "127.0.0.1:31143", "127.0.0.1:37080"},
}

func compose(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("docker-compose", append([]string{"-f", "docker-compose.yml", "-p", project}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func docker(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// admin runs a continuum admin command inside node n's container, with the
// admin certificate tls-init made (the admin API listens on the container's
// loopback only).
func admin(t *testing.T, n string, stdin string, args ...string) string {
	t.Helper()
	full := append([]string{"exec", "-T", n, "/continuum"}, args...)
	full = append(full, "--server", "127.0.0.1:7093", "--ca", "/tls/ca.pem", "--cert", "/tls/admin-ops.pem", "--key", "/tls/admin-ops-key.pem")
	cmd := exec.Command("docker-compose", append([]string{"-f", "docker-compose.yml", "-p", project}, full...)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("continuum %s at %s: %v\n%s", strings.Join(args, " "), n, err, out)
	}
	return string(out)
}

func ready(s site) bool {
	c := http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://" + s.http + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}

// greeting returns the first reply line of a site's SMTP port.
func greeting(s site) string {
	c, err := net.DialTimeout("tcp", s.smtp, 3*time.Second)
	if err != nil {
		return err.Error()
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(l)
}

// send delivers one message through s, as an MTA relaying to an MX does
// (no authentication, no TLS), and returns nil on 250.
func send(s site, id string) error {
	msg := fmt.Sprintf("From: mx@remote.test\r\nTo: alice@example.test\r\nSubject: %s\r\nMessage-ID: <%s@remote.test>\r\nX-Test-Id: %s\r\n\r\nhello from the compose test\r\n", id, id, id)
	conn, err := net.DialTimeout("tcp", s.smtp, 3*time.Second)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	c, err := smtp.NewClient(conn, "127.0.0.1")
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if err := c.Hello("mx.remote.test"); err != nil {
		return err
	}
	if err := c.Mail("mx@remote.test"); err != nil {
		return err
	}
	if err := c.Rcpt("alice@example.test"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// sendAnywhere tries each site in turn, as an MTA walks its MX list.
func sendAnywhere(id string) error {
	var last error
	for _, s := range sites {
		if last = send(s, id); last == nil {
			return nil
		}
	}
	return last
}

// count returns how many messages in alice's INBOX at s carry X-Test-Id id,
// read with Python's imaplib (a client nobody here wrote).
func count(t *testing.T, s site) map[string]int {
	t.Helper()
	host, port, _ := net.SplitHostPort(s.imap)
	script := `
import imaplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
m.starttls(ssl_context=ctx)
m.login("alice@example.test", "compose-pass-1")
m.select("INBOX")
typ, data = m.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (X-TEST-ID)])")
for part in data:
    if isinstance(part, tuple):
        for line in part[1].decode().splitlines():
            if line.lower().startswith("x-test-id:"):
                print(line.split(":", 1)[1].strip())
m.logout()
`
	out, err := exec.Command("python3", "-c", script, host, port, caFile).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib at site %s: %v\n%s", s.name, err, out)
	}
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			got[l]++
		}
	}
	return got
}

// TestThreeSites: the compose cluster forms; mail sent at site a is read at
// site c; site a cut from the WAN greets 421 while b and c accept; joined
// again it catches up and serves the new mail; a rolling restart of all
// three under a trickle of deliveries loses nothing and copies nothing.
func TestThreeSites(t *testing.T) {
	if os.Getenv("CONTINUUM_DOCKER") == "" {
		t.Skip("CONTINUUM_DOCKER not set: `make test-docker` runs this against the continuum:dev image")
	}
	exec.Command("docker-compose", "-f", "docker-compose.yml", "-p", project, "down", "-v", "--remove-orphans").Run()
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command("docker-compose", "-f", "docker-compose.yml", "-p", project, "logs", "--no-color", "--tail", "40").CombinedOutput()
			t.Logf("logs:\n%s", out)
		}
		exec.Command("docker-compose", "-f", "docker-compose.yml", "-p", project, "down", "-v", "--remove-orphans").Run()
	})
	start := time.Now()
	compose(t, "up", "-d")
	for _, s := range sites {
		eventually(t, 120*time.Second, "site "+s.name+" ready", func() bool { return ready(s) })
	}
	t.Logf("three sites ready in %v", time.Since(start).Round(time.Millisecond))
	caFile = t.TempDir() + "/ca.pem"
	docker(t, "cp", project+"_n1_1:/tls/ca.pem", caFile)
	admin(t, "n1", "", "domain", "add", "example.test")
	admin(t, "n1", "compose-pass-1\n", "user", "add", "alice@example.test", "--password-stdin")
	t.Log(admin(t, "n2", "", "cluster", "status"))

	// Mail at site a, read at site c.
	if err := send(sites[0], "first"); err != nil {
		t.Fatalf("SMTP at site a: %v", err)
	}
	eventually(t, 10*time.Second, "the message at site c", func() bool { return count(t, sites[2])["first"] == 1 })

	// Site a loses the WAN.
	cut := time.Now()
	docker(t, "network", "disconnect", project+"_wan", project+"_n1_1")
	took421 := eventually(t, 30*time.Second, "site a greets 421", func() bool { return strings.HasPrefix(greeting(sites[0]), "421") })
	t.Logf("site a cut off: 421 after %v (%s)", took421.Round(time.Millisecond), greeting(sites[0]))
	// If site a held the leadership, b and c elect another leader first.
	back := eventually(t, 30*time.Second, "sites b and c ready without a", func() bool { return ready(sites[1]) && ready(sites[2]) })
	t.Logf("sites b and c ready %v after the cut", time.Since(cut).Round(time.Millisecond))
	_ = back
	var during []string
	for i := 0; i < 10; i++ {
		id := fmt.Sprintf("during-%d", i)
		if err := send(sites[1+i%2], id); err != nil {
			t.Fatalf("site %s refused while a is cut off: %v", sites[1+i%2].name, err)
		}
		during = append(during, id)
	}
	if err := send(sites[0], "to-a-while-cut"); err == nil {
		t.Error("site a acknowledged mail while cut off from the WAN")
	}
	t.Logf("cut for %v", time.Since(cut).Round(time.Millisecond))

	// Joined again: it catches up and serves what b and c took.
	docker(t, "network", "connect", "--ip", "172.30.0.11", project+"_wan", project+"_n1_1")
	rejoined := time.Now()
	caught := eventually(t, 60*time.Second, "site a serves the mail taken while it was cut off", func() bool {
		if !ready(sites[0]) {
			return false
		}
		got := count(t, sites[0])
		for _, id := range during {
			if got[id] != 1 {
				return false
			}
		}
		return true
	})
	t.Logf("site a caught up %v after the WAN came back (ready and serving all %d)", caught.Round(time.Millisecond), len(during))
	_ = rejoined

	// Rolling restart under a trickle.
	var mu sync.Mutex
	var acked []string
	var failures int
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			id := fmt.Sprintf("trickle-%d", i)
			if err := sendAnywhere(id); err != nil {
				mu.Lock()
				failures++ // a temporary failure: an MTA keeps it and retries
				mu.Unlock()
				continue
			}
			mu.Lock()
			acked = append(acked, id)
			mu.Unlock()
		}
	}()
	for _, s := range sites {
		r := time.Now()
		compose(t, "restart", s.node)
		d := eventually(t, 90*time.Second, "site "+s.name+" ready after its restart", func() bool { return ready(s) })
		// Every voter back before the next goes: the cluster must not be
		// one failure from losing its quorum.
		time.Sleep(3 * time.Second)
		t.Logf("restarted %s: ready %v after the restart returned (%v in all)", s.node, d.Round(time.Millisecond), time.Since(r).Round(time.Millisecond))
	}
	close(stop)
	wg.Wait()
	t.Logf("trickle: %d acknowledged, %d temporary failures during the rolling restart", len(acked), failures)
	if len(acked) < 20 {
		t.Fatalf("only %d deliveries acknowledged during the rolling restart", len(acked))
	}
	for _, s := range sites {
		var got map[string]int
		eventually(t, 30*time.Second, "every acknowledged message at site "+s.name, func() bool {
			got = count(t, s)
			for _, id := range acked {
				if got[id] == 0 {
					return false
				}
			}
			return true
		})
		for _, id := range acked {
			if got[id] != 1 {
				t.Errorf("site %s holds %d copies of %s", s.name, got[id], id)
			}
		}
	}
}
