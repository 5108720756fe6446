//go:build !linux

package imapd

import "syscall"

// quickAck is a no-op where TCP_QUICKACK does not exist.
func quickAck(syscall.RawConn) {}
