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
// The cost is one extra pass over every request (the entries are skipped,
// not decoded) and one copy; a request streams through once its header has
// been checked, so nothing large is held or delayed.
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

// check copies RPCs from c to w until an error, each only once its claimed
// sender is node. It reads the msgpack encoding itself (the subset raft's
// requests use: one map per request, keys in name order, so a request's
// entries come before its ID) instead of decoding the request: nothing is
// allocated per entry and the bytes stream through as they arrive, exactly
// as received. What makes that safe is that the last byte of every request
// is held back until its checks have passed: the transport cannot finish
// decoding, let alone hand raft, a request that is refused.
func check(c io.Reader, w io.Writer, node string) error {
	s := &wire{r: bufio.NewReaderSize(c, 256<<10), w: bufio.NewWriterSize(w, 64<<10)}
	for {
		t, err := s.r.ReadByte()
		if err != nil {
			return err
		}
		switch t {
		case rpcAppendEntries, rpcRequestVote, rpcRequestPreVote, rpcInstallSnapshot, rpcTimeoutNow:
		default:
			return fmt.Errorf("consensus: unknown raft rpc type %d", t)
		}
		if err := s.out([]byte{t}); err != nil {
			return err
		}
		size, err := s.request(node)
		if err != nil {
			return err
		}
		if err := s.release(); err != nil {
			return err
		}
		if t == rpcInstallSnapshot && size > 0 {
			if _, err := io.CopyN(s.w, s.r, size); err != nil {
				return err
			}
		}
		if err := s.w.Flush(); err != nil {
			return err
		}
	}
}

// maxSmall bounds the values the guard reads whole (keys, IDs, addresses).
const maxSmall = 64 << 10

// maxDepth bounds nesting within a request (raft's requests use 3 levels).
const maxDepth = 16

// wire reads msgpack values and passes their bytes on, holding back the
// newest byte (release passes it on).
type wire struct {
	r       *bufio.Reader
	w       *bufio.Writer
	pending byte
	held    bool
}

var errBadRequest = errors.New("consensus: malformed raft request")

func (s *wire) out(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if s.held {
		if err := s.w.WriteByte(s.pending); err != nil {
			return err
		}
	}
	if _, err := s.w.Write(b[:len(b)-1]); err != nil {
		return err
	}
	s.pending, s.held = b[len(b)-1], true
	return nil
}

// release passes on the byte held back: the request has been checked.
func (s *wire) release() error {
	if !s.held {
		return nil
	}
	s.held = false
	return s.w.WriteByte(s.pending)
}

func (s *wire) byte() (byte, error) {
	b, err := s.r.ReadByte()
	if err != nil {
		return 0, err
	}
	return b, s.out([]byte{b})
}

