package migrate

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/continuum-mail/continuum/node/config"
	"github.com/continuum-mail/continuum/node/nodetest"
	"github.com/continuum-mail/continuum/proto/adminpb"
	"github.com/continuum-mail/continuum/proto/storagepb"
)

// scale returns full when CONTINUUM_MIGRATE_FULL is set (make
// test-migrate), else small: make test keeps the scaled-down runs short.
func scale(small, full int) int {
	if os.Getenv("CONTINUUM_MIGRATE_FULL") != "" {
		return full
	}
	return small
}

// realisticMessage is about size bytes of mail as it is: headers, a text
// part and a base64 attachment of random (incompressible) bytes, with a
// unique Message-ID.
func realisticMessage(r *rand.Rand, id string, size int, date time.Time) []byte {
	words := []string{"the", "cluster", "replicates", "every", "message", "to", "a", "majority", "of", "sites", "before", "it",
		"answers", "mail", "server", "import", "Dovecot", "mailbox", "quorum", "leader", "follower", "log", "entry"}
	var text strings.Builder
	for text.Len() < size/6 {
		text.WriteString(words[r.IntN(len(words))])
		if r.IntN(12) == 0 {
			text.WriteString(".\r\n")
		} else {
			text.WriteByte(' ')
		}
	}
	raw := make([]byte, max(size*3/5, 16))
	for i := range raw {
		raw[i] = byte(r.Uint32())
	}
	b64 := base64.StdEncoding.EncodeToString(raw)
	var att strings.Builder
	for len(b64) > 76 {
		att.WriteString(b64[:76] + "\r\n")
		b64 = b64[76:]
	}
	att.WriteString(b64 + "\r\n")
	return []byte(fmt.Sprintf("From: Sender %[1]s <sender-%[1]s@remote.test>\r\nTo: user@example.test\r\nSubject: message %[1]s\r\n"+
		"Date: %[2]s\r\nMessage-ID: <%[1]s.%[3]d@remote.test>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b-%[1]s\"\r\n\r\n"+
		"--b-%[1]s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%[4]s\r\n"+
		"--b-%[1]s\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"+
		"Content-Disposition: attachment; filename=\"data-%[1]s.bin\"\r\n\r\n%[5]s--b-%[1]s--\r\n",
		id, date.Format(time.RFC1123Z), r.Uint64(), text.String(), att.String()))
}

var flagChoices = [][]string{nil, {`\Seen`}, {`\Seen`, `\Answered`}, {`\Flagged`}, {`\Seen`, `\Flagged`, "$Label1"},
	{"Important", `\Answered`}, {`\Seen`, "$Forwarded", "project-x"}}

// fixture is a set of mailboxes with messages, as written to the source.
type fixture struct {
	boxes []string
	msgs  map[string][]*Message
}

func newFixture(seed uint64, boxes []string, n, size int) *fixture {
	r := rand.New(rand.NewPCG(seed, 1))
	f := &fixture{boxes: boxes, msgs: map[string][]*Message{}}
	for i := 0; i < n; i++ {
		b := boxes[i%len(boxes)]
		date := time.Date(1998+r.IntN(25), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC)
		id := fmt.Sprintf("%d-%d", seed, i)
		f.msgs[b] = append(f.msgs[b], &Message{Data: realisticMessage(r, id, size, date), Flags: flagChoices[r.IntN(len(flagChoices))], Date: date})
	}
	return f
}

