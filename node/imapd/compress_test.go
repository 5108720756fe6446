package imapd_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/base64"
	"io"
	"math/rand"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// flateConn is the client's side of COMPRESS=DEFLATE: each write is
// compressed, sync-flushed and sent in one write to the connection.
type flateConn struct {
	net.Conn
	r   io.Reader
	w   *flate.Writer
	out bytes.Buffer
}

// recorder keeps the compressed bytes the client reads.
type recorder struct {
	r   io.Reader
	raw []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.raw = append(r.raw, p[:n]...)
	return n, err
}

func (f *flateConn) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *flateConn) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	if err == nil {
		_, err = f.Conn.Write(f.out.Bytes())
		f.out.Reset()
	}
	return n, err
}

// TestCompressDeflate (RFC 4978), for a client that sync-flushes: after
// OK to COMPRESS DEFLATE both directions are raw DEFLATE; commands,
// literals and a large FETCH go through it; the server sync-flushes once
// per response burst (a 108 KB FETCH is one run of blocks ending in one
// empty stored block), not per buffer-full; a second COMPRESS is NO
// [COMPRESSIONACTIVE] and CAPABILITY stops offering it; errors.
// (TestInflateFlushModes and TestPythonImaplibCompress cover clients that
// partial-flush.)
func TestCompressDeflate(t *testing.T) {
	e, addrs := ownEnv(t)
	big := testMessage("z1", "big", strings.Repeat("compressible line of text\r\n", 4000))
	e.deliver(0, alice, big)
	e.waitAll()
	c := dial(t, addrs[1])
	if u := c.ok("CAPABILITY"); !strings.Contains(u[0], " COMPRESS=DEFLATE") {
		t.Errorf("CAPABILITY = %q: no COMPRESS=DEFLATE", u)
	}
	c.expect("BAD", "COMPRESS DEFLATE") // not logged in
	c.ok("LOGIN %s %q", alice, password)
	c.expect("BAD", "COMPRESS GZIP")
	c.expect("BAD", "COMPRESS")
	if u, done := c.do("COMPRESS DEFLATE"); len(u) != 0 || !strings.HasPrefix(done, "OK") {
		t.Fatalf("COMPRESS DEFLATE = %q %q", u, done)
	}
	rec := &recorder{r: c.r}
	fc := &flateConn{Conn: c.conn, r: flate.NewReader(rec)}
	fc.w, _ = flate.NewWriter(&fc.out, flate.BestSpeed)
	c.conn, c.r = fc, bufio.NewReader(fc)

	c.expect("NO [COMPRESSIONACTIVE]", "COMPRESS DEFLATE")
	if u := c.ok("CAPABILITY"); strings.Contains(u[0], "COMPRESS=DEFLATE") {
		t.Errorf("CAPABILITY while DEFLATE is active = %q: still offers COMPRESS=DEFLATE", u)
	}
	c.ok("SELECT INBOX")
	rec.raw = nil
	u := c.ok("FETCH 1 BODY.PEEK[]")
	if len(u) != 1 || !strings.HasSuffix(u[0], big+")") {
		t.Fatalf("FETCH BODY[] through DEFLATE: %d lines, body intact %v", len(u), len(u) > 0 && strings.HasSuffix(u[0], big+")"))
	}
	// The reader stops right after the sync flush's empty stored block.
	syncMark := []byte{0, 0, 0xff, 0xff}
	if n := bytes.Count(rec.raw, syncMark); n != 1 || !bytes.HasSuffix(rec.raw, syncMark) {
		t.Errorf("FETCH of %d bytes came as %d compressed bytes with %d sync flushes (ends in one: %v), want one at the end",
			len(big), len(rec.raw), n, bytes.HasSuffix(rec.raw, syncMark))
	}
	t.Logf("FETCH of a %d-byte message: %d bytes compressed", len(big), len(rec.raw))
	m := testMessage("z2", "appended", "through deflate")
	c.expect("OK [APPENDUID", "APPEND INBOX {%d}\r\n%s", len(m), m)
	if u := c.ok("UID SEARCH SUBJECT appended"); len(u) != 1 || u[0] != "* SEARCH 2" {
		t.Errorf("SEARCH after a compressed APPEND = %q", u)
	}
	if u, _ := c.do("LOGOUT"); len(u) != 1 || !strings.HasPrefix(u[0], "* BYE") {
		t.Errorf("LOGOUT = %q", u)
	}
}

// greetedConn is a flateConn whose reader starts with a greeting of the
// test's own: go-imap v2 has no COMPRESS, so the test logs in and turns
// DEFLATE on by hand, then hands the compressed stream to go-imap's client
// as if it were a new PREAUTH connection.
type greetedConn struct {
	*flateConn
	r io.Reader
}

func (g *greetedConn) Read(p []byte) (int, error) { return g.r.Read(p) }

