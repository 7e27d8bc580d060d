package sshconn

import (
	"context"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/sshconn/sshdtest"
)

// BenchmarkExec measures one command round trip (session open, exec, exit status, close) over
// one connection: the per-command overhead of a run.
func BenchmarkExec(b *testing.B) {
	s := startSSHD(b, sshdtest.Options{})
	cfg := s.config("node1", s.KnownHosts(b))
	c, err := Dial(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		if _, err := engine.Run(context.Background(), c, "true"); err != nil {
			b.Fatal(err)
		}
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