func (f *fixture) write(t *testing.T, sink Sink) {
	t.Helper()
	for _, b := range f.boxes {
		if err := sink.Mailbox(Mailbox{Name: b}); err != nil {
			t.Fatal(err)
		}
		for _, m := range f.msgs[b] {
			if err := sink.Message(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
}

// storedMessage is what a node holds for one message.
type storedMessage struct {
	sum   [sha256.Size]byte
	flags string
	date  int64
}

func (s storedMessage) String() string {
	return fmt.Sprintf("%x %s %s", s.sum[:6], s.flags, time.Unix(s.date, 0).UTC().Format(time.DateTime))
}

func want(msgs []*Message) []storedMessage {
	var out []storedMessage
	for _, m := range msgs {
		out = append(out, storedMessage{sha256.Sum256(m.Data), strings.Join(sortedFlags(m.Flags), " "), m.Date.Unix()})
	}
	return out
}

// testCluster is a 3-node cluster with domain example.test and users.
type testCluster struct {
	*nodetest.Cluster
	clients []adminpb.AdminClient
}

func startCluster(t *testing.T, users ...string) *testCluster {
	t.Helper()
	return startClusterWith(t, nil, users...)
}

// startClusterWith is startCluster with each node's configuration edited
// first (configure may be nil).
func startClusterWith(t *testing.T, configure func(i int, c *config.Config), users ...string) *testCluster {
	t.Helper()
	c := nodetest.Start(t, nodetest.Options{Nodes: 3, Configure: configure})
	tc := &testCluster{Cluster: c}
	for i := range c.Cfgs {
		tc.clients = append(tc.clients, c.Admin(i)) // the admin listener, with the cluster's admin certificate
	}
	ctx := c.Ctx(30 * time.Second)
	m := c.Nodes[c.WaitLeader(10*time.Second)].Mail()
	if err := m.AddDomain(ctx, "example.test", ""); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if _, err := m.AddUser(ctx, u, "pass-"+u, 0); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

// follower is the admin client of a node that does not lead: imports
// through it are forwarded, as they will be in the field.
func (tc *testCluster) follower() adminpb.AdminClient {
	l := tc.Leader()
	return tc.clients[(l+1)%len(tc.clients)]
}

// stored reads user's mailboxes from node i.
func (tc *testCluster) stored(t *testing.T, i int, user string) map[string][]storedMessage {
	t.Helper()
	n := tc.Nodes[i]
	snap := n.DB().Snapshot()
	defer snap.Close()
	u, err := snap.UserByEmail(user)
	if err != nil {
		t.Fatalf("node %d: %s: %v", i, user, err)
	}
	boxes, err := snap.Mailboxes(u.Id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]storedMessage{}
	for _, b := range boxes {
		var rows []*storagepb.Message
		if err := snap.Messages(b.Id, 1, 0, func(m *storagepb.Message) error { rows = append(rows, m); return nil }); err != nil {
			t.Fatal(err)
		}
		for _, m := range rows {
			r, err := n.Mail().OpenBlob(m.Blob)
			if err != nil {
				t.Fatalf("node %d: %s uid %d: %v", i, b.Name, m.Uid, err)
			}
			h := sha256.New()
			io.Copy(h, r)
			r.Close()
			var sum [sha256.Size]byte
			h.Sum(sum[:0])
			out[b.Name] = append(out[b.Name], storedMessage{sum, strings.Join(sortedFlags(m.Flags), " "), m.InternalDateUnix})
		}
	}
	return out
}

// checkEveryNode compares user's mail on every node with the fixture:
// every message once, in order, with its bytes, flags and INTERNALDATE.
func (tc *testCluster) checkEveryNode(t *testing.T, user string, f *fixture) {
	t.Helper()
	tc.WaitConverged(60 * time.Second)
	for i := range tc.Nodes {
		got := tc.stored(t, i, user)
		for _, b := range f.boxes {
			w, g := want(f.msgs[b]), got[b]
			if len(g) != len(w) {
				t.Fatalf("node %d, %s %s: %d messages, want %d", i, user, b, len(g), len(w))
			}
			// Batches commit concurrently, so UID order may differ from the
			// source's by batch: compare as sets (each message once).
			moved := 0
			for k := range w {
				if g[k] != w[k] {
					moved++
				}
			}
			if moved > 0 && i == 0 {
				t.Logf("%s %s: %d of %d messages not in source order (concurrent batches)", user, b, moved, len(w))
			}
			byContent := func(a, b storedMessage) int { return bytes.Compare(a.sum[:], b.sum[:]) }
			slices.SortFunc(w, byContent)
			slices.SortFunc(g, byContent)
			for k := range w {
				if g[k] != w[k] {
					t.Fatalf("node %d, %s %s message %d:\n got %v\nwant %v", i, user, b, k+1, g[k], w[k])
				}
			}
		}
	}
}

// checkOrder checks that user's UIDs follow the order of the source it was
// imported from with --keep-order: the export of from, in from's UID order.
func (tc *testCluster) checkOrder(t *testing.T, user, from string, f *fixture) {
	t.Helper()
	got, src := tc.stored(t, 0, user), tc.stored(t, 0, from)
	for _, b := range f.boxes {
		if !slices.Equal(got[b], src[b]) {
			for k := range src[b] {
				if got[b][k] != src[b][k] {
					t.Fatalf("%s %s: message %d out of the source's order: %v, want %v", user, b, k+1, got[b][k], src[b][k])
				}
			}
		}
	}
}

// checkOrderWith checks that user's UIDs follow the fixture's order.
func (tc *testCluster) checkOrderWith(t *testing.T, user string, f *fixture) {
	t.Helper()
	got := tc.stored(t, 0, user)
	for _, b := range f.boxes {
		w := want(f.msgs[b])
		for k := range w {
			if got[b][k] != w[k] {
				t.Fatalf("%s %s: message %d out of the source's order: %v, want %v", user, b, k+1, got[b][k], w[k])
			}
		}
	}
}

// logSummary records a run's figures in the test log.
func logSummary(t *testing.T, what string, s *Summary) {
	t.Logf("%s: %d copied, %d skipped, %d failed, %.1f MB in %v: %.0f msg/s, %.1f MB/s", what, s.Copied, s.Skipped, s.Failed,
		float64(s.Bytes)/1e6, s.Took.Round(time.Millisecond), s.Rate(), float64(s.Bytes)/1e6/s.Took.Seconds())
	for _, f := range s.Failures {
		t.Errorf("%s: failed %s %s: %s", what, f.Mailbox, f.SourceID, f.Reason)
	}
}

var clusterBoxes = []string{"INBOX", "Sent", "Work/Projects/2024", "Archiv/Übersicht", "Listen/日本語"}

// TestMboxImportExportImport: a fixture written as mbox is imported, every
// node holds it exactly; exported again and imported into another user,
// the bytes, flags and dates are the same. Then the same through Maildir.
// A second import of the same mbox copies nothing and says so.
func TestMboxImportExportImport(t *testing.T) {
	n := scale(400, 10000)
	tc := startCluster(t, "a@example.test", "b@example.test", "c@example.test", "d@example.test")
	f := newFixture(1, clusterBoxes, n, 10<<10)
	ctx := tc.Ctx(30 * time.Minute)
	dir := t.TempDir()
	in := dir + "/in"
	sink, err := NewMboxSink(in, false)
	if err != nil {
		t.Fatal(err)
	}
	f.write(t, sink)

	src, err := NewMboxSource(in, "")
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Import(ctx, tc.follower(), "a@example.test", src, ImportOptions{SourceName: "mbox"})
	if err != nil {
		t.Fatal(err)
	}
	logSummary(t, fmt.Sprintf("mbox import of %d", n), sum)
	if sum.Copied != n {
		t.Fatalf("copied %d, want %d", sum.Copied, n)
	}
	tc.checkEveryNode(t, "a@example.test", f)

	// Again: nothing to copy.
	src, _ = NewMboxSource(in, "")
	sum, err = Import(ctx, tc.follower(), "a@example.test", src, ImportOptions{SourceName: "mbox"})
	if err != nil || sum.Copied != 0 || sum.Skipped != n {
		t.Fatalf("second import: %+v, %v; want 0 copied, %d skipped", sum, err, n)
	}

	for _, format := range []string{"mbox", "maildir"} {
		to := map[string]string{"mbox": "b@example.test", "maildir": "c@example.test"}[format]
		out := dir + "/out-" + format
		var sink Sink
		if format == "mbox" {
			sink, err = NewMboxSink(out, false)
		} else {
			sink, err = NewMaildirSink(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		sum, err = Export(ctx, tc.clients[0], "a@example.test", ExportOptions{}, sink, nil)
		if err != nil {
			t.Fatal(err)
		}
		logSummary(t, format+" export", sum)
		if sum.Copied != n {
			t.Fatalf("%s export: %d messages, want %d", format, sum.Copied, n)
		}
		var src Source
		if format == "mbox" {
			src, err = NewMboxSource(out, "")
		} else {
			src, err = NewMaildirSource(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		// The mbox pass keeps the order: UIDs as in the source.
		sum, err = Import(ctx, tc.clients[2], to, src, ImportOptions{SourceName: format, KeepOrder: format == "mbox"})
		if err != nil {
			t.Fatal(err)
		}
		logSummary(t, format+" re-import", sum)
		tc.checkEveryNode(t, to, f)
		if format == "mbox" {
			tc.checkOrder(t, to, "a@example.test", f)
		}
	}

	// --since and --mailbox select.
	since := time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC)
	md := dir + "/since"
	sink, _ = NewMboxSink(md, false)
	sum, err = Export(ctx, tc.clients[1], "a@example.test", ExportOptions{Mailboxes: []string{"Sent"}, Since: since}, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantN := 0
	for _, m := range f.msgs["Sent"] {
		if !m.Date.Before(since) {
			wantN++
		}
	}
	if sum.Copied != wantN || sum.Mailboxes != 1 {
		t.Fatalf("export --mailbox Sent --since 2010: %d messages in %d mailboxes, want %d in 1", sum.Copied, sum.Mailboxes, wantN)
	}
}

// TestImportLargeMessage: a message over 1 MiB travels in pieces and is
// stored through the chunked upload path, between small ones.
func TestImportLargeMessage(t *testing.T) {
	tc := startCluster(t, "a@example.test")
	r := rand.New(rand.NewPCG(9, 9))
	f := &fixture{boxes: []string{"INBOX"}, msgs: map[string][]*Message{}}
	for i, size := range []int{10 << 10, 3 << 20, 10 << 10} {
		d := time.Date(2001, 2, 3, 4, 5, 6+i, 0, time.UTC)
		f.msgs["INBOX"] = append(f.msgs["INBOX"], &Message{Data: realisticMessage(r, strconv.Itoa(i), size, d), Flags: []string{`\Seen`}, Date: d})
	}
	dir := t.TempDir()
	sink, _ := NewMaildirSink(dir)
	f.write(t, sink)
	src, _ := NewMaildirSource(dir)
	sum, err := Import(tc.Ctx(2*time.Minute), tc.follower(), "a@example.test", src, ImportOptions{SourceName: "maildir"})
	if err != nil {
		t.Fatal(err)
	}
	logSummary(t, "large", sum)
	tc.checkEveryNode(t, "a@example.test", f)

	// Refusals are reported per message, with the reason; the rest goes in.
	ctx := tc.Ctx(time.Minute)
	if err := tc.Nodes[tc.Leader()].Mail().SetQuota(ctx, "a@example.test", 3<<20+40<<10); err != nil {
		t.Fatal(err)
	}
	more := &fixture{boxes: []string{"Quota"}, msgs: map[string][]*Message{}}
	for i := range 10 {
		d := time.Date(2003, 1, 1, 0, 0, i, 0, time.UTC)
		more.msgs["Quota"] = append(more.msgs["Quota"], &Message{Data: realisticMessage(r, fmt.Sprint("q", i), 10<<10, d), Date: d})
	}
	dir2 := t.TempDir()
	sink, _ = NewMaildirSink(dir2)
	more.write(t, sink)
	src, _ = NewMaildirSource(dir2)
	sum, err = Import(ctx, tc.follower(), "a@example.test", src, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Copied == 0 || sum.Failed == 0 || sum.Copied+sum.Failed != 10 || sum.Failures[0].Reason != "over quota" || sum.Failures[0].Mailbox != "Quota" {
		t.Fatalf("over quota: %+v", sum)
	}
	t.Logf("quota: %d copied, %d failed (%s: %s)", sum.Copied, sum.Failed, sum.Failures[0].SourceID, sum.Failures[0].Reason)

	// An unknown user is an error before anything is sent.
	src, _ = NewMaildirSource(dir2)
	if _, err := Import(ctx, tc.follower(), "nobody@example.test", src, ImportOptions{}); status.Code(err) != codes.NotFound {
		t.Fatalf("import for an unknown user: %v, want NotFound", err)
	}
}

// TestImportSpeed measures an import of 10 KiB messages into a 3-node
// cluster (through a follower, fsync on): CONTINUUM_MIGRATE_SPEED=N
// messages, or 10,000 in make test-migrate. Skipped in make test.
// CONTINUUM_MIGRATE_INDEX_QUIET and CONTINUUM_MIGRATE_INDEX_MAX_DEFER set
// the nodes' --index-bulk-quiet and --index-bulk-max-defer: a short
// max-defer shows the rate of an import too long to be deferred whole,
// whose mail is indexed while it runs; a negative quiet, the rate with
// imported mail indexed as it arrives.
func TestImportSpeed(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("CONTINUUM_MIGRATE_SPEED"))
	if n == 0 {
		if os.Getenv("CONTINUUM_MIGRATE_FULL") == "" {
			t.Skip("set CONTINUUM_MIGRATE_SPEED=N or CONTINUUM_MIGRATE_FULL=1")
		}
		n = 10000
	}
	duration := func(env string) time.Duration {
		v := os.Getenv(env)
		if v == "" {
			return 0
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		return d
	}
	quiet, maxDefer := duration("CONTINUUM_MIGRATE_INDEX_QUIET"), duration("CONTINUUM_MIGRATE_INDEX_MAX_DEFER")
	tc := startClusterWith(t, func(_ int, c *config.Config) {
		c.IndexBulkQuiet.Duration, c.IndexBulkMaxDefer.Duration = quiet, maxDefer
	}, "a@example.test", "b@example.test")
	t.Logf("speed: index-bulk-quiet %v, index-bulk-max-defer %v (0: defaults)", quiet, maxDefer)
	f := newFixture(7, []string{"INBOX"}, n, 10<<10)
	file := t.TempDir() + "/speed.mbox"
	sink, _ := NewMboxSink(file, true)
	f.write(t, sink)
	for _, mode := range []struct {
		user      string
		keepOrder bool
	}{{"a@example.test", true}, {"b@example.test", false}} {
		// The heap of the whole process (3 nodes and the client): what an
		// import adds must not grow with the number of messages.
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base, peak := ms.HeapInuse, ms.HeapInuse
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}()
		src, _ := NewMboxSource(file, "")
		sum, err := Import(tc.Ctx(30*time.Minute), tc.speedClient(), mode.user, src, ImportOptions{SourceName: "mbox", KeepOrder: mode.keepOrder})
		if err != nil {
			t.Fatal(err)
		}
		close(stop)
		<-sampled
		logSummary(t, fmt.Sprintf("speed: %d messages of 10 KiB, keep order %v", n, mode.keepOrder), sum)
		t.Logf("heap in use: %d MiB before, peak %d MiB during (+%d MiB), whole process", base>>20, peak>>20, (peak-base)>>20)
		if sum.Copied != n {
			t.Fatalf("copied %d of %d", sum.Copied, n)
		}
	}
	// The full-text index defers what an import writes until the import
	// pauses (node/search Options.BulkQuiet): how long after the last
	// import every node's index has caught up, without waiting out the
	// quiet period (WaitCaughtUp cuts it short, as `continuum reindex`).
	start := time.Now()
	for i, nd := range tc.Nodes {
		if err := nd.Index().WaitCaughtUp(tc.Ctx(10*time.Minute), nd.FSM().AppliedIndex()); err != nil {
			t.Fatalf("node %d: index: %v", i, err)
		}
	}
	t.Logf("speed: full-text index of every node caught up %.2fs after the imports (%d messages in all)", time.Since(start).Seconds(), 2*n)
}

// speedClient is a follower's client, or the leader's with
// CONTINUUM_MIGRATE_VIA_LEADER set (to measure the forwarding hop).
func (tc *testCluster) speedClient() adminpb.AdminClient {
	if os.Getenv("CONTINUUM_MIGRATE_VIA_LEADER") != "" {
		return tc.clients[tc.Leader()]
	}
	return tc.follower()
}