// small reads n bytes (n ≤ maxSmall) and passes them on.
func (s *wire) small(n int) ([]byte, error) {
	if n < 0 || n > maxSmall {
		return nil, fmt.Errorf("%w: a value of %d bytes where a small one belongs", errBadRequest, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(s.r, b); err != nil {
		return nil, err
	}
	return b, s.out(b)
}

// copyN streams n bytes on.
func (s *wire) copyN(n int64) error {
	if n <= 0 {
		return nil
	}
	if n <= 64 {
		_, err := s.small(int(n))
		return err
	}
	if err := s.release(); err != nil {
		return err
	}
	if _, err := io.CopyN(s.w, s.r, n-1); err != nil {
		return err
	}
	_, err := s.small(1)
	return err
}

// uint reads a big-endian unsigned integer of n bytes.
func (s *wire) uint(n int) (uint64, error) {
	b, err := s.small(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// length reads the length that follows a str/bin/array/map/ext marker.
func (s *wire) length(n int) (int64, error) {
	v, err := s.uint(n)
	return int64(v), err
}

// value passes one msgpack value on (msgpack spec, "Formats").
func (s *wire) value(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested too deep", errBadRequest)
	}
	b, err := s.byte()
	if err != nil {
		return err
	}
	switch {
	case b <= 0x7f || b >= 0xe0, b == 0xc0, b == 0xc2, b == 0xc3: // fixint, nil, bool
		return nil
	case b >= 0x80 && b <= 0x8f:
		return s.items(2*int64(b&0x0f), depth)
	case b >= 0x90 && b <= 0x9f:
		return s.items(int64(b&0x0f), depth)
	case b >= 0xa0 && b <= 0xbf:
		return s.copyN(int64(b & 0x1f))
	}
	sized := func(lenBytes int, mult int64, extra int64) error {
		n, err := s.length(lenBytes)
		if err != nil {
			return err
		}
		return s.copyN(n*mult + extra)
	}
	switch b {
	case 0xc4, 0xd9: // bin 8, str 8
		return sized(1, 1, 0)
	case 0xc5, 0xda:
		return sized(2, 1, 0)
	case 0xc6, 0xdb:
		return sized(4, 1, 0)
	case 0xc7: // ext 8/16/32: length, type, data
		return sized(1, 1, 1)
	case 0xc8:
		return sized(2, 1, 1)
	case 0xc9:
		return sized(4, 1, 1)
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return s.copyN(4)
	case 0xcb, 0xcf, 0xd3:
		return s.copyN(8)
	case 0xcc, 0xd0:
		return s.copyN(1)
	case 0xcd, 0xd1:
		return s.copyN(2)
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext 1, 2, 4, 8, 16 (+ type)
		return s.copyN(1 + int64(1)<<(b-0xd4))
	case 0xdc, 0xde: // array 16, map 16
		n, err := s.length(2)
		if err != nil {
			return err
		}
		if b == 0xde {
			n *= 2
		}
		return s.items(n, depth)
	case 0xdd, 0xdf:
		n, err := s.length(4)
		if err != nil {
			return err
		}
		if b == 0xdf {
			n *= 2
		}
		return s.items(n, depth)
	}
	return fmt.Errorf("%w: byte 0x%x", errBadRequest, b)
}

func (s *wire) items(n int64, depth int) error {
	for i := int64(0); i < n; i++ {
		if err := s.value(depth + 1); err != nil {
			return err
		}
	}
	return nil
}

// bytesValue reads a str or bin value of at most max bytes.
func (s *wire) bytesValue(max int) ([]byte, error) {
	b, err := s.byte()
	if err != nil {
		return nil, err
	}
	var n int64
	switch {
	case b >= 0xa0 && b <= 0xbf:
		n = int64(b & 0x1f)
	case b == 0xc0:
		return nil, nil // nil
	case b == 0xc4 || b == 0xd9:
		n, err = s.length(1)
	case b == 0xc5 || b == 0xda:
		n, err = s.length(2)
	case b == 0xc6 || b == 0xdb:
		n, err = s.length(4)
	default:
		return nil, fmt.Errorf("%w: want bytes, byte 0x%x", errBadRequest, b)
	}
	if err != nil {
		return nil, err
	}
	if n > int64(max) {
		return nil, fmt.Errorf("%w: %d bytes where at most %d fit", errBadRequest, n, max)
	}
	return s.small(int(n))
}

// intValue reads an integer value.
func (s *wire) intValue() (int64, error) {
	b, err := s.byte()
	if err != nil {
		return 0, err
	}
	switch {
	case b <= 0x7f:
		return int64(b), nil
	case b >= 0xe0:
		return int64(int8(b)), nil
	}
	var n int
	switch b {
	case 0xcc, 0xd0:
		n = 1
	case 0xcd, 0xd1:
		n = 2
	case 0xce, 0xd2:
		n = 4
	case 0xcf, 0xd3:
		n = 8
	default:
		return 0, fmt.Errorf("%w: want an integer, byte 0x%x", errBadRequest, b)
	}
	v, err := s.uint(n)
	if err != nil {
		return 0, err
	}
	if b >= 0xd0 { // signed
		shift := 64 - 8*n
		return int64(v<<shift) >> shift, nil
	}
	return int64(v), nil
}

// request reads one request map, checking its sender, and returns the
// snapshot size an InstallSnapshot announces.
func (s *wire) request(node string) (size int64, err error) {
	b, err := s.byte()
	if err != nil {
		return 0, err
	}
	var n int64
	switch {
	case b >= 0x80 && b <= 0x8f:
		n = int64(b & 0x0f)
	case b == 0xde:
		n, err = s.length(2)
	case b == 0xdf:
		n, err = s.length(4)
	default:
		return 0, fmt.Errorf("%w: a request is a map, byte 0x%x", errBadRequest, b)
	}
	if err != nil {
		return 0, err
	}
	var addr, leader []byte
	var seen bool
	for i := int64(0); i < n; i++ {
		key, err := s.bytesValue(64)
		if err != nil {
			return 0, err
		}
		switch string(key) {
		case "ID":
			id, err := s.bytesValue(256)
			if err != nil {
				return 0, err
			}
			if string(id) != node {
				return 0, fmt.Errorf("%w: header names %q, certificate %q", errClaim, id, node)
			}
			seen = true
		case "Addr":
			if addr, err = s.bytesValue(1024); err != nil {
				return 0, err
			}
		case "Leader", "Candidate":
			if leader, err = s.bytesValue(1024); err != nil {
				return 0, err
			}
		case "Size":
			if size, err = s.intValue(); err != nil {
				return 0, err
			}
		default:
			if err := s.value(0); err != nil {
				return 0, err
			}
		}
	}
	if !seen {
		return 0, fmt.Errorf("%w: no sender ID", errClaim)
	}
	if len(leader) > 0 && !bytes.Equal(leader, addr) {
		return 0, fmt.Errorf("%w: legacy sender %q differs from the header's %q", errClaim, leader, addr)
	}
	return size, nil
}
