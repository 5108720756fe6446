// Package kubernetes holds the Kubernetes manifests (continuum.yaml) and the
// test that checks the properties the operator's guide promises of them.
package kubernetes

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/continuum-mail/continuum/node/config"
)

type object map[string]any

func (o object) get(path ...string) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func (o object) str(path ...string) string { s, _ := o.get(path...).(string); return s }

func load(t *testing.T) map[string]object {
	t.Helper()
	b, err := os.ReadFile("continuum.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]object{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("continuum.yaml: %v", err)
		}
		if m == nil {
			continue
		}
		o := object(m)
		key := o.str("kind") + "/" + o.str("metadata", "name")
		if _, dup := out[key]; dup {
			t.Errorf("%s defined twice", key)
		}
		out[key] = o
	}
	return out
}

func list(v any) []any { l, _ := v.([]any); return l }

func TestManifests(t *testing.T) {
	objs := load(t)
	sts, ok := objs["StatefulSet/continuum"]
	if !ok {
		t.Fatalf("no StatefulSet/continuum among %d objects", len(objs))
	}
	replicas, _ := sts.get("spec", "replicas").(int)
	if replicas < 3 || replicas%2 == 0 {
		t.Errorf("replicas %d: want an odd number, at least 3", replicas)
	}

	// Spread across zones, one voter per zone (site).
	spread := false
	for _, c := range list(sts.get("spec", "template", "spec", "topologySpreadConstraints")) {
		m := object(c.(map[string]any))
		if m.str("topologyKey") == "topology.kubernetes.io/zone" && m.str("whenUnsatisfiable") == "DoNotSchedule" && m.get("maxSkew") == 1 {
			spread = true
		}
	}
	if !spread {
		t.Error("no hard topology spread across zones (topology.kubernetes.io/zone, maxSkew 1, DoNotSchedule)")
	}

	// Headless peer Service.
	if h, ok := objs["Service/continuum-peers"]; !ok || h.str("spec", "clusterIP") != "None" {
		t.Error("no headless Service continuum-peers (clusterIP: None)")
	} else if sts.str("spec", "serviceName") != "continuum-peers" {
		t.Errorf("StatefulSet serviceName %q, want continuum-peers", sts.str("spec", "serviceName"))
	}
	// A Service for each mail protocol.
	ports := map[int]string{}
	for k, o := range objs {
		if !strings.HasPrefix(k, "Service/") {
			continue
		}
		for _, p := range list(o.get("spec", "ports")) {
			m := object(p.(map[string]any))
			if n, ok := m.get("port").(int); ok {
				ports[n] = k
			}
		}
	}
	for port, what := range map[int]string{25: "SMTP", 24: "LMTP", 143: "IMAP", 993: "IMAPS"} {
		if ports[port] == "" {
			t.Errorf("no Service publishes %s (port %d)", what, port)
		}
	}

	// At most one voter away at a time.
	if pdb, ok := objs["PodDisruptionBudget/continuum"]; !ok || pdb.get("spec", "maxUnavailable") != 1 {
		t.Error("no PodDisruptionBudget with maxUnavailable: 1")
	}

	containers := list(sts.get("spec", "template", "spec", "containers"))
	if len(containers) != 1 {
		t.Fatalf("%d containers, want 1", len(containers))
	}
	c := object(containers[0].(map[string]any))
	if c.str("readinessProbe", "httpGet", "path") != "/readyz" {
		t.Errorf("readiness probe %q, want /readyz", c.str("readinessProbe", "httpGet", "path"))
	}
	if c.str("livenessProbe", "httpGet", "path") != "/healthz" {
		t.Errorf("liveness probe %q, want /healthz", c.str("livenessProbe", "httpGet", "path"))
	}

	// The container's command line is one `continuum serve` accepts, over
	// the ConfigMap's file, with bootstrap-expect equal to the replicas.
	args := list(c.get("args"))
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("args %v: want serve ...", args)
	}
	cm, ok := objs["ConfigMap/continuum"]
	if !ok {
		t.Fatal("no ConfigMap/continuum")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "continuum.toml")
	if err := os.WriteFile(file, []byte(cm.str("data", "continuum.toml")), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	if err := config.Load(file, &cfg); err != nil {
		t.Fatalf("the ConfigMap's continuum.toml: %v", err)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.String("config", "", "")
	cfg.RegisterFlags(fs)
	env := strings.NewReplacer("$(POD_NAME)", "continuum-0", "$(POD_NAMESPACE)", "mail")
	var flags []string
	for _, a := range args[1:] {
		flags = append(flags, env.Replace(a.(string)))
	}
	if err := fs.Parse(flags); err != nil {
		t.Fatalf("serve flags %v: %v", flags, err)
	}
	if got := fs.Lookup("bootstrap-expect"); got == nil || got.Value.String() != strconv.Itoa(replicas) {
		t.Errorf("bootstrap-expect %v, want the replica count %d", got, replicas)
	}
	if cfg.ClusterCA == "" || cfg.NodeCert != "/tls/node-continuum-0.pem" || cfg.ClusterKeyFile == "" || cfg.InsecureDev {
		t.Errorf("TLS material: ca %q, cert %q, gossip key %q, insecure %v; want each pod's own certificate and the gossip key file",
			cfg.ClusterCA, cfg.NodeCert, cfg.ClusterKeyFile, cfg.InsecureDev)
	}
	inits := list(sts.get("spec", "template", "spec", "initContainers"))
	if len(inits) != 1 || !strings.Contains(fmt.Sprint(object(inits[0].(map[string]any)).get("args")), "install") {
		t.Errorf("init containers %v: want the tls install step (Secret modes are group-readable under fsGroup)", inits)
	}
	if cfg.ID != "continuum-0" || cfg.Site == "" || len(cfg.Join) != replicas {
		t.Errorf("id %q, site %q, %d join addresses; want the pod name, a site, every replica", cfg.ID, cfg.Site, len(cfg.Join))
	}
}
