package imapd_test

import (
	"encoding/base64"
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMultiAppend (RFC 3502): several messages in one APPEND, with
// non-synchronizing and synchronizing literals, stored together with
// consecutive UIDs (APPENDUID lists them); a refusal of any one — a bad
// date on the second, the quota for their sum, a missing mailbox —
// stores none.
func TestMultiAppend(t *testing.T) {
	e, addrs := ownEnv(t)
	c := login(t, addrs[1], alice)
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " MULTIAPPEND ") {
		t.Errorf("CAPABILITY = %q, want MULTIAPPEND", u)
	}
	m1 := testMessage("ma1", "first", "one")
	m2 := testMessage("ma2", "second", "two")
	_, done := c.do("APPEND INBOX (\\Seen) {%d+}\r\n%s (\\Flagged) \"01-Jan-2020 10:00:00 +0000\" {%d+}\r\n%s", len(m1), m1, len(m2), m2)
	if !strings.HasPrefix(done, "OK [APPENDUID ") || !strings.HasSuffix(strings.SplitN(done, "]", 2)[0], " 1:2") {
		t.Fatalf("MULTIAPPEND = %q, want OK [APPENDUID uv 1:2]", done)
	}
	uv := strings.Fields(done)[2]
	// Synchronizing literals: a continuation before each.
	c.n++
	c.send("a%d APPEND INBOX {%d}\r\n", c.n, len(m1))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("continuation = %q", l)
	}
	c.send("%s {%d}\r\n", m1, len(m2))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		t.Fatalf("second continuation = %q", l)
	}
	c.send("%s\r\n", m2)
	if _, done := c.until("a" + strconv.Itoa(c.n)); done != "OK [APPENDUID "+uv+" 3:4] APPEND completed" {
		t.Fatalf("MULTIAPPEND with sync literals = %q", done)
	}
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1:4 (UID FLAGS INTERNALDATE)")
	if len(u) != 4 || !strings.Contains(u[0], `FLAGS (\Seen)`) || !strings.Contains(u[1], `FLAGS (\Flagged)`) || !strings.Contains(u[1], `"01-Jan-2020 10:00:00 +0000"`) {
		t.Fatalf("stored = %q", u)
	}

	status := func() string {
		return find(c.ok("STATUS INBOX (MESSAGES UIDNEXT)"), "* STATUS")
	}
	before := status()
	// A bad date on the second message: BAD, and the first is not stored.
	c.expect("BAD", "APPEND INBOX {%d+}\r\n%s \"not a date\" {%d+}\r\n%s", len(m1), m1, len(m2), m2)
	// A missing mailbox.
	c.expect("NO [TRYCREATE]", "APPEND Nowhere {%d+}\r\n%s {%d+}\r\n%s", len(m1), m1, len(m2), m2)
	// Over what one command may hold (8 MiB): NO [TOOBIG], nothing
	// stored (TestMultiAppendLarge: large ones that fit are stored).
	large := testMessage("ma3", "large", strings.Repeat("0123456789abcdef\r\n", 100000))
	c.expect("NO [TOOBIG]", "APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s {%d+}\r\n%s",
		len(large), large, len(large), large, len(large), large, len(large), large, len(large), large)
	// Over quota together, though the first alone would fit.
	used := 4 * len(m1)
	if err := e.c.Nodes[0].Mail().SetQuota(e.c.Ctx(10*time.Second), alice, uint64(used+len(m1)+len(m1)/2)); err != nil {
		t.Fatal(err)
	}
	e.waitAll()
	c.expect("NO [OVERQUOTA]", "APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(m1), m1, len(m2), m2)
	if after := status(); after != before {
		t.Errorf("STATUS after the refused MULTIAPPENDs = %q, before %q", after, before)
	}
	// The session goes on: a single APPEND that fits.
	c.expect("OK [APPENDUID "+uv+" 5]", "APPEND INBOX {%d+}\r\n%s", len(m1), m1)
}

// attachmentMessage is a message with n bytes of random data as a base64
// attachment: about as incompressible as a message can be (zstd gets it to
// ~76%), and not text for the search index (a 2 MiB text/plain body of
// random tokens kept the indexer, and with it this small test cluster's
// heartbeats, busy for minutes at load 13).
func attachmentMessage(id, subject string, seed int64, n int) string {
	return "From: Sender <sender@remote.test>\r\n" +
		"To: Alice <alice@example.test>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Message-ID: <" + id + "@remote.test>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"" + id + ".bin\"\r\n\r\n" +
		randomText(seed, n) + "--b--\r\n"
}

