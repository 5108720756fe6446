//go:build !failpoints

package failpoint

import (
	"context"
	"net"
)

// Enabled reports whether this binary was built with the failpoints tag.
const Enabled = false

// Hit reports whether the point fires now; never without the tag.
func Hit(name string, index uint64) bool { return false }

// WrapDial returns dial as it is without the tag.
func WrapDial(name string, dial func(ctx context.Context, addr string) (net.Conn, error)) func(ctx context.Context, addr string) (net.Conn, error) {
	return dial
}

// WrapListener returns ln as it is without the tag.
func WrapListener(name string, ln net.Listener) net.Listener { return ln }
