package sshconn

import (
	"net"
	"os"
	"sync"
	"time"
)

// deadlineConn gives an SSH direct-tcpip channel (which refuses deadlines) the deadline behaviour
// clients such as go-redis and go-ldap rely on. A deadline that passes closes the channel: the
// blocked Read or Write returns at once with os.ErrDeadlineExceeded, and the connection is not
// usable afterwards (clients discard a connection that timed out anyway).
//
// Closing an SSH channel only sends the host a close message: a Read blocked on the channel
// returns when the host answers it, and a host that vanished never does (the Read would last until
// the keepalive gives up on the whole SSH connection). So the channel is read by a goroutine of its
// own (pump), started at the first Read, and Read waits for that goroutine's next chunk or for the
// deadline, whichever comes first.
type deadlineConn struct {
	net.Conn

	mu      sync.Mutex
	rTimer  *time.Timer
	wTimer  *time.Timer
	expired bool
	closed  bool
	done    chan struct{} // closed when a deadline expires or Close is called

	pumpOnce sync.Once
	chunks   chan chunk    // the pump's reads, one at a time
	more     chan struct{} // tells the pump its last chunk was consumed

	readMu sync.Mutex // guards the fields below: one Read at a time
	left   []byte     // what Read has not yet returned of the last chunk
	rerr   error      // the channel's final read error, returned once left is drained
}

// chunk is one read of the channel by the pump.
type chunk struct {
	b   []byte
	err error
}

// pumpBufferSize is the size of the pump's reads: go-redis's read buffer here (so a read of its
// never waits for a second chunk of the pump's), and what each open forwarded connection costs
// in memory beside the pump's goroutine. Longer replies come in several chunks.
const pumpBufferSize = 4 << 10

// withDeadlines wraps a forwarded connection so that its deadlines work.
func withDeadlines(c net.Conn) net.Conn {
	return &deadlineConn{Conn: c, done: make(chan struct{}), chunks: make(chan chunk), more: make(chan struct{}, 1)}
}

// pump reads the channel until it ends or the connection is done, handing each chunk to Read and
// reading the next only once Read has consumed it (so its buffer is reused safely).
func (d *deadlineConn) pump() {
	buf := make([]byte, pumpBufferSize)
	for {
		n, err := d.Conn.Read(buf)
		select {
		case d.chunks <- chunk{buf[:n], err}:
		case <-d.done:
			return
		}
		if err != nil {
			return
		}
		select {
		case <-d.more:
		case <-d.done:
			return
		}
	}
}

// Read implements net.Conn.
func (d *deadlineConn) Read(p []byte) (int, error) {
	d.readMu.Lock()
	defer d.readMu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	for len(d.left) == 0 && d.rerr == nil {
		if err := d.doneErr(); err != nil {
			return 0, err
		}
		d.pumpOnce.Do(func() { go d.pump() })
		select {
		case c := <-d.chunks:
			d.left, d.rerr = c.b, c.err
			if len(c.b) == 0 && c.err == nil {
				d.more <- struct{}{} // an empty read: wait for the next
			}
		case <-d.done:
			return 0, d.doneErr()
		}
	}
	if len(d.left) > 0 {
		n := copy(p, d.left)
		d.left = d.left[n:]
		if len(d.left) == 0 && d.rerr == nil {
			d.more <- struct{}{}
		}
		return n, nil
	}
	if err := d.doneErr(); err != nil {
		return 0, err // the channel ended because the deadline passed or Close was called
	}
	return 0, d.rerr
}

// doneErr returns why the connection is done (a deadline passed, or it was closed), or nil.
func (d *deadlineConn) doneErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.expired:
		return os.ErrDeadlineExceeded
	case d.closed:
		return net.ErrClosed
	}
	return nil
}

func (d *deadlineConn) Write(p []byte) (int, error) {
	if d.isExpired() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := d.Conn.Write(p)
	if err != nil && d.isExpired() {
		return n, os.ErrDeadlineExceeded
	}
	return n, err
}

func (d *deadlineConn) isExpired() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.expired
}

func (d *deadlineConn) expire() {
	d.mu.Lock()
	if d.expired || d.closed {
		d.mu.Unlock()
		return
	}
	d.expired = true
	close(d.done)
	d.mu.Unlock()
	d.Conn.Close()
}

func (d *deadlineConn) arm(timer **time.Timer, t time.Time) {
	d.mu.Lock()
	if *timer != nil {
		(*timer).Stop()
		*timer = nil
	}
	if t.IsZero() || d.expired {
		d.mu.Unlock()
		return
	}
	wait := time.Until(t)
	if wait > 0 {
		*timer = time.AfterFunc(wait, d.expire)
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	d.expire() // a deadline in the past interrupts blocked calls at once
}

// SetDeadline implements net.Conn.
func (d *deadlineConn) SetDeadline(t time.Time) error {
	d.arm(&d.rTimer, t)
	d.arm(&d.wTimer, t)
	return nil
}

// SetReadDeadline implements net.Conn.
func (d *deadlineConn) SetReadDeadline(t time.Time) error {
	d.arm(&d.rTimer, t)
	return nil
}

// SetWriteDeadline implements net.Conn.
func (d *deadlineConn) SetWriteDeadline(t time.Time) error {
	d.arm(&d.wTimer, t)
	return nil
}

// Close implements net.Conn. A Read blocked on the connection returns at once.
func (d *deadlineConn) Close() error {
	d.mu.Lock()
	for _, t := range []*time.Timer{d.rTimer, d.wTimer} {
		if t != nil {
			t.Stop()
		}
	}
	if !d.expired && !d.closed {
		d.closed = true
		close(d.done)
	}
	d.mu.Unlock()
	return d.Conn.Close()
}
