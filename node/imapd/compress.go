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
