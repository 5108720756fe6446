package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/continuum-mail/continuum/node/identity"
	"github.com/continuum-mail/continuum/node/mail"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
)

func TestWriteMboxMessageQuotesFromLines(t *testing.T) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	h := &adminpb.ArchiveHit{From: "a@example.test", InternalDateUnix: 0}
	msg := "Subject: x\r\n\r\nFrom here on\r\n>From quoted\r\nnot From\r\n"
	if err := writeMboxMessage(w, h, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	want := "From a@example.test Thu Jan  1 00:00:00 1970\n" +
		"Subject: x\r\n\r\n>From here on\r\n>>From quoted\r\nnot From\r\n\n"
	if got := buf.String(); got != want {
		t.Errorf("mbox:\n%q\nwant\n%q", got, want)
	}
}

func TestParseDate(t *testing.T) {
	for _, tc := range []struct {
		in    string
		end   bool
		want  int64
		isErr bool
	}{
		{"", false, 0, false},
		{"2026-01-02", false, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).Unix(), false},
		{"2026-01-02", true, time.Date(2026, 1, 2, 23, 59, 59, 0, time.UTC).Unix(), false},
		{"2026-01-02T10:00:00Z", true, time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC).Unix(), false},
		{"yesterday", false, 0, true},
	} {
		got, err := parseDate(tc.in, tc.end)
		if (err != nil) != tc.isErr || got != tc.want {
			t.Errorf("parseDate(%q, %v) = %d, %v; want %d (error %v)", tc.in, tc.end, got, err, tc.want, tc.isErr)
		}
	}
}

// TestArchiveCommands drives the operator's commands against an in-process
// 3-node cluster: hold and retention, search, export with its manifest,
// audit list, verify --all, and verify --data on a stopped node's copy.
func TestArchiveCommands(t *testing.T) {
	c := nodetest.Start(t, nodetest.Options{NoSync: true})
	defer c.Close()
	server := c.Cfgs[1].AdminAddr
	ca, _ := identity.CAFiles(c.TLSDir)
	cert, key := identity.AdminFiles(c.TLSDir, "test")
	creds := adminCreds{CA: ca, Cert: cert, Key: key}
	run := func(f func([]string) error, args ...string) {
		t.Helper()
		if err := f(append(args, "--server", server, "--ca", ca, "--cert", cert, "--key", key)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	ctx := c.Ctx(30 * time.Second)
	m := c.Nodes[0].Mail()
	if err := m.AddDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice@example.test", "bob@example.test"} {
		if _, err := m.AddUser(ctx, u, "pw-123456", 0); err != nil {
			t.Fatal(err)
		}
		msg := []byte("From: x@remote.test\r\nSubject: for " + u + "\r\n\r\nFrom the desk of the auditor: pelican\r\n")
		if _, err := m.Deliver(ctx, mail.Envelope{From: "x@remote.test", To: []string{u}}, msg, msg); err != nil {
			t.Fatal(err)
		}
	}
	run(runHold, "place", "--user", "alice@example.test", "--reason", "matter 1")
	run(runHold, "list")
	run(runRetention, "set", "--domain", "example.test", "--days", "30")
	run(runRetention, "list")
	run(runRetention, "run")
	run(runArchive, "search", "--query", "pelican", "--json")
	out := filepath.Join(t.TempDir(), "export.mbox")
	run(runArchive, "export", "--query", "PELICAN", "--format", "mbox", "--out", out)
	var man manifest
	b, err := os.ReadFile(out + ".manifest.json")
	if err != nil || json.Unmarshal(b, &man) != nil || len(man.Messages) != 2 {
		t.Fatalf("manifest: %v %s", err, b)
	}
	mbox, _ := os.ReadFile(out)
	if sum := sha256.Sum256(mbox); hex.EncodeToString(sum[:]) != man.MboxSHA256 {
		t.Fatal("the manifest's mbox digest is not the file's")
	}
	if !bytes.Contains(mbox, []byte("\n>From the desk")) {
		t.Fatalf("mbox body line starting with From not quoted:\n%s", mbox)
	}
	run(runAudit, "list", "--json")
	res, err := adminpb.NewAdminClient(dialMust(t, server, creds)).AuditList(ctx, &adminpb.AuditListRequest{})
	if err != nil || len(res.Entries) < 5 || res.Entries[0].Action != "archive export" || res.Entries[0].Index != man.AuditIndex {
		t.Fatalf("audit list: %v %v (manifest names audit index %d)", res, err, man.AuditIndex)
	}
	run(runArchive, "verify", "--all", "--servers", c.Cfgs[0].AdminAddr+","+c.Cfgs[1].AdminAddr+","+c.Cfgs[2].AdminAddr)

	c.StopNode(2)
	if err := runArchive([]string{"verify", "--data", c.Cfgs[2].DataDir}); err != nil {
		t.Fatalf("verify --data on a clean stopped node: %v", err)
	}
}

func dialMust(t *testing.T, addr string, creds adminCreds) *grpc.ClientConn {
	t.Helper()
	conn, err := dialAdmin(addr, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
