package node_test

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

// imapLogin connects to addr from the local address src, sends one LOGIN
// and returns the tagged reply.
func imapLogin(t *testing.T, src, addr, user, pw string) string {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(conn)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "* OK") {
		t.Fatalf("greeting from %s: %q, %v", addr, l, err)
	}
	fmt.Fprintf(conn, "a1 LOGIN %q %q\r\n", user, pw)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("LOGIN at %s: %v", addr, err)
		}
		if strings.HasPrefix(l, "a1 ") {
			return strings.TrimSpace(l)
		}
	}
}

// TestLoginThrottleIsClusterWide (issue 10): 30 wrong passwords from one
// address spread round-robin over the three nodes reach a password check
// only max-login-failures (10) times in all, not 10 per node; then the
// right password from that address is refused unchecked on every node,
// while another address logs in everywhere.
func TestLoginThrottleIsClusterWide(t *testing.T) {
	const max = 10
	c := nodetest.Start(t, nodetest.Options{Nodes: 3, Protocols: true, Configure: func(i int, cfg *config.Config) {
		cfg.MaxLoginFailures = max
		cfg.LoginFailureDelay = config.Duration{Duration: 5 * time.Millisecond}
	}})
	l := c.WaitLeader(10 * time.Second)
	c.WaitVoters(3, 20*time.Second)
	ctx := c.Ctx(2 * time.Minute)
	const user, pw = "alice@example.test", "correct horse battery"
	if _, err := c.Admin(l).DomainAdd(ctx, &adminpb.DomainAddRequest{Name: "example.test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin(l).UserAdd(ctx, &adminpb.UserAddRequest{Email: user, Password: pw}); err != nil {
		t.Fatal(err)
	}
	c.WaitConverged(20 * time.Second)
	checks := func() (n int64) {
		for _, nd := range c.Nodes {
			ch, _ := nd.Logins().Stats()
			n += ch
		}
		return n
	}
	const guesser, other = "127.0.0.1", "127.0.0.2"
	before := checks()
	for i := 0; i < 30; i++ {
		got := imapLogin(t, guesser, c.Cfgs[i%3].IMAPAddr, user, fmt.Sprintf("guess %d", i))
		if strings.Contains(got, "UNAVAILABLE") {
			// The node could not confirm credentials (read-index under
			// load): not counted, by design; the guesser tries again.
			t.Logf("guess %d on n%d: %s; again", i, i%3+1, got)
			i--
			continue
		}
		if !strings.HasPrefix(got, "a1 NO") {
			t.Fatalf("guess %d on n%d: %q, want NO", i, i%3+1, got)
		}
		// A guesser pauses between tries (each wrong answer is delayed
		// anyway); wait for gossip to carry the count to every node.
		c.Eventually(10*time.Second, fmt.Sprintf("every node counts %d failures", i+1), func() bool {
			for _, nd := range c.Nodes {
				if nd.Logins().Failures(guesser) < i+1 {
					return false
				}
			}
			return true
		})
	}
	if got := checks() - before; got != max {
		t.Fatalf("%d of 30 guesses spread over 3 nodes reached a password check, want %d (per-node counting gives 30)", got, max)
	}
	before = checks()
	for i := range c.Nodes {
		if got := imapLogin(t, guesser, c.Cfgs[i].IMAPAddr, user, pw); !strings.HasPrefix(got, "a1 NO") {
			t.Errorf("right password from the guesser's address on n%d: %q, want NO (throttled)", i+1, got)
		}
	}
	if got := checks() - before; got != 0 {
		t.Errorf("%d throttled logins reached a password check", got)
	}
	for i := range c.Nodes {
		if got := imapLogin(t, other, c.Cfgs[i].IMAPAddr, user, pw); !strings.HasPrefix(got, "a1 OK") {
			t.Errorf("right password from another address on n%d: %q, want OK", i+1, got)
		}
	}
}
