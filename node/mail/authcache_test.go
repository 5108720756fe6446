package mail

import "testing"

func TestAuthCache(t *testing.T) {
	c := newAuthCache()
	full := 0
	c.verify = func(stored []byte, pw string) bool { full++; return CheckPassword(stored, pw) }
	h1, err := HashPassword("correct-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	h2, err := HashPassword("correct-pass-2")
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		stored []byte
		pw     string
		ok     bool
		full   int // full checks so far
	}{
		{h1, "correct-pass-1", true, 1},  // first login: full check, cached
		{h1, "correct-pass-1", true, 1},  // again: from the cache
		{h1, "wrong-password", false, 2}, // a wrong password always costs a full check
		{h1, "wrong-password", false, 3}, // and is never cached
		{h1, "correct-pass-2", false, 4}, // another user's password is not this one's
		{h2, "correct-pass-1", false, 5}, // the password changed: the old one fails
		{h2, "correct-pass-2", true, 6},
		{h2, "correct-pass-2", true, 6},
		{h1, "correct-pass-1", true, 6}, // h1's entry still there (a user with h1)
		{[]byte("garbage"), "correct-pass-1", false, 7},
	}
	for i, s := range steps {
		if got := c.check(s.stored, s.pw); got != s.ok {
			t.Fatalf("step %d: check(%q) = %v, want %v", i, s.pw, got, s.ok)
		}
		if full != s.full {
			t.Fatalf("step %d: %d full checks, want %d", i, full, s.full)
		}
	}
	for k := range c.m {
		if k == "correct-pass-1" || k == "correct-pass-2" {
			t.Fatal("a plaintext password is a cache key")
		}
	}
}

func TestAuthCacheBounded(t *testing.T) {
	c := newAuthCache()
	c.verify = func([]byte, string) bool { return true }
	for i := 0; i < authCacheEntries*2+5; i++ {
		c.check([]byte{byte(i), byte(i >> 8), byte(i >> 16)}, "pw")
		if len(c.m) > authCacheEntries {
			t.Fatalf("cache holds %d entries, bound %d", len(c.m), authCacheEntries)
		}
	}
}

// BenchmarkPasswordCheck compares a full argon2id check with a cached one.
func BenchmarkPasswordCheck(b *testing.B) {
	h, err := HashPassword("correct-pass-1")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			if !CheckPassword(h, "correct-pass-1") {
				b.Fatal("refused")
			}
		}
	})
	b.Run("cached", func(b *testing.B) {
		c := newAuthCache()
		for b.Loop() {
			if !c.check(h, "correct-pass-1") {
				b.Fatal("refused")
			}
		}
	})
}
