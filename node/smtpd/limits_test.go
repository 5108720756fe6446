package smtpd_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/continuum-mail/continuum/node/smtpd"
)

// TestLMTPLimits: LMTP has no per-address cap unless one is configured,
// and a total cap that refuses with 421 4.3.2 (issue 9).
func TestLMTPLimits(t *testing.T) {
	for _, tc := range []struct {
		name         string
		perIP, total int
		open         int
		wantRefused  string // reply of connection open+1; "" = greeted too
	}{
		{"default: no per-address cap", 0, 0, 200, ""},
		{"total cap", 0, 5, 5, "421 4.3.2"},
		{"per-address cap when set", 3, 0, 3, "421 4.7.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := smtpd.New(&fakeMail{}, smtpd.Config{Hostname: "mx.test", LMTP: true, Logger: quietLog, MaxConnsPerIP: tc.perIP, MaxConns: tc.total})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			greet := func() string {
				c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				line, _ := bufio.NewReader(c).ReadString('\n')
				return line
			}
			for i := 0; i < tc.open; i++ {
				if g := greet(); !strings.HasPrefix(g, "220 ") {
					t.Fatalf("connection %d: %q, want 220", i+1, g)
				}
			}
			g := greet()
			want := tc.wantRefused
			if want == "" {
				want = "220 "
			}
			if !strings.HasPrefix(g, want) {
				t.Fatalf("connection %d: %q, want %s", tc.open+1, g, want)
			}
		})
	}
}
