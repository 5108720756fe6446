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

func TestServeNeedsTLSMaterialUnlessInsecureDev(t *testing.T) {
	base := func() Config {
		c := Defaults()
		c.ID, c.Site, c.DataDir = "n1", "a", t.TempDir()
		c.RaftAddr, c.GRPCAddr, c.GossipAddr = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"
		return c
	}
	c := base()
	err := c.Validate()
	for _, want := range []string{"cluster-ca, node-cert and node-key are required", "cluster-key-file is required"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("no TLS material: err = %v, want it to say %q", err, want)
		}
	}
	c = base()
	c.InsecureDev = true
	if err := c.Validate(); err != nil {
		t.Errorf("insecure-dev: %v", err)
	}
	c = base()
	c.ClusterCA, c.NodeCert, c.NodeKey = "ca.pem", "n.pem", "n-key.pem"
	c.ClusterKey = "MDEyMzQ1Njc4OWFiY2RlZg=="
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "inline is for --insecure-dev only") {
		t.Errorf("inline gossip key outside insecure-dev: err = %v", err)
	}
	// The key file's mode is checked when it is read.
	p := filepath.Join(t.TempDir(), "gossip.key")
	os.WriteFile(p, []byte("MDEyMzQ1Njc4OWFiY2RlZg==\n"), 0o644)
	c.ClusterKey, c.ClusterKeyFile = "", p
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GossipKey(); err == nil || !strings.Contains(err.Error(), "readable by group or others") {
		t.Errorf("world-readable gossip key: err = %v", err)
	}
	os.Chmod(p, 0o600)
	if k, err := c.GossipKey(); err != nil || len(k) != 16 {
		t.Errorf("GossipKey = %d bytes, %v", len(k), err)
	}
}
