package node_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// The layering (docs/ARCHITECTURE.md §7), as rules over the non-test imports
// of every package in the module: imports point downward only,
//
//	cmd → node → node/* → raftfsm → storage,  proto/* below all,
//
// and the protocol frontends (smtpd, imapd) import node/mail and nothing
// else of the node. `make lint` and `make test` run it; a violation says
// what to do instead.

const module = "github.com/continuum-mail/continuum/"

// rule forbids packages matching from importing packages matching to, or,
// when only is set, any package of the module that does not match only.
type rule struct {
	// Package patterns relative to the module: "node/" is every package
	// under node, "=node" the package node alone, "raftfsm" raftfsm and
	// its subpackages; a pattern with a dot is a foreign module path.
	from, to []string
	only     []string // the module's packages from may import (an allow-list)
	except   []string // packages under from that may (test harnesses, wiring)
	instead  string
}

var rules = []rule{
	{from: []string{"storage"}, to: []string{"node", "raftfsm", "cmd"},
		instead: "storage is the bottom layer: pass what it needs in as arguments or Options"},
	{from: []string{"raftfsm"}, to: []string{"node", "cmd", "github.com/hashicorp/memberlist", "google.golang.org/grpc"},
		instead: "raftfsm is deterministic and knows nothing of nodes or the network: move the logic up into node/mail or node"},
	{from: []string{"proto"}, to: []string{"node", "raftfsm", "storage", "cmd"},
		instead: "protobuf packages are leaves: they import only other proto packages"},
	{from: []string{"node/"}, to: []string{"=node", "cmd"}, except: []string{"node/nodetest", "node/clustertest"},
		instead: "node/* packages are wired by package node, never the other way: take an interface or a func in Options"},
	{from: []string{"node/smtpd", "node/imapd", "node/admin", "node/httpapi"},
		to:      []string{"=raftfsm", "storage", "node/consensus", "node/peer", "github.com/hashicorp/raft", "github.com/cockroachdb/pebble"},
		instead: "frontends reach the store through node/mail (add the operation there)"},
	// proto/storagepb stays allowed: the records are the replicated state's
	// vocabulary, and node/mail hands them out (node/mail/doc.go "Records").
	{from: []string{"node/smtpd", "node/imapd"},
		only:    []string{"node/smtpd", "node/imapd", "node/mail", "node/loginguard", "raftfsm/canon", "proto"},
		instead: "protocol frontends import node/mail and nothing else of the node (add a method to node/mail, or to its View for reads)"},
	{from: []string{"node/mail"}, to: []string{"node/smtpd", "node/imapd", "node/admin", "node/httpapi"},
		instead: "node/mail is below the frontends"},
	{from: []string{"node/"}, to: []string{"github.com/hashicorp/raft"},
		except:  []string{"node/cluster", "node/consensus", "node/nodetest", "node/clustertest"},
		instead: "configuration changes are node/cluster's decisions and Raft is node/consensus's: call one of them (add a method there)"},
	{from: []string{"storage/failpoint"}, to: []string{"node", "raftfsm", "=storage", "storage/raftlog", "storage/scrub", "cmd", "proto"},
		instead: "storage/failpoint is a leaf every layer may call: it knows no package of the module"},
	{from: []string{"raftfsm/canon"}, to: []string{"node", "=raftfsm", "storage", "cmd", "proto"},
		instead: "raftfsm/canon is a leaf (the state machine's name rules, standard library only): move what it would need into it, or the caller"},
	{from: []string{"node/peer"}, to: []string{"raftfsm", "storage", "node/mail"},
		instead: "node/peer is gRPC plumbing: proposing (stamp, encode, apply, unwrap) is node/propose's, the codec raftfsm's; take an interface"},
	{from: []string{"node/cluster"}, to: []string{"node/peer", "node/admin", "node/mail", "node/smtpd", "node/imapd", "node/httpapi", "raftfsm", "storage"},
		instead: "node/cluster is membership policy only: reach other nodes through its Peers interface, and leave mail and storage to node/mail"},
}

// knownViolations are imports that break a rule today, each with the issue
// that removes it. The test fails on any other violation, and on an entry
// here that no longer occurs (delete it then). Empty since imapd reads
// through mail.View.
var knownViolations = map[string]string{}

func matches(pkg string, prefixes []string) bool {
	for _, p := range prefixes {
		if exact, ok := strings.CutPrefix(p, "="); ok {
			if pkg == module+exact {
				return true
			}
			continue
		}
		full := p
		if !strings.Contains(p, ".") { // a module path
			full = module + p
		}
		if strings.HasSuffix(p, "/") {
			if strings.HasPrefix(pkg, full) {
				return true
			}
			continue
		}
		if pkg == full || strings.HasPrefix(pkg, full+"/") {
			return true
		}
	}
	return false
}