// TestCompressGoIMAPClient runs go-imap v2's client over COMPRESS=DEFLATE:
// SELECT, FETCH of a 300 KB message (byte-exact), APPEND of a 400 KB one
// (half incompressible), UID SEARCH, STORE, all through the compressed
// stream, against a node other than the one that delivered.
func TestCompressGoIMAPClient(t *testing.T) {
	e, addrs := ownEnv(t)
	big := testMessage("g1", "for go-imap", strings.Repeat("a line go-imap fetches compressed\r\n", 9000))
	e.deliver(0, alice, big)
	e.waitAll()
	c := dial(t, addrs[2])
	c.ok("LOGIN %s %q", alice, password)
	if u, done := c.do("COMPRESS DEFLATE"); len(u) != 0 || !strings.HasPrefix(done, "OK") {
		t.Fatalf("COMPRESS DEFLATE = %q %q", u, done)
	}
	fc := &flateConn{Conn: c.conn, r: flate.NewReader(c.r)}
	fc.w, _ = flate.NewWriter(&fc.out, flate.DefaultCompression)
	gc := &greetedConn{flateConn: fc, r: io.MultiReader(strings.NewReader("* PREAUTH [CAPABILITY IMAP4rev1 LITERAL+ UIDPLUS] compressed\r\n"), fc)}
	ic := imapclient.New(gc, nil)
	defer ic.Close()

	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sect := &imap.FetchItemBodySection{Peek: true}
	msgs, err := ic.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{sect}}).Collect()
	if err != nil || len(msgs) != 1 || string(msgs[0].FindBodySection(sect)) != big {
		t.Fatalf("go-imap FETCH BODY[] over DEFLATE: err %v, %d messages", err, len(msgs))
	}
	rnd := make([]byte, 150<<10)
	rand.New(rand.NewSource(9)).Read(rnd)
	up := testMessage("g2", "appended by go-imap", strings.Repeat("compressible\r\n", 10000)+base64.StdEncoding.EncodeToString(rnd))
	ap := ic.Append("INBOX", int64(len(up)), nil)
	io.WriteString(ap, up)
	ap.Close()
	ad, err := ap.Wait()
	if err != nil || ad.UID == 0 {
		t.Fatalf("go-imap APPEND over DEFLATE: %v %+v", err, ad)
	}
	sd, err := ic.UIDSearch(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "appended by go-imap"}}}, nil).Wait()
	if err != nil || !slices.Equal(sd.AllUIDs(), []imap.UID{ad.UID}) {
		t.Fatalf("go-imap UID SEARCH over DEFLATE = %v, %v; want [%d]", sd, err, ad.UID)
	}
	if err := ic.Store(imap.UIDSetNum(ad.UID), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	msgs, err = ic.Fetch(imap.UIDSetNum(ad.UID), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{sect}}).Collect()
	if err != nil || len(msgs) != 1 || !slices.Contains(msgs[0].Flags, imap.FlagFlagged) || string(msgs[0].FindBodySection(sect)) != up {
		t.Fatalf("go-imap FETCH of the appended message over DEFLATE: err %v, %d messages", err, len(msgs))
	}
	if err := ic.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// TestCompressLogoutTail: LOGOUT is decoded when its data block ends, and
// the rest of the client's flush (here the empty stored block, sent 100 ms
// after BYE and OK came back) arrives after the server is done. The
// server must still take it, and more, without resetting the connection,
// and close cleanly (EOF, not a reset).
func TestCompressLogoutTail(t *testing.T) {
	_, addrs := ownEnv(t)
	c := login(t, addrs[0], alice)
	if u, done := c.do("COMPRESS DEFLATE"); len(u) != 0 || !strings.HasPrefix(done, "OK") {
		t.Fatalf("COMPRESS DEFLATE = %q %q", u, done)
	}
	var z bytes.Buffer
	w, _ := flate.NewWriter(&z, flate.BestSpeed)
	w.Write([]byte("z LOGOUT\r\n"))
	w.Flush()
	raw := c.conn
	tail := z.Bytes()[z.Len()-4:] // LEN/NLEN of the empty stored block
	if !bytes.Equal(tail, []byte{0, 0, 0xff, 0xff}) {
		t.Fatalf("sync flush ends in % x", tail)
	}
	if _, err := raw.Write(z.Bytes()[:z.Len()-4]); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(flate.NewReader(c.r))
	raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, want := range []string{"* BYE", "z OK"} {
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, want) {
			t.Fatalf("after LOGOUT's data block: %q, %v; want %s", l, err, want)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := raw.Write(tail); err != nil {
		t.Fatalf("the rest of the flush: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	if _, err := raw.Write([]byte{0}); err != nil {
		t.Fatalf("a write after the flush's rest: %v (the server reset the connection)", err)
	}
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, c.r); err != nil || n != 0 {
		t.Fatalf("end of the connection: %d more bytes, %v; want a clean EOF", n, err)
	}
}
