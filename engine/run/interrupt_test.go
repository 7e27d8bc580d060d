package run_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/connect"
	"github.com/runbook/runbook/engine/lock"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules/all"
	"github.com/runbook/runbook/testenv"
)

// interruptingConn passes commands to a real connection, but the input of an upload stops after
// `after` bytes: there it interrupts the run (as SIGINT does: the run's context is cancelled)
// and its input ends with the context's error, as when runbook exits mid-upload.
type interruptingConn struct {
	engine.Conn
	after     int
	interrupt context.CancelFunc
	ctx       context.Context
	once      sync.Once
	hit       chan struct{}
}

func (c *interruptingConn) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	if cmd.Stdin != nil && strings.Contains(cmd.Cmd, ".rb-") {
		cmd.Stdin = &cutReader{r: cmd.Stdin, left: c.after, cut: func() {
			c.once.Do(func() { close(c.hit); c.interrupt() })
		}, ctx: c.ctx}
	}
	return c.Conn.Exec(ctx, cmd)
}

// cutReader reads left bytes of r, then calls cut and fails once ctx is done.
type cutReader struct {
	r    io.Reader
	left int
	cut  func()
	ctx  context.Context
}

func (r *cutReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		r.cut()
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	if len(p) > r.left {
		p = p[:r.left]
	}
	n, err := r.r.Read(p)
	r.left -= n
	return n, err
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestInterruptMidUpload interrupts an apply while a large file is being uploaded: the file on
// the host must be the old one or the new one (never a part), no temporary file may be left, and
// the run lock must be free again.
func TestInterruptMidUpload(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Nodes: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const dest = "/var/lib/redis/big.bin"
	old := bytes.Repeat([]byte("old content\n"), 1<<16)
	if out, err := lab.Exec(ctx, "node1", "yes 'old content' | head -c "+strconv.Itoa(len(old))+" > "+dest); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	newContent := make([]byte, 16<<20)
	if _, err := rand.Read(newContent); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "big.bin"), newContent, 0o644); err != nil {
		t.Fatal(err)
	}
	play := filepath.Join(dir, "play.hcl")
	if err := os.WriteFile(play, []byte(`task "big" {
  on = host.node1
  file {
    source = "big.bin"
    dest   = "`+dest+`"
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	pb, diags := config.Load(config.Options{Playbook: play, Inventories: []string{lab.InventoryPath()}, Registry: all.Registry()})
	if diags.HasErrors() {
		t.Fatal(diags)
	}

	runCtx, interrupt := context.WithCancel(ctx)
	defer interrupt()
	var release func()
	var conn *interruptingConn
	ssh := connect.NewSSH(pb)
	r := run.New(pb, run.Options{Mode: run.Apply, Connector: run.ConnectorFunc(func(ctx context.Context, h *config.Host) (engine.Conn, error) {
		c, err := ssh.Connect(ctx, h)
		if err != nil {
			return nil, err
		}
		// the run lock over the run's own connection, as the CLI takes it
		release, err = lock.AcquireAll(ctx, map[string]engine.Conn{h.Name: c}, lock.Options{Holder: lock.Holder{Playbook: "play.hcl"}})
		if err != nil {
			return nil, err
		}
		conn = &interruptingConn{Conn: c, after: len(newContent) / 2, interrupt: interrupt, ctx: runCtx, hit: make(chan struct{})}
		return conn, nil
	})})
	rc, err := r.Run(runCtx)
	if release != nil {
		release()
	}
	if conn == nil {
		t.Fatalf("never connected: %v", err)
	}
	select {
	case <-conn.hit:
	default:
		t.Fatalf("the upload was not interrupted (recap %+v, err %v)", rc, err)
	}
	t.Logf("run after the interrupt: recap %+v, err %v", rc, err)

	// The remote writer may outlive the session for a moment: wait until it is gone (no
	// process has the temporary file open and none is left), then judge the destination.
	check := "ls -a /var/lib/redis | grep -c '^big.bin.rb-' || true"
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := lab.Exec(ctx, "node1", check)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if strings.TrimSpace(out) == "0" {
			break
		}
		if time.Now().After(deadline) {
			listing, _ := lab.Exec(ctx, "node1", "ls -la /var/lib/redis")
			t.Fatalf("temporary files left after the interrupt:\n%s", listing)
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := lab.Exec(ctx, "node1", "sha256sum < "+dest+" | cut -d' ' -f1; stat -c %s "+dest)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	f := strings.Fields(out)
	switch f[0] {
	case sum(old):
		t.Logf("the destination kept its old content")
	case sum(newContent):
		t.Logf("the destination has the new content")
	default:
		t.Errorf("the destination is neither old nor new: %s bytes (old %d, new %d)", f[1], len(old), len(newContent))
	}

	// the lock is free: another run takes it at once
	c2, err := connect.NewSSH(pb).Connect(ctx, pb.Hosts[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c2.(io.Closer).Close()
	rel, err := lock.AcquireAll(ctx, map[string]engine.Conn{"node1": c2}, lock.Options{})
	if err != nil {
		t.Fatalf("run lock after the interrupt: %v", err)
	}
	rel()
}
