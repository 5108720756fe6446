package imapd

import "syscall"

// quickAck makes the kernel send the ACK it is holding back for data
// already received (Linux's delayed ACK waits up to 40 ms for a reply to
// carry it). Setting TCP_QUICKACK sends a pending ACK at once; the kernel
// clears the flag again by itself, so it is set before every wait.
func quickAck(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
