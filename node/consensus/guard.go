package consensus

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"

	"github.com/continuum-mail/continuum/node/identity"
)

// Raft RPC types on the wire (hashicorp/raft v1.8 net_transport.go; the
// constants are unexported there).
const (
	rpcAppendEntries uint8 = iota
	rpcRequestVote
	rpcInstallSnapshot
	rpcTimeoutNow
	rpcRequestPreVote
)

// errClaim means an RPC named a server other than the one its connection's
// certificate names.
var errClaim = errors.New("consensus: raft rpc claims another server's identity")

// guardedConn binds every Raft RPC that arrives on an mTLS connection to
// the certificate of that connection. raft.NetworkTransport decodes RPCs
// itself and hands them to raft with no trace of the connection, so the
// check happens in front of it: a goroutine decodes each request (the same
// msgpack codec, recording the exact bytes it consumed), refuses one whose
// header ID (or legacy Leader/Candidate field) is not the certificate's
// node, and passes the recorded bytes on unchanged through a pipe that the
// transport reads. Responses go straight to the TLS connection.
//
// The cost is one extra decode of every request and one copy; a request is
// held in memory twice while it is checked (once as bytes, once decoded).
type guardedConn struct {
	*tls.Conn
	log *slog.Logger

	once sync.Once
	pr   *io.PipeReader
	err  error
}

// guard wraps an accepted TLS connection. The handshake and the checking
// goroutine start on the first Read (the transport's per-connection
// goroutine), so a slow or silent client never holds up Accept.
func guard(c *tls.Conn, log *slog.Logger) net.Conn { return &guardedConn{Conn: c, log: log} }

func (g *guardedConn) start() {
	c := g.Conn
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.Handshake(); err != nil {
		g.err = err
		return
	}
	c.SetDeadline(time.Time{})
	certs := c.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		g.err = identity.ErrUntrusted
		return
	}
	id, err := identity.FromCertificate(certs[0])
	if err != nil {
		g.err = err
		return
	}
	pr, pw := io.Pipe()
	g.pr = pr
	go func() {
		err := check(c, pw, id.Name)
		if errors.Is(err, errClaim) {
			g.log.Warn("refused a raft rpc: its sender is not who its certificate says", "remote", c.RemoteAddr().String(), "cert", id.Name, "err", err)
		}
		pw.CloseWithError(err)
		if err != nil {
			c.Close()
		}
	}()
}

func (g *guardedConn) Read(p []byte) (int, error) {
	g.once.Do(g.start)
	if g.err != nil {
		return 0, g.err
	}
	return g.pr.Read(p)
}

func (g *guardedConn) Close() error {
	err := g.Conn.Close() // first: it ends a handshake in progress
	g.once.Do(func() { g.err = net.ErrClosed })
	if g.pr != nil {
		g.pr.Close()
	}
	return err
}

// handshakeTimeout bounds an incoming Raft connection's TLS handshake.
const handshakeTimeout = 10 * time.Second

// recorder reads through a bufio.Reader and keeps every byte the decoder
// consumed (minus unread ones).
type recorder struct {
	r   *bufio.Reader
	buf bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.buf.Write(p[:n])
	return n, err
}

func (r *recorder) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err == nil {
		r.buf.WriteByte(b)
	}
	return b, err
}

func (r *recorder) UnreadByte() error {
	if err := r.r.UnreadByte(); err != nil {
		return err
	}
	r.buf.Truncate(r.buf.Len() - 1)
	return nil
}

// check copies RPCs from c to w until an error, each only once its claimed
// sender is node.
func check(c io.Reader, w io.Writer, node string) error {
	rec := &recorder{r: bufio.NewReaderSize(c, 256<<10)}
	dec := codec.NewDecoder(rec, &codec.MsgpackHandle{})
	for {
		rec.buf.Reset()
		t, err := rec.ReadByte()
		if err != nil {
			return err
		}
		var hdr raft.RPCHeader
		var legacy []byte // the pre-v3 sender field, when the request has one
		var snapshotSize int64 = -1
		switch t {
		case rpcAppendEntries:
			var req raft.AppendEntriesRequest
			err = dec.Decode(&req)
			hdr, legacy = req.RPCHeader, req.Leader //nolint:staticcheck // the deprecated field is checked, not used
		case rpcRequestVote:
			var req raft.RequestVoteRequest
			err = dec.Decode(&req)
			hdr, legacy = req.RPCHeader, req.Candidate //nolint:staticcheck
		case rpcRequestPreVote:
			var req raft.RequestPreVoteRequest
			err = dec.Decode(&req)
			hdr = req.RPCHeader
		case rpcInstallSnapshot:
			var req raft.InstallSnapshotRequest
			err = dec.Decode(&req)
			hdr, legacy, snapshotSize = req.RPCHeader, req.Leader, req.Size //nolint:staticcheck
		case rpcTimeoutNow:
			var req raft.TimeoutNowRequest
			err = dec.Decode(&req)
			hdr = req.RPCHeader
		default:
			return fmt.Errorf("consensus: unknown raft rpc type %d", t)
		}
		if err != nil {
			return err
		}
		if string(hdr.ID) != node {
			return fmt.Errorf("%w: header names %q, certificate %q", errClaim, hdr.ID, node)
		}
		if len(legacy) > 0 && len(hdr.Addr) > 0 && !bytes.Equal(legacy, hdr.Addr) {
			return fmt.Errorf("%w: legacy sender %q differs from the header's %q", errClaim, legacy, hdr.Addr)
		}
		if _, err := w.Write(rec.buf.Bytes()); err != nil {
			return err
		}
		if snapshotSize > 0 {
			if _, err := io.CopyN(w, rec.r, snapshotSize); err != nil {
				return err
			}
		}
	}
}
