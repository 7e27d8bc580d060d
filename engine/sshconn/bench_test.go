package sshconn

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/sshconn/sshdtest"
)

// BenchmarkExec measures one command round trip over one connection, the per-command overhead
// of a run: in a command shell (the default: the command and its frame lines through a session
// kept open), and as a session of its own (open, exec, exit status, close); with and without
// input (engine.WriteFile's upload of a small file). The ratio of the two is what command shells
// save per command; on a machine whose cores sshd's and the shells' processes share with others
// (the lab) the saving is larger than the wall time here shows, since it is CPU.
func BenchmarkExec(b *testing.B) {
	s := startSSHD(b, sshdtest.Options{})
	dir := b.TempDir()
	for _, mode := range []struct {
		name   string
		shells int
	}{{"shell", 0}, {"session", -1}} {
		cfg := s.config("node1", s.KnownHosts(b))
		cfg.Shells = mode.shells
		c, err := Dial(context.Background(), cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := engine.Run(context.Background(), c, "true"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.name+"/upload", func(b *testing.B) {
			f := engine.FileSpec{Path: filepath.Join(dir, mode.name+".conf"), Content: bytes.Repeat([]byte("port 6379\n"), 100), Mode: "0640"}
			for b.Loop() {
				if err := engine.WriteFile(context.Background(), c, f); err != nil {
					b.Fatal(err)
				}
			}
		})
		c.Close()
	}
}

// BenchmarkExecParallel runs commands concurrently over one connection.
func BenchmarkExecParallel(b *testing.B) {
	s := startSSHD(b, sshdtest.Options{})
	cfg := s.config("node1", s.KnownHosts(b))
	c, err := Dial(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := engine.Run(context.Background(), c, "true"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkDial measures connecting: TCP, SSH handshake, host key check, public key
// authentication.
func BenchmarkDial(b *testing.B) {
	s := startSSHD(b, sshdtest.Options{Extra: []string{"MaxStartups 100"}})
	cfg := s.config("node1", s.KnownHosts(b))
	for b.Loop() {
		c, err := Dial(context.Background(), cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkFirstCommand measures connecting and running the first command: what every run pays
// per host before its first result. sshd leaves Nagle's algorithm on until its first session,
// so a client that delays its acknowledgements stalls here (quickAckConn).
func BenchmarkFirstCommand(b *testing.B) {
	s := startSSHD(b, sshdtest.Options{Extra: []string{"MaxStartups 100"}})
	cfg := s.config("node1", s.KnownHosts(b))
	for b.Loop() {
		c, err := Dial(context.Background(), cfg, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := engine.Run(context.Background(), c, "true"); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkForwardedRoundTrip measures one request and its reply over a forwarded connection
// (what a Redis command costs over the host's tunnel), with go-redis's habit of setting a read
// deadline before each reply: "small" is a command's size, "16KiB" a reply the size of CLUSTER
// NODES of a 30-host cluster.
func BenchmarkForwardedRoundTrip(b *testing.B) {
	s := startSSHD(b, sshdtest.Options{})
	c, err := Dial(context.Background(), s.config("node1", s.KnownHosts(b)), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	l := echoServer(b)
	for _, size := range []struct {
		name string
		n    int
	}{{"small", 64}, {"16KiB", 16 << 10}} {
		b.Run(size.name, func(b *testing.B) {
			conn, err := c.DialContext(context.Background(), "tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			req, reply := bytes.Repeat([]byte("x"), size.n), make([]byte, size.n)
			for b.Loop() {
				conn.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := conn.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, reply); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
