package imapd

import (
	"net"
	"sync"
)

// corkConn lets a session batch the many small responses of one command
// (FETCH of 100,000 messages) into few writes. go-imap flushes its
// buffer after every response line; while corked, those flushes land in
// this buffer instead of a system call each, and uncork sends them. The
// session always uncorks before its command returns, so nothing waits here
// across commands.
type corkConn struct {
	net.Conn
	mu     sync.Mutex
	corked bool
	buf    []byte
}

const corkFlushBytes = 64 << 10

func newCorkConn(c net.Conn) *corkConn { return &corkConn{Conn: c} }

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
