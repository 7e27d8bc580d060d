package sshconn

import (
	"net"
	"syscall"
)

// quickAck asks the kernel to acknowledge what was received now rather than after its delayed-ACK
// timer (TCP_QUICKACK; the kernel clears it again by itself, so it is set after every read).
func quickAck(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
