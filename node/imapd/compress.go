package imapd

import (
	"compress/flate"
	"io"
	"net"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/continuum-mail/continuum/node/imapd/wire"
)

// COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are a
// raw DEFLATE stream (RFC 1951, no zlib header). Every write the session
// makes (one flush of its buffered writer) ends in a sync flush, so a
// response is never held back in the compressor.
//
// Not advertised in CAPABILITY: compress/flate's reader hands out what it
// decoded only at a stored block, a full window or the final block, so a
// client that ends each command with zlib's Z_PARTIAL_FLUSH (an empty
// fixed-code block; isync/mbsync does) is never answered — the command
// sits in the decompressor. Clients that sync-flush (an empty stored
// block) work, and TestCompressDeflate covers them. Advertising it needs
// an inflater that releases its output at every block end.

// deflateConn is a connection with DEFLATE on both directions; deadlines
// and Close go to the connection below.
type deflateConn struct {
	net.Conn
	r io.ReadCloser
	w *flate.Writer
}

func newDeflateConn(nc net.Conn) *deflateConn {
	w, _ := flate.NewWriter(nc, flate.DefaultCompression) // the level is valid: no error
	return &deflateConn{Conn: nc, r: flate.NewReader(nc), w: w}
}

func (d *deflateConn) Read(p []byte) (int, error) { return d.r.Read(p) }

func (d *deflateConn) Write(p []byte) (int, error) {
	n, err := d.w.Write(p)
	if err == nil {
		err = d.w.Flush()
	}
	return n, err
}

// cmdCompress implements COMPRESS (RFC 4978 §3).
func (c *conn) cmdCompress(cmd *wire.Command) error {
	if err := args(cmd, 1, 1); err != nil {
		return err
	}
	mech, err := astring(cmd.Args[0], "a compression mechanism")
	if err != nil {
		return err
	}
	if !strings.EqualFold(mech, "DEFLATE") {
		return errBad("Unknown compression mechanism " + mech + "; DEFLATE is offered")
	}
	if _, on := c.nc.(*deflateConn); on {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "COMPRESSIONACTIVE", Text: "DEFLATE is already active"}
	}
	c.w.Status(cmd.Tag, "OK", "", "DEFLATE active")
	if err := c.w.Flush(); err != nil {
		return err
	}
	if c.r.Buffered() > 0 {
		// Sent before the OK: not compressed, and not to be taken as if
		// it were (as for STARTTLS).
		c.quit = true
		return errDone
	}
	c.nc = newDeflateConn(c.nc)
	c.setIO()
	return errDone
}