// breaks reports whether pkg importing imp breaks r.
func (r rule) breaks(pkg, imp string) bool {
	if imp == pkg || !matches(pkg, r.from) || matches(pkg, r.except) {
		return false
	}
	if r.only != nil {
		return strings.HasPrefix(imp, module) && !matches(imp, r.only)
	}
	return matches(imp, r.to)
}

// violations checks an import graph (package → its non-test imports): one
// line per bad import, with the advice of the first rule it breaks.
func violations(graph map[string][]string) []string {
	var out []string
	for pkg, imports := range graph {
		for _, imp := range imports {
			for _, r := range rules {
				if r.breaks(pkg, imp) {
					out = append(out, fmt.Sprintf("%s -> %s: %s", strings.TrimPrefix(pkg, module), strings.TrimPrefix(imp, module), r.instead))
					break
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func moduleGraph(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports", "github.com/continuum-mail/continuum/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		graph[p.ImportPath] = p.Imports
	}
	if len(graph) < 10 {
		t.Fatalf("go list found %d packages", len(graph))
	}
	return graph
}

func TestLayering(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range violations(moduleGraph(t)) {
		key := v[:strings.Index(v, ":")]
		if _, ok := knownViolations[key]; ok {
			seen[key] = true
			continue
		}
		t.Errorf("layering: %s", v)
	}
	for k, why := range knownViolations {
		if !seen[k] {
			t.Errorf("known violation %q (%s) no longer occurs: delete it from knownViolations", k, why)
		}
	}
}

// TestLayeringCatchesAPlantedImport: the checker reports bad imports of
// each kind with the advice, and passes a graph that keeps the rules.
func TestLayeringCatchesAPlantedImport(t *testing.T) {
	good := map[string][]string{
		module + "cmd/continuum":     {module + "node"},
		module + "node":              {module + "node/mail", module + "raftfsm", module + "storage"},
		module + "node/smtpd":        {module + "node/mail", "github.com/emersion/go-smtp"},
		module + "node/mail":         {module + "raftfsm", module + "storage", module + "node/consensus"},
		module + "node/cluster":      {module + "node/consensus", module + "node/membership", "github.com/hashicorp/raft"},
		module + "node/peer":         {module + "node/cluster", module + "node/consensus"},
		module + "raftfsm":           {module + "storage", module + "proto/commandpb", module + "raftfsm/canon"},
		module + "raftfsm/canon":     {"strings", "unicode/utf8"},
		module + "storage/failpoint": {"net", "os"},
		module + "node/imapd":        {module + "node/mail", module + "node/mail/mimeparse", module + "raftfsm/canon", module + "proto/storagepb", module + "node/imapd/wire", "github.com/emersion/go-imap/v2"},
		module + "storage":           {"github.com/cockroachdb/pebble/v2"},
	}
	if v := violations(good); len(v) != 0 {
		t.Fatalf("a graph that keeps the rules: %v", v)
	}
	planted := []struct{ from, to, want string }{
		{"node/smtpd", "storage", "through node/mail"},
		{"node/imapd", "github.com/cockroachdb/pebble/v2", "through node/mail"},
		{"raftfsm", "node/mail", "deterministic"},
		{"storage", "raftfsm", "bottom layer"},
		{"node/mail", "node", "wired by package node"},
		{"proto/commandpb", "storage", "leaves"},
		{"node/peer", "github.com/hashicorp/raft", "node/cluster's decisions"},
		{"node/cluster", "node/peer", "Peers interface"},
		{"node/peer", "raftfsm", "gRPC plumbing"},
		{"raftfsm/canon", "storage", "leaf"},
		{"storage/failpoint", "storage/raftlog", "leaf every layer"},
		{"node/imapd", "node/propose", "nothing else of the node"},
		{"node/smtpd", "node/search", "nothing else of the node"},
		{"node/imapd", "raftfsm", "through node/mail"},
	}
	for _, p := range planted {
		g := map[string][]string{}
		for k, v := range good {
			g[k] = v
		}
		to := p.to
		if !strings.Contains(to, ".") {
			to = module + to
		}
		g[module+p.from] = append(append([]string(nil), g[module+p.from]...), to)
		v := violations(g)
		if len(v) != 1 || !strings.Contains(v[0], p.want) {
			t.Errorf("planted %s -> %s: got %v, want one violation saying %q", p.from, p.to, v, p.want)
		}
	}
}
