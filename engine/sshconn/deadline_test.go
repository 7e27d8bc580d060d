package sshconn

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// deafConn is a forwarded connection to a host that vanished, as an SSH channel sees it: Read
// blocks, and Close does not end it (the host never answers the close), until the test ends.
type deafConn struct {
	net.Conn // nil: only Read, Write and Close are used
	end      chan struct{}
	once     sync.Once
	closes   atomic.Int32
}

func newDeafConn(t *testing.T) *deafConn {
	d := &deafConn{end: make(chan struct{})}
	t.Cleanup(func() { d.once.Do(func() { close(d.end) }) })
	return d
}

func (d *deafConn) Read([]byte) (int, error)    { <-d.end; return 0, io.EOF }
func (d *deafConn) Write(p []byte) (int, error) { return len(p), nil }
func (d *deafConn) Close() error                { d.closes.Add(1); return nil }

// readResult reads once from c in the background; the test fails when the read has not returned
// within limit (a hang, not a speed bound).
func readResult(t *testing.T, c net.Conn, limit time.Duration) (int, error) {
	t.Helper()
	type res struct {
		n   int
		err error
	}
	done := make(chan res, 1)
	go func() {
		n, err := c.Read(make([]byte, 16))
		done <- res{n, err}
	}()
	select {
	case r := <-done:
		return r.n, r.err
	case <-time.After(limit):
		t.Fatalf("Read still blocked %s later", limit)
		return 0, nil
	}
}

func TestDeadlineEndsReadOfVanishedHost(t *testing.T) {
	tests := []struct {
		name string
		end  func(c net.Conn)
		want error
	}{
		{"read deadline", func(c net.Conn) { c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)) }, os.ErrDeadlineExceeded},
		{"deadline", func(c net.Conn) { c.SetDeadline(time.Now().Add(50 * time.Millisecond)) }, os.ErrDeadlineExceeded},
		{"deadline in the past", func(c net.Conn) {
			time.AfterFunc(50*time.Millisecond, func() { c.SetReadDeadline(time.Now().Add(-time.Second)) })
		}, os.ErrDeadlineExceeded},
		{"close", func(c net.Conn) { time.AfterFunc(50*time.Millisecond, func() { c.Close() }) }, net.ErrClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			deaf := newDeafConn(t)
			c := withDeadlines(deaf)
			tt.end(c)
			_, err := readResult(t, c, 5*time.Second)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, tt.want) {
				t.Errorf("read after: err = %v, want %v", err, tt.want)
			}
			if errors.Is(tt.want, os.ErrDeadlineExceeded) {
				if _, err := c.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("write after the deadline: err = %v", err)
				}
			}
			if deaf.closes.Load() == 0 {
				t.Error("the channel was not closed")
			}
		})
	}
}

// The data of the channel comes through whole and in order, in reads of any size, and its end
// (EOF) after it.
func TestDeadlineConnPassesData(t *testing.T) {
	a, b := net.Pipe()
	c := withDeadlines(a)
	want := bytes.Repeat([]byte("0123456789abcdef"), pumpBufferSize/8+3) // several chunks
	go func() {
		for rest := want; len(rest) > 0; {
			n := min(len(rest), 1000)
			b.Write(rest[:n])
			rest = rest[n:]
		}
		b.Close()
	}()
	if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 7)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
	if !bytes.Equal(got, want) {
		t.Errorf("read %d bytes, want the %d written, in order", len(got), len(want))
	}
	c.Close()
}
