// Package systemd holds the systemd unit and the test that checks it.
package systemd

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnit checks the hardening the operator's guide promises, then runs
// `systemd-analyze verify` on the unit (with ExecStart pointed at a real
// file, which verify requires) when the tool is installed.
func TestUnit(t *testing.T) {
	b, err := os.ReadFile("continuum.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(b)
	for _, want := range []string{
		"User=continuum", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
		"ReadWritePaths=/var/lib/continuum", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
		"ExecStart=/usr/local/bin/continuum serve --config /etc/continuum/continuum.toml",
	} {
		if !strings.Contains(unit, "\n"+want+"\n") {
			t.Errorf("unit lacks %q", want)
		}
	}
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed; the properties above were checked")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "continuum")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit = strings.ReplaceAll(unit, "/usr/local/bin/continuum", bin)
	path := filepath.Join(dir, "continuum.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", path).CombinedOutput()
	// verify also reports on units the host lacks (no systemd running in
	// a container); only lines about this unit count.
	var bad []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "continuum.service") {
			bad = append(bad, l)
		}
	}
	if len(bad) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, strings.Join(bad, "\n"))
	}
	t.Logf("systemd-analyze verify: %v %s", err, strings.TrimSpace(string(out)))
}
