package imapd_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// loginResult runs LOGIN on a fresh connection and returns the tagged
// completion ("OK …" or "NO …").
func loginResult(t *testing.T, addr, user, pass string) string {
	t.Helper()
	c := dial(t, addr)
	_, done := c.do("LOGIN %s %q", user, pass)
	c.conn.Close()
	return done
}

// writerAndFollower picks the node an admin write goes through (the
// leader: its write returns once applied there) and a follower to log in
// at, which learns of the commit a moment later.
func writerAndFollower(e *env) (int, int) {
	l := e.c.WaitLeader(10 * time.Second)
	return l, (l + 2) % len(e.addrs)
}

// TestLoginRightAfterUserAdd is docs/TESTPLAN.md F19 for new users: 100 times, a
// user is added through one node and logs in at another at once. Every
// login succeeds: a failed check is retried after a read-index wait.
func TestLoginRightAfterUserAdd(t *testing.T) {
	e := newEnv(t, nil)
	w, f := writerAndFollower(e)
	ok := 0
	var fails []string
	for i := 0; i < 100; i++ {
		u := fmt.Sprintf("new%d@%s", i, domain)
		if _, err := e.c.Nodes[w].Mail().AddUser(e.c.Ctx(10*time.Second), u, "pw-"+u, 0); err != nil {
			t.Fatalf("AddUser %s: %v", u, err)
		}
		if done := loginResult(t, e.addrs[f], u, "pw-"+u); strings.HasPrefix(done, "OK") {
			ok++
		} else {
			fails = append(fails, u+": "+done)
		}
	}
	t.Logf("user add at %s, LOGIN at %s at once: %d of 100 succeeded", e.c.Cfgs[w].ID, e.c.Cfgs[f].ID, ok)
	if ok != 100 {
		t.Fatalf("%d of 100 logins succeeded; failures: %q", ok, fails)
	}
}

// TestLoginRightAfterPasswd is docs/TESTPLAN.md F19 for password changes: 100
// times, the password is changed through one node, and at another at once
// the old password is refused and the new one works.
func TestLoginRightAfterPasswd(t *testing.T) {
	e := newEnv(t, nil)
	w, f := writerAndFollower(e)
	const u = "changer@" + domain
	old := "password-0"
	if _, err := e.c.Nodes[w].Mail().AddUser(e.c.Ctx(10*time.Second), u, old, 0); err != nil {
		t.Fatal(err)
	}
	e.waitAll()
	refused, worked := 0, 0
	for i := 1; i <= 100; i++ {
		pw := fmt.Sprintf("password-%d", i)
		if err := e.c.Nodes[w].Mail().SetPassword(e.c.Ctx(10*time.Second), u, pw); err != nil {
			t.Fatalf("SetPassword: %v", err)
		}
		if done := loginResult(t, e.addrs[f], u, old); strings.HasPrefix(done, "NO") {
			refused++
		} else {
			t.Errorf("round %d: old password at %s: %s", i, e.c.Cfgs[f].ID, done)
		}
		if done := loginResult(t, e.addrs[f], u, pw); strings.HasPrefix(done, "OK") {
			worked++
		} else {
			t.Errorf("round %d: new password at %s: %s", i, e.c.Cfgs[f].ID, done)
		}
		old = pw
	}
	t.Logf("user passwd at %s, LOGIN at %s at once: old refused %d of 100, new worked %d of 100", e.c.Cfgs[w].ID, e.c.Cfgs[f].ID, refused, worked)
}
