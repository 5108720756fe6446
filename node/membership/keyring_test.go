package membership

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/memberlist"
)

// TestKeyringFileRoundTrip: the saved ring loads back with the primary
// first, mode 0600; a damaged file is an error, a missing one is not.
func TestKeyringFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gossip-keyring")
	a, b := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 16)
	kr, err := memberlist.NewKeyring([][]byte{a}, b)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := loadKeyring(path); err != nil || keys != nil {
		t.Fatalf("no file: %v, %v; want nil, nil", keys, err)
	}
	if err := saveKeyring(path, kr); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring file mode: %v, %v; want 0600", fi.Mode(), err)
	}
	keys, err := loadKeyring(path)
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[0], b) || !bytes.Equal(keys[1], a) {
		t.Fatalf("loaded %x, %v; want primary %x then %x", keys, err, b, a)
	}
	os.Chmod(path, 0o644)
	if _, err := loadKeyring(path); err == nil {
		t.Error("a keyring file readable by others loaded without error")
	}
	os.Chmod(path, 0o600)
	for _, bad := range []string{"", "{}", `{"keys":[]}`, "not json"} {
		os.WriteFile(path, []byte(bad), 0o600)
		if _, err := loadKeyring(path); err == nil {
			t.Errorf("keyring file %q loaded without error", bad)
		}
	}
	if Fingerprint(a) == Fingerprint(b) || len(Fingerprint(a)) != 16 {
		t.Errorf("fingerprints %s, %s", Fingerprint(a), Fingerprint(b))
	}
}
