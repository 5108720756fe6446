//go:build !faultdelay

package consensus

import (
	"context"
	"net"
)

// plantedDelay is the switch of the WAN-delay fault in delay_fault.go
// (build tag faultdelay); it changes nothing in an ordinary build.
func plantedDelay(dial func(ctx context.Context, addr string) (net.Conn, error), ln net.Listener) (func(ctx context.Context, addr string) (net.Conn, error), net.Listener) {
	return dial, ln
}
