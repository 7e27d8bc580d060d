package run

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/lock"
)

// hostShell is a host of the local machine: its commands run in the local bash with H set to the
// host's name (the lock path below uses it, so each host has its own lock file).
type hostShell struct {
	name string
	sh   *localShell
	// locking, when not nil, is closed by the first command that takes the run lock.
	locking chan struct{}
	once    *sync.Once
}

func (h hostShell) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	if h.locking != nil && strings.Contains(cmd.Cmd, "flock") {
		h.once.Do(func() { close(h.locking) })
	}
	cmd.Cmd = "H=" + h.name + "; " + cmd.Cmd
	return h.sh.Exec(ctx, cmd)
}

func (h hostShell) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return h.sh.DialContext(ctx, network, addr)
}

// TestLockWhileOthersConnect: a host's run lock (and the checks read with it) is taken as soon as
// that host is connected, while another host still connects; a host that cannot be connected is
// out of the run and out of the lock, and the others run.
func TestLockWhileOthersConnect(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	dir := t.TempDir()
	src := ""
	for _, h := range []string{"fast", "slow", "down"} {
		src += fmt.Sprintf("host %q { address = \"127.0.0.1\" }\n", h)
	}
	for i := 0; i < 2; i++ {
		src += fmt.Sprintf("task \"m%d\" {\n  marker {\n    path = \"%s/${self.name}-%d\"\n  }\n}\n", i, dir, i)
	}
	play := filepath.Join(dir, "play.hcl")
	if err := os.WriteFile(play, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "marker", New: func() engine.Module { return &marker{} }})
	pb := loadPlay(t, play, reg)

	sh := &localShell{}
	fastLocking := make(chan struct{})
	lockedWhileConnecting := false
	var events []Event
	var mu sync.Mutex
	opts := Options{
		Mode: Apply,
		Lock: &lock.Options{Path: filepath.Join(dir, "lock-$H")},
		Sink: SinkFunc(func(e Event) { mu.Lock(); events = append(events, e); mu.Unlock() }),
		Connector: ConnectorFunc(func(ctx context.Context, h *config.Host) (engine.Conn, error) {
			switch h.Name {
			case "fast":
				return hostShell{name: h.Name, sh: sh, locking: fastLocking, once: &sync.Once{}}, nil
			case "slow":
				// connects only once fast's lock session started, or gives up waiting
				select {
				case <-fastLocking:
					lockedWhileConnecting = true
				case <-time.After(10 * time.Second):
				}
				return hostShell{name: h.Name, sh: sh}, nil
			default:
				return nil, errors.New("connection refused")
			}
		}),
	}
	rc, err := New(pb, opts).Run(context.Background())
	if rc == nil {
		t.Fatal(err)
	}
	if !lockedWhileConnecting {
		t.Error("fast's run lock was not taken while slow was still connecting")
	}
	if !rc.PerHost["down"].Unreachable || rc.Failed != 1 {
		t.Errorf("recap: %+v, down: %+v; want down unreachable and the only failure", rc, rc.PerHost["down"])
	}
	for _, h := range []string{"fast", "slow"} {
		if c := rc.PerHost[h]; c.Changed != 2 || c.Failed != 0 {
			t.Errorf("%s: %+v, want both marks made", h, c)
		}
		for i := 0; i < 2; i++ {
			if b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("%s-%d", h, i))); err != nil || strings.TrimSpace(string(b)) != "here" {
				t.Errorf("%s-%d = %q, %v", h, i, b, err)
			}
		}
		// released at the end of the run
		if out, err := exec.Command("flock", "-n", filepath.Join(dir, "lock-"+h), "true").CombinedOutput(); err != nil {
			t.Errorf("%s's lock still held after the run: %v %s", h, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "lock-down")); err == nil {
		t.Error("the unreachable host got a lock file")
	}
	var connectFailed int
	for _, e := range events {
		if e.Type == EventResult && e.Task == "connect" && e.Host == "down" && e.Status == StatusFailed {
			connectFailed++
		}
	}
	if connectFailed != 1 {
		t.Errorf("%d connect failures reported for down, want 1", connectFailed)
	}
}
