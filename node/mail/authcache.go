package mail

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
)

// A cache of passwords verified a moment ago, as Dovecot's auth_cache: a
// client that logs in for every sync (mbsync, many phones) would otherwise
// pay a full argon2id check (tens of ms of CPU, by design) each time; under
// a 20-client mixed load the checks were 35–42% of a node's CPU.
//
// An entry is keyed by the stored hash (salted, so it names one user's one
// password) and holds an HMAC-SHA256 of the password under a key drawn at
// start and never stored: the plaintext is never kept, and an entry is
// useless once the password changes (the stored hash changes with it) or
// the process ends. Only successful checks are cached: a wrong password,
// an unknown or disabled user always costs a full check, so guessing stays
// as slow as before and timing tells an attacker nothing a refusal does
// not. The cache is per node and never replicated.
type authCache struct {
	key    []byte
	verify func(stored []byte, password string) bool // CheckPassword
	mu     sync.Mutex
	m      map[string][sha256.Size]byte
}

// authCacheEntries bounds the cache; when full it is emptied (the next
// logins pay one full check each to refill it).
const authCacheEntries = 10000

func newAuthCache() *authCache {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		panic("mail: no randomness for the auth cache key: " + err.Error())
	}
	return &authCache{key: key, verify: CheckPassword, m: make(map[string][sha256.Size]byte)}
}

func (c *authCache) mac(password string) [sha256.Size]byte {
	h := hmac.New(sha256.New, c.key)
	h.Write([]byte(password))
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// check verifies password against stored, from the cache when it holds a
// success for this stored hash, else with CheckPassword.
func (c *authCache) check(stored []byte, password string) bool {
	mac := c.mac(password)
	c.mu.Lock()
	cached, ok := c.m[string(stored)]
	c.mu.Unlock()
	if ok && hmac.Equal(cached[:], mac[:]) {
		return true
	}
	if !c.verify(stored, password) {
		return false
	}
	c.mu.Lock()
	if len(c.m) >= authCacheEntries {
		clear(c.m)
	}
	c.m[string(stored)] = mac
	c.mu.Unlock()
	return true
}
