package imapd_test

import (
	"bufio"
	"compress/flate"
	"io"
	"net"
	"strings"
	"testing"
)

// flateConn is the client's side of COMPRESS=DEFLATE.
type flateConn struct {
	net.Conn
	r io.Reader
	w *flate.Writer
}

func (f *flateConn) Read(p []byte) (int, error) { return f.r.Read(p) }
func (f *flateConn) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = f.w.Flush()
	}
	return n, err
}

// TestCompressDeflate (RFC 4978), for a client that sync-flushes: after
// OK to COMPRESS DEFLATE both directions are raw DEFLATE; commands, literals and a large FETCH go
// through it; a second COMPRESS is NO [COMPRESSIONACTIVE]; errors.
func TestCompressDeflate(t *testing.T) {
	e, addrs := ownEnv(t)
	big := testMessage("z1", "big", strings.Repeat("compressible line of text\r\n", 4000))
	e.deliver(0, alice, big)
	e.waitAll()
	c := dial(t, addrs[1])
	// Not advertised (compress.go: Z_PARTIAL_FLUSH clients would hang).
	if u := c.ok("CAPABILITY"); strings.Contains(u[0], "COMPRESS") {
		t.Errorf("CAPABILITY = %q: COMPRESS=DEFLATE is not to be advertised yet", u)
	}
	c.expect("BAD", "COMPRESS DEFLATE") // not logged in
	c.ok("LOGIN %s %q", alice, password)
	c.expect("BAD", "COMPRESS GZIP")
	c.expect("BAD", "COMPRESS")
	if u, done := c.do("COMPRESS DEFLATE"); len(u) != 0 || !strings.HasPrefix(done, "OK") {
		t.Fatalf("COMPRESS DEFLATE = %q %q", u, done)
	}
	w, _ := flate.NewWriter(c.conn, flate.BestSpeed)
	fc := &flateConn{Conn: c.conn, r: flate.NewReader(c.r), w: w}
	c.conn, c.r = fc, bufio.NewReader(fc)

	c.expect("NO [COMPRESSIONACTIVE]", "COMPRESS DEFLATE")
	c.ok("SELECT INBOX")
	u := c.ok("FETCH 1 BODY.PEEK[]")
	if len(u) != 1 || !strings.HasSuffix(u[0], big+")") {
		t.Fatalf("FETCH BODY[] through DEFLATE: %d lines, body intact %v", len(u), len(u) > 0 && strings.HasSuffix(u[0], big+")"))
	}
	m := testMessage("z2", "appended", "through deflate")
	c.expect("OK [APPENDUID", "APPEND INBOX {%d}\r\n%s", len(m), m)
	if u := c.ok("UID SEARCH SUBJECT appended"); len(u) != 1 || u[0] != "* SEARCH 2" {
		t.Errorf("SEARCH after a compressed APPEND = %q", u)
	}
	if u, _ := c.do("LOGOUT"); len(u) != 1 || !strings.HasPrefix(u[0], "* BYE") {
		t.Errorf("LOGOUT = %q", u)
	}
}
