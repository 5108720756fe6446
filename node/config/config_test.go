package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExampleConfigLoadsAndValidates(t *testing.T) {
	c := Defaults()
	if err := Load("../../deploy/continuum.toml", &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("deploy/continuum.toml does not validate: %v", err)
	}
	if c.ID != "n1" || c.RaftProfile != "wan" || len(c.Join) != 2 || c.ProtocolTimeout.Minutes() != 5 {
		t.Errorf("loaded %+v", c)
	}
}

func TestUnknownKeyIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte("id = \"n1\"\nsmpt = \":25\"\n"), 0o600)
	c := Defaults()
	err := Load(p, &c)
	if err == nil || !strings.Contains(err.Error(), "smpt") {
		t.Fatalf("Load with a misspelt key: err = %v, want one naming it", err)
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := Defaults()
	c.ID = "bad id!"
	c.Role = "boss"
	c.RaftProfile = "moon"
	c.MaxRecipients = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad configuration")
	}
	for _, want := range []string{"id", "role", "site", "data", "raft-profile", "max-recipients", "raft: an address"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
