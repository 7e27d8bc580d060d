package sshconn

import (
	"net"
	"sync/atomic"
)

// quickAckConn acknowledges what it reads at once, until the first session has started.
//
// Until sshd starts a session it leaves Nagle's algorithm on, and right after authentication it
// writes a few small packets in a row (its host keys, then the confirmation that the first session
// channel is open): each waits for the acknowledgement of the one before, and the kernel of the
// operator's machine delays that acknowledgement by up to 40 ms. Every run paid that stall once per
// host on its first command. sshd turns TCP_NODELAY on when the first session starts, so from then
// on the kernel's usual behaviour is right and the wrapper steps aside.
type quickAckConn struct {
	net.Conn
	off atomic.Bool
}

// Read implements net.Conn.
func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.off.Load() {
		quickAck(c.Conn)
	}
	return n, err
}

// done stops the immediate acknowledgements.
func (c *quickAckConn) done() { c.off.Store(true) }
