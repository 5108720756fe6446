package loginguard

import (
	"testing"
	"time"
)

// FuzzReceive: gossip messages are input from the network (authenticated
// by the cluster key only). Whatever arrives, Receive does not panic, never
// counts for this node's own ID, keeps counts within the cap, and keeps the
// table within MaxAddrs.
func FuzzReceive(f *testing.F) {
	for _, s := range []string{
		`L{"o":"n2","a":"192.0.2.1","n":3}`,
		`L{"o":"n2","a":"192.0.2.1","r":true}`,
		`L{"o":"n2","a":"192.0.2.1","n":0}`,
		`L{"o":"n1","a":"192.0.2.1","n":3}`,
		`L{"o":"n2","a":"192.0.2.1","n":1e300}`,
		`L{"o":"n2","a":"x","n":-1}`,
		`L[1,2,3]`, `L`, ``, `X{}`,
	} {
		f.Add([]byte(s), []byte(`L{"o":"n3","a":"192.0.2.1","n":2}`))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		g := New(Config{Self: "n1", MaxAddrs: 4, Window: time.Hour})
		g.Receive(a)
		g.Receive(b)
		if len(g.addrs) > 4 {
			t.Fatalf("%d addresses kept, over MaxAddrs 4", len(g.addrs))
		}
		for addr, e := range g.addrs {
			if e.own.n != 0 {
				t.Fatalf("a received message set this node's own count for %q", addr)
			}
			if _, ok := e.remote["n1"]; ok {
				t.Fatalf("a message claiming this node's ID was counted for %q", addr)
			}
			for o, c := range e.remote {
				if c.n <= 0 || c.n > maxCount {
					t.Fatalf("count %d from %q for %q", c.n, o, addr)
				}
			}
		}
	})
}
