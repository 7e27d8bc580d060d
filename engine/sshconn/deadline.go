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
type deadlineConn struct {
	net.Conn

	mu      sync.Mutex
	rTimer  *time.Timer
	wTimer  *time.Timer
	expired bool
}

// withDeadlines wraps a forwarded connection so that its deadlines work.
func withDeadlines(c net.Conn) net.Conn { return &deadlineConn{Conn: c} }

func (d *deadlineConn) Read(p []byte) (int, error) {
	n, err := d.Conn.Read(p)
	if err != nil && d.isExpired() {
		return n, os.ErrDeadlineExceeded
	}
	return n, err
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
	d.expired = true
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

// Close implements net.Conn.
func (d *deadlineConn) Close() error {
	d.mu.Lock()
	for _, t := range []*time.Timer{d.rTimer, d.wTimer} {
		if t != nil {
			t.Stop()
		}
	}
	d.mu.Unlock()
	return d.Conn.Close()
}
