package membership

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/hashicorp/memberlist"
)

// ErrNoKeyring: gossip runs unencrypted (insecure-dev), so there is no
// keyring to list or change.
var ErrNoKeyring = errors.New("membership: gossip is not encrypted (no cluster key)")

// Fingerprint names a key without revealing it: the first 8 bytes of its
// SHA-256, in hex.
func Fingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// Keys returns the fingerprints of the primary key (the one gossip is
// encrypted with) and of every key (the primary included) that incoming
// gossip may be encrypted with.
func (p *Pool) Keys() (primary string, all []string, err error) {
	if p.keyring == nil {
		return "", nil, ErrNoKeyring
	}
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	for _, k := range p.keyring.GetKeys() {
		all = append(all, Fingerprint(k))
	}
	return Fingerprint(p.keyring.GetPrimaryKey()), all, nil
}

// InstallKey adds key to the keyring: gossip encrypted with it is
// accepted from now on; this node still encrypts with the primary.
func (p *Pool) InstallKey(key []byte) error {
	return p.changeKeys(func() error { return p.keyring.AddKey(key) })
}

// UseKey makes an installed key the primary.
func (p *Pool) UseKey(key []byte) error {
	return p.changeKeys(func() error { return p.keyring.UseKey(key) })
}

// RemoveKey drops a key that is not the primary.
func (p *Pool) RemoveKey(key []byte) error {
	return p.changeKeys(func() error { return p.keyring.RemoveKey(key) })
}

func (p *Pool) changeKeys(change func() error) error {
	if p.keyring == nil {
		return ErrNoKeyring
	}
	p.keyMu.Lock()
	defer p.keyMu.Unlock()
	if err := change(); err != nil {
		return fmt.Errorf("membership: %w", err)
	}
	return saveKeyring(p.cfg.KeyringFile, p.keyring)
}

// keyringFile is the persisted keyring: the primary first.
type keyringFile struct {
	Keys [][]byte `json:"keys"`
}

// loadKeyring reads path; nil, nil when there is no such file (or no path).
func loadKeyring(path string) ([][]byte, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("membership: keyring: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("membership: keyring %s has mode %v: group or others can read the gossip keys (chmod 600 it)", path, fi.Mode().Perm())
	}
	var f keyringFile
	if err := json.Unmarshal(b, &f); err != nil || len(f.Keys) == 0 {
		return nil, fmt.Errorf("membership: keyring %s: not a keyring file (%v)", path, err)
	}
	return f.Keys, nil
}

// saveKeyring writes kr to path (primary first), through a rename so a
// crash leaves the old or the new file, never half of one.
func saveKeyring(path string, kr *memberlist.Keyring) error {
	if path == "" {
		return nil
	}
	primary := kr.GetPrimaryKey()
	f := keyringFile{Keys: [][]byte{primary}}
	for _, k := range kr.GetKeys() {
		if !bytes.Equal(k, primary) {
			f.Keys = append(f.Keys, k)
		}
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(path, b, true); err != nil {
		return fmt.Errorf("membership: keyring: %w", err)
	}
	return nil
}