// randomText is n bytes of base64 lines of random data.
func randomText(seed int64, n int) string {
	raw := make([]byte, n*3/4)
	rand.New(rand.NewSource(seed)).Read(raw)
	b64 := base64.StdEncoding.EncodeToString(raw)
	var sb strings.Builder
	for len(b64) > 0 {
		k := min(len(b64), 76)
		sb.WriteString(b64[:k])
		sb.WriteString("\r\n")
		b64 = b64[k:]
	}
	return sb.String()
}

// TestMultiAppendLarge: MULTIAPPENDs whose messages together are far over
// one log entry stay all or none (node/mail uploads the large ones in
// chunks first, then one AppendAllUploaded entry names them): 3 × 2 MiB
// of random data (base64 attachments) at node 2, read back byte-exact at nodes 1 and 3 with
// consecutive UIDs; 3 × 600 KB (each under a chunk, the sum over one);
// then over quota together (each would fit): NO [OVERQUOTA] and STATUS
// unchanged on every node.
func TestMultiAppendLarge(t *testing.T) {
	e, addrs := ownEnv(t)
	c := login(t, addrs[1], alice)
	uv := strings.Fields(find(c.ok("SELECT INBOX"), "UIDVALIDITY"))[3]
	uv = strings.TrimSuffix(uv, "]")
	msgs := func(seed int64, n, size int) ([]string, string) {
		var ms []string
		var cmd strings.Builder
		cmd.WriteString("APPEND INBOX")
		for i := 0; i < n; i++ {
			m := attachmentMessage(fmt.Sprintf("big%d.%d", seed, i), fmt.Sprintf("big %d.%d", seed, i), seed*10+int64(i), size)
			ms = append(ms, m)
			fmt.Fprintf(&cmd, " {%d+}\r\n%s", len(m), m)
		}
		return ms, cmd.String()
	}
	check := func(ms []string, first int) {
		t.Helper()
		e.waitAll()
		for _, n := range []int{0, 2} {
			r := login(t, addrs[n], alice)
			r.ok("EXAMINE INBOX")
			for i, m := range ms {
				u := r.ok("UID FETCH %d BODY.PEEK[]", first+i)
				if len(u) != 1 || !strings.HasSuffix(u[0], m+")") {
					t.Fatalf("node %d: UID %d is not message %d byte-exact (%d lines)", n+1, first+i, i+1, len(u))
				}
			}
			r.ok("LOGOUT")
		}
	}

	three, cmd := msgs(1, 3, 2<<20)
	start := time.Now()
	c.expect("OK [APPENDUID "+uv+" 1:3]", "%s", cmd)
	t.Logf("MULTIAPPEND of 3 x %d bytes: %v", len(three[0]), time.Since(start))
	check(three, 1)

	mid, cmd := msgs(2, 3, 600<<10)
	c.expect("OK [APPENDUID "+uv+" 4:6]", "%s", cmd)
	check(mid, 4)

	status := func(a string) string {
		r := login(t, a, alice)
		defer r.ok("LOGOUT")
		return find(r.ok("STATUS INBOX (MESSAGES UIDNEXT SIZE)"), "* STATUS")
	}
	var used int
	for _, m := range append(three, mid...) {
		used += len(m)
	}
	over, cmd := msgs(3, 3, 2<<20)
	if err := e.c.Nodes[0].Mail().SetQuota(e.c.Ctx(10*time.Second), alice, uint64(used+2*len(over[0])+len(over[0])/2)); err != nil {
		t.Fatal(err)
	}
	e.waitAll()
	var before []string
	for _, a := range addrs {
		before = append(before, status(a))
	}
	c.expect("NO [OVERQUOTA]", "%s", cmd)
	e.waitAll()
	for i, a := range addrs {
		if after := status(a); after != before[i] {
			t.Errorf("node %d: STATUS after the refused MULTIAPPEND = %q, before %q", i+1, after, before[i])
		}
	}
	// Two of them fit: stored, UIDs going on from 7.
	c.expect("OK [APPENDUID "+uv+" 7:8]", "APPEND INBOX {%d+}\r\n%s {%d+}\r\n%s", len(over[0]), over[0], len(over[1]), over[1])
	check(over[:2], 7)
}
