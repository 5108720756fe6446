package imapd

import (
	"net"
	"sync"
	"syscall"
)

// corkConn lets a session batch the many small responses of one command
// (FETCH of 100,000 messages) into few writes. go-imap flushes its
// buffer after every response line; while corked, those flushes land in
// this buffer instead of a system call each, and uncork sends them. The
// session always uncorks before its command returns, so nothing waits here
// across commands.
//
// It also keeps a client that writes a literal and its closing CRLF in two
// writes with Nagle on (Python's imaplib) from stalling: the CRLF stays in
// the client's kernel until the literal is ACKed, and Linux delays that
// ACK up to 40 ms because the server has nothing to send yet (it waits for
// the CRLF). Read is only called when the buffered reader above it is
// empty, that is when the server is about to wait for bytes the client has
// not sent; Read first sends the ACK owed for everything received so far
// (quickAck), so the client's next write leaves at once. When the server
// has just answered, the ACK went with the answer and nothing is sent.
type corkConn struct {
	net.Conn
	raw    syscall.RawConn // the TCP socket, for quickAck; nil if none
	mu     sync.Mutex
	corked bool
	buf    []byte
}

const corkFlushBytes = 64 << 10

// newCorkConn wraps c; tcp is the connection's TCP socket (c itself or the
// conn c wraps), nil when there is none.
func newCorkConn(c net.Conn, tcp net.Conn) *corkConn {
	cc := &corkConn{Conn: c}
	if sc, ok := tcp.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			cc.raw = rc
		}
	}
	return cc
}

func (c *corkConn) Read(p []byte) (int, error) {
	if c.raw != nil {
		quickAck(c.raw)
	}
	return c.Conn.Read(p)
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	c.buf = append(c.buf, p...)
	if len(c.buf) >= corkFlushBytes {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (c *corkConn) flushLocked() error {
	if len(c.buf) == 0 {
		return nil
	}
	_, err := c.Conn.Write(c.buf)
	if cap(c.buf) > 4*corkFlushBytes {
		c.buf = nil
	} else {
		c.buf = c.buf[:0]
	}
	return err
}

func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	err := c.flushLocked()
	c.buf = nil
	return err
}
