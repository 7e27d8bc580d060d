package ldapserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LocalConfig returns a Config for a slapd on 127.0.0.1 with two free ports, for tests.
func LocalConfig(dir string) (Config, error) {
	ports := make([]int, 0, 2)
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return Config{}, fmt.Errorf("ldapserver: find a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return Config{Dir: dir, Address: "127.0.0.1", Port: ports[0], TLSPort: ports[1]}, nil
}

// Process is a slapd started by Start as a subprocess of this program.
type Process struct {
	// Info is what Prepare returned.
	Info Info

	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{}
	err    error // set before done is closed
}

// Start runs Prepare, starts Command(cfg) as a subprocess and waits until it is Ready. The caller
// must call Stop.
func Start(ctx context.Context, cfg Config) (*Process, error) {
	info, err := Prepare(cfg)
	if err != nil {
		return nil, err
	}
	argv := Command(cfg)
	p := &Process{Info: info, stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout = p.stderr
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("ldapserver: start slapd: %w", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	readyCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-readyCtx.Done():
		}
	}()
	if err := Ready(readyCtx, info); err != nil {
		select {
		case <-p.done:
			return nil, fmt.Errorf("ldapserver: slapd exited before it was ready (%v): %s", p.err, strings.TrimSpace(p.stderr.String()))
		default:
		}
		p.Stop()
		return nil, err
	}
	return p, nil
}

// Stop terminates slapd (SIGTERM, then SIGKILL after 10 seconds) and waits for it to exit.
func (p *Process) Stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("ldapserver: stop slapd: %w", err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return nil
}

// Exited returns a channel closed when slapd has exited.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Output returns what slapd printed so far.
func (p *Process) Output() string { return p.stderr.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
