// Package deploy_test checks the monitoring files under deploy/: the
// Prometheus alert rules (with promtool when it is installed, and always
// with a parser) and the Grafana dashboard, and that every metric they name
// is exported by a running node.
package deploy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/continuum-mail/continuum/node/nodetest"
)

const (
	rulesFile     = "prometheus/continuum-alerts.yml"
	rulesTestFile = "prometheus/continuum-alerts_test.yml"
	rulesLongTest = "prometheus/continuum-alerts_long_test.yml"
	promConfig    = "prometheus/prometheus.yml"
	dashboardFile = "grafana/continuum.json"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadRules(t *testing.T) ruleFile {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	return rf
}

// TestAlertRulesPromtool runs promtool over the rules, their unit tests
// (every alert fires on its series, a healthy cluster raises none) and the
// example configuration. .ci/run installs it (Debian package prometheus).
func TestAlertRulesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (apt-get install prometheus): the rules are checked by TestAlertRulesParse only")
	}
	for _, args := range [][]string{
		{"check", "rules", rulesFile},
		{"test", "rules", rulesTestFile, rulesLongTest},
		{"check", "config", promConfig},
	} {
		out, err := exec.Command(promtool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestAlertRulesParse checks the rules' shape without promtool: every
// rule is an alert with an expression, a severity and a summary, names are
// unique, and the alerts the operator's issue asks for are there.
func TestAlertRulesParse(t *testing.T) {
	rf := loadRules(t)
	seen := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			switch {
			case r.Alert == "":
				t.Errorf("group %s: a rule without an alert name (record %q)", g.Name, r.Record)
			case seen[r.Alert]:
				t.Errorf("alert %s defined twice", r.Alert)
			case strings.TrimSpace(r.Expr) == "":
				t.Errorf("alert %s: no expression", r.Alert)
			case r.Labels["severity"] != "warning" && r.Labels["severity"] != "critical":
				t.Errorf("alert %s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "":
				t.Errorf("alert %s: no summary", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alert %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			seen[r.Alert] = true
		}
	}
	for _, want := range []string{
		"ContinuumNoLeader", "ContinuumApplyLag", "ContinuumFollowerBehind", "ContinuumFaultToleranceZero",
		"ContinuumDiskLow", "ContinuumDeliveryErrors", "ContinuumQuarantined", "ContinuumReplicasDisagree",
	} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

type dashboard struct {
	Title      string `json:"title"`
	UID        string `json:"uid"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ H, W, X, Y int } `json:"gridPos"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// TestDashboardShape: unique panel IDs, every panel inside the 24-column
// grid, every query on the selectable data source.
func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard: title %q, uid %q", d.Title, d.UID)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] || !vars["job"] {
		t.Errorf("dashboard variables %v: want datasource and job", vars)
	}
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel %q: id %d used twice", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %+v, want ${datasource}", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q: no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if !strings.Contains(q.Expr, `job="$job"`) {
				t.Errorf("panel %q: query %q does not select job=\"$job\"", p.Title, q.Expr)
			}
		}
	}
	if queries < 20 {
		t.Errorf("dashboard has %d queries; it should cover raft, mail, storage and integrity", queries)
	}
}

var metricName = regexp.MustCompile(`\bcontinuum_[a-zA-Z0-9_]+`)

// TestMonitoringMetricsExported starts a cluster and checks that every
// continuum_ metric named by the alert rules and the dashboard is in a
// node's /metrics: a renamed metric breaks this test, not an alert in
// production.
func TestMonitoringMetricsExported(t *testing.T) {
	named := map[string][]string{} // metric → where
	for _, g := range loadRules(t).Groups {
		for _, r := range g.Rules {
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				named[m] = append(named[m], "alert "+r.Alert)
			}
		}
	}
	for _, p := range loadDashboard(t).Panels {
		for _, q := range p.Targets {
			for _, m := range metricName.FindAllString(q.Expr, -1) {
				named[m] = append(named[m], "panel "+p.Title)
			}
		}
	}
	if len(named) < 15 {
		t.Fatalf("only %d metrics named: %v", len(named), named)
	}

	c := nodetest.Start(t, nodetest.Options{Nodes: 3, Protocols: true})
	c.WaitLeader(10 * time.Second)
	exported := map[string]bool{}
	var missing []string
	// The cluster figures need a cluster view: poll until they come.
	c.Eventually(15*time.Second, "every named metric on /metrics", func() bool {
		resp, err := http.Get("http://" + c.Cfgs[0].HTTPAddr + "/metrics")
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if line == "" || line[0] == '#' {
				continue
			}
			if i := strings.IndexAny(line, "{ "); i > 0 {
				exported[line[:i]] = true
			}
		}
		missing = missing[:0]
		for m := range named {
			if !exported[m] {
				missing = append(missing, m)
			}
		}
		return len(missing) == 0
	})
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("%s (named by %s) is not exported", m, strings.Join(slices.Compact(named[m]), ", "))
	}
}
