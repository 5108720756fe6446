package imapd

import (
	"bytes"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/klauspost/compress/flate"

	"github.com/continuum-mail/continuum/node/imapd/wire"
)

// COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are a
// raw DEFLATE stream (RFC 1951, no zlib header).
//
// Reading: the inflater (inflate.go) hands out what it decoded at the end
// of every block and reads no input byte before a bit of it is needed, so
// a command is delivered as soon as the client's flush — Z_SYNC_FLUSH,
// Z_FULL_FLUSH or zlib's Z_PARTIAL_FLUSH, which isync/mbsync sends — has
// arrived. compress/flate and klauspost/compress/flate do not (inflate.go
// says why); with them mbsync's sync hung (TestInflateFlushModes feeds
// zlib's output one byte at a time, TestMbsync runs mbsync).
//
// Writing: responses are compressed as they are written and the DEFLATE
// stream is sync-flushed once per flush of the session's writer (the end
// of a response burst, a continuation request; wire.Writer.Sync), not per
// buffer-full, so a long FETCH is one run of blocks with one flush at the
// end. Nothing written since the last flush: no empty flush block.

// deflateLevel is the server's compression level (1–9 trade CPU for
// bytes; Dovecot's default is 6).
const deflateLevel = 6

// deflateConn is a connection with DEFLATE on both directions; deadlines
// and Close go to the connection below.
type deflateConn struct {
	net.Conn
	r     *inflater
	w     *flate.Writer
	out   bytes.Buffer // compressed, not yet sent
	dirty bool         // written since the last Flush
}

// deflateSendBytes: during a long burst, compressed output is sent once
// this much has gathered.
const deflateSendBytes = 64 << 10

func newDeflateConn(nc net.Conn) *deflateConn {
	d := &deflateConn{Conn: nc, r: newInflater(nc)}
	d.w, _ = flate.NewWriter(&d.out, deflateLevel) // the level is valid: no error
	return d
}

func (d *deflateConn) Read(p []byte) (int, error) { return d.r.Read(p) }

// Write compresses p; the output may stay in the compressor until Flush.
func (d *deflateConn) Write(p []byte) (int, error) {
	d.dirty = true
	n, err := d.w.Write(p)
	if err == nil && d.out.Len() >= deflateSendBytes {
		err = d.send()
	}
	return n, err
}

// Flush sends everything written so far, ending it with a sync flush (an
// empty stored block) so the client's inflater hands it out at once, in
// one write to the connection.
func (d *deflateConn) Flush() error {
	if d.dirty {
		d.dirty = false
		if err := d.w.Flush(); err != nil {
			return err
		}
	}
	return d.send()
}

func (d *deflateConn) send() error {
	if d.out.Len() == 0 {
		return nil
	}
	_, err := d.Conn.Write(d.out.Bytes())
	d.out.Reset()
	return err
}

// lingerCompressed ends a compressed connection the session closes
// (LOGOUT): the command was decoded when its data block ended, and the
// rest of the client's flush (the empty block after it) may still be on
// its way. Closing with bytes unread, or arriving after the close, resets
// the connection — the client's write fails (EPIPE, seen with imaplib
// sending byte by byte) and it may lose the BYE and OK it has not read
// yet. So the server half-closes, then reads and drops what still comes,
// until the client closes or for at most lingerTime.
func (c *conn) lingerCompressed() {
	d, ok := c.nc.(*deflateConn)
	if !ok {
		return
	}
	raw := d.Conn
	if cc, ok := raw.(*corkConn); ok {
		raw = cc.Conn
	}
	if cw, ok := raw.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	d.Conn.SetReadDeadline(time.Now().Add(lingerTime))
	io.Copy(io.Discard, io.LimitReader(d.Conn, 64<<10))
}

const lingerTime = time.Second

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
