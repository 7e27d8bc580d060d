package sshconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/sshconn/sshdtest"
)

// persistDirFor returns a private folder for keepers' sockets with a short path (a unix socket's
// path is at most 107 bytes).
func persistDirFor(t *testing.T) string {
	d, err := os.MkdirTemp("", "rbk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// echoRun is one run: it connects with cfg, has the host echo word, checks the answer and
// disconnects.
func echoRun(ctx context.Context, cfg Config, word string) error {
	c, err := Dial(ctx, cfg, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Exec(ctx, engine.Command{Cmd: "echo " + word})
	if err == nil && string(res.Stdout) != word+"\n" {
		err = fmt.Errorf("stdout %q, want %q", res.Stdout, word+"\n")
	}
	return err
}

// waitGone waits until path does not exist.
func waitGone(t *testing.T, path string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists after %s", path, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPersist: with Persist, the second run reuses the connection the first one made (sshd
// authenticates one connection for both); commands, their input, output, error output and exit
// status, and forwarded connections go through the keeper unchanged; a run that ends takes its
// commands on the host with it (what the run lock relies on); the keeper leaves Persist after the
// last run.
func TestPersist(t *testing.T) {
	s := startSSHD(t, sshdtest.Options{})
	cfg := s.config("node1", s.KnownHosts(t))
	cfg.Persist = 1500 * time.Millisecond
	cfg.PersistDir = persistDirFor(t)
	ctx := context.Background()

	c1, err := Dial(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c1.Exec(ctx, engine.Command{Cmd: "cat; echo oops >&2; exit 3", Stdin: strings.NewReader("from stdin\n")})
	if err != nil || string(res.Stdout) != "from stdin\n" || string(res.Stderr) != "oops\n" || res.ExitCode != 3 {
		t.Fatalf("exec through the keeper: %+v, %v", res, err)
	}
	big := strings.Repeat("0123456789", 100_000)
	res, err = c1.Exec(ctx, engine.Command{Cmd: "cat", Stdin: strings.NewReader(big)})
	if err != nil || string(res.Stdout) != big {
		t.Fatalf("1 MB through the keeper and back: %d bytes, %v", len(res.Stdout), err)
	}
	l := echoServer(t)
	fw, err := c1.DialContext(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := fw.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(fw, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("forwarded connection through the keeper: %q, %v", buf, err)
	}
	fw.Close()
	c1.Close()

	// A second run, with another connect timeout (as status has): no new SSH connection.
	cfg2 := cfg
	cfg2.ConnectTimeout = 3 * time.Second
	c2, err := Dial(ctx, cfg2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c2.Exec(ctx, engine.Command{Cmd: "echo two"}); err != nil || string(res.Stdout) != "two\n" {
		t.Fatalf("second run: %+v, %v", res, err)
	}
	if got := s.Accepted(); got != 1 {
		t.Errorf("sshd authenticated %d connections for two runs, want 1 (the keeper's)", got)
	}

	// A command that lives as long as its input, like the run lock: the run ends, so does it.
	pidFile := filepath.Join(t.TempDir(), "pid")
	stdin, hold := io.Pipe()
	defer hold.Close()
	go c2.Exec(ctx, engine.Command{Cmd: "echo $$ > " + pidFile + "; exec cat >/dev/null", Stdin: stdin})
	var pid int
	for deadline := time.Now().Add(5 * time.Second); pid == 0; {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if pid == 0 && time.Now().After(deadline) {
			t.Fatal("the holding command did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // it has exec'd cat
	c2.Close()
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(pid, 0) == nil; {
		if time.Now().After(deadline) {
			t.Fatalf("the command (pid %d) outlived its run by 5 s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Idle for Persist: the keeper drops the connection and, keeping no other, leaves; the next
	// run starts a keeper (a connection) again.
	waitGone(t, filepath.Join(cfg.PersistDir, keeperSocket), cfg.Persist+keeperGrace+3*time.Second)
	if err := echoRun(ctx, cfg, "three"); err != nil {
		t.Fatalf("run after the keeper left: %v", err)
	}
	if got := s.Accepted(); got != 2 {
		t.Errorf("sshd authenticated %d connections, want 2 (a new keeper)", got)
	}
}

// TestPersistErrors: a host the keeper cannot reach or log in to gives the run the same typed
// error as its own connection would, once (no second attempt), and leaves no keeper behind; a
// socket folder others can enter is not used, and the run connects by itself.
func TestPersistErrors(t *testing.T) {
	s := startSSHD(t, sshdtest.Options{})
	dir := persistDirFor(t)
	ctx := context.Background()

	t.Run("unreachable", func(t *testing.T) {
		cfg := s.config("node2", s.KnownHosts(t))
		cfg.Port = sshdtest.FreePort(t)
		cfg.Persist, cfg.PersistDir = time.Minute, dir
		_, err := Dial(ctx, cfg, nil)
		var ue *UnreachableError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), fmt.Sprintf("node2 (127.0.0.1:%d): connection refused", cfg.Port)) {
			t.Fatalf("err = %v, want an UnreachableError", err)
		}
		// the failure is not kept: the next run is told again, by a new attempt
		if _, err := Dial(ctx, cfg, nil); !errors.As(err, &ue) {
			t.Errorf("second run: err = %v, want an UnreachableError", err)
		}
	})
	t.Run("key refused", func(t *testing.T) {
		cfg := s.config("node1", s.KnownHosts(t))
		cfg.PrivateKeys = []string{sshdtest.NewKey(t, t.TempDir(), "other", "ed25519").File}
		cfg.Persist, cfg.PersistDir = time.Minute, dir
		_, err := Dial(ctx, cfg, nil)
		var ae *AuthError
		if !errors.As(err, &ae) || ae.User != cfg.User {
			t.Fatalf("err = %v, want an AuthError", err)
		}
	})
	t.Run("host key changed", func(t *testing.T) {
		other := startSSHD(t, sshdtest.Options{})
		cfg := s.config("node1", other.KnownHosts(t)) // other's key recorded for s's address
		k := filepath.Join(t.TempDir(), "known_hosts")
		b, _ := os.ReadFile(cfg.KnownHosts)
		os.WriteFile(k, bytes.ReplaceAll(b, []byte(other.Addr()), []byte(s.Addr())), 0o600)
		if s.Port == other.Port {
			t.Skip("same port")
		}
		cfg.KnownHosts = k
		cfg.Persist, cfg.PersistDir = time.Minute, dir
		_, err := Dial(ctx, cfg, nil)
		var kc *HostKeyChangedError
		var uk *UnknownHostKeyError
		if !errors.As(err, &kc) && !errors.As(err, &uk) {
			t.Fatalf("err = %v, want a host key error", err)
		}
	})
	t.Run("open folder", func(t *testing.T) {
		open := filepath.Join(dir, "open")
		if err := os.Mkdir(open, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(open, 0o755)
		before := s.Accepted()
		cfg := s.config("node1", s.KnownHosts(t))
		cfg.Persist, cfg.PersistDir = time.Minute, open
		if err := echoRun(ctx, cfg, "direct"); err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(open); len(entries) != 0 {
			t.Errorf("the open folder holds %d entries, want none", len(entries))
		}
		if got := s.Accepted() - before; got != 1 {
			t.Errorf("%d connections, want 1 (the run's own)", got)
		}
	})
}

// TestPersistStreams: commands at once through one keeper (twice as many as a run opens sessions,
// so that sessions end and start while others run), each writing interleaved output
// and error output up to its last byte: everything arrives, on the right stream, in order.
func TestPersistStreams(t *testing.T) {
	s := startSSHD(t, sshdtest.Options{})
	cfg := s.config("node1", s.KnownHosts(t))
	cfg.Persist, cfg.PersistDir = time.Second, persistDirFor(t)
	c, err := Dial(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	script := `i=0; while [ $i -lt 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; printf end >&2`
	var want, wantErr strings.Builder
	for i := 0; i < 300; i++ {
		fmt.Fprintf(&want, "out %d\n", i)
		fmt.Fprintf(&wantErr, "err %d\n", i)
	}
	wantErr.WriteString("end")
	const commands = 2 * DefaultMaxSessions
	errs := make(chan error, commands)
	for n := 0; n < commands; n++ {
		go func() {
			res, err := c.Exec(context.Background(), engine.Command{Cmd: script})
			switch {
			case err != nil:
				errs <- err
			case string(res.Stdout) != want.String() || string(res.Stderr) != wantErr.String():
				errs <- fmt.Errorf("stdout %d bytes (want %d), stderr %d bytes (want %d), ending %q",
					len(res.Stdout), want.Len(), len(res.Stderr), wantErr.Len(), res.Stderr[max(0, len(res.Stderr)-10):])
			default:
				errs <- nil
			}
		}()
	}
	for n := 0; n < commands; n++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestPersistManyHosts: one keeper serves every host, keeps each for its own Persist, and tells
// a run that a kept host went down, then connects again once it is back.
func TestPersistManyHosts(t *testing.T) {
	a, b := startSSHD(t, sshdtest.Options{}), startSSHD(t, sshdtest.Options{})
	dir := persistDirFor(t)
	ctx := context.Background()
	cfgA, cfgB := a.config("a", a.KnownHosts(t)), b.config("b", b.KnownHosts(t))
	// a's Persist leaves room for the runs between a's (a loaded machine makes a run take
	// hundreds of milliseconds); b's outlasts a's and the wait after it.
	cfgA.Persist, cfgA.PersistDir = 1500*time.Millisecond, dir
	cfgB.Persist, cfgB.PersistDir = 6*time.Second, dir
	run := func(cfg Config, word string) error { return echoRun(ctx, cfg, word) }
	for _, cfg := range []Config{cfgA, cfgB, cfgA, cfgB} {
		if err := run(cfg, cfg.Name); err != nil {
			t.Fatal(err)
		}
	}
	if a.Accepted() != 1 || b.Accepted() != 1 {
		t.Fatalf("connections: a %d, b %d; want 1 each", a.Accepted(), b.Accepted())
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "keeper.lock keeper.pub keeper.sock" {
		t.Errorf("the folder holds %q, want one keeper's files", names)
	}

	time.Sleep(cfgA.Persist + 500*time.Millisecond) // a's Persist is over, b's is not
	if err := run(cfgA, "a"); err != nil {
		t.Fatal(err)
	}
	if err := run(cfgB, "b"); err != nil {
		t.Fatal(err)
	}
	if a.Accepted() != 2 || b.Accepted() != 1 {
		t.Errorf("after a's Persist: connections a %d, b %d; want 2 and 1", a.Accepted(), b.Accepted())
	}

	b.Kill() // b goes down with the connection the keeper kept
	err := run(cfgB, "b")
	var ue *UnreachableError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("run to a host that went down: err = %v, want an UnreachableError", err)
	}
	if err := b.StartAgain(); err != nil {
		t.Fatal(err)
	}
	if err := run(cfgB, "b"); err != nil {
		t.Fatalf("run after the host came back: %v", err)
	}
}

// TestPersistLostUnderCommand: the host goes down under a running command: through the keeper,
// the run learns it as it would on its own connection (LostError, the command not run again),
// the next command says the host is unreachable, and once the host is back commands run again.
func TestPersistLostUnderCommand(t *testing.T) {
	s := startSSHD(t, sshdtest.Options{})
	cfg := s.config("node1", s.KnownHosts(t))
	cfg.Persist, cfg.PersistDir = 2*time.Second, persistDirFor(t)
	c, err := Dial(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	errc := killUnderCommand(t, c, s)
	var le *LostError
	select {
	case err = <-errc:
	case <-time.After(20 * time.Second):
		t.Fatal("the command did not end within 20 s of its host's death")
	}
	if !errors.As(err, &le) || !le.Running {
		t.Fatalf("command under a dying host: err = %v, want a LostError with Running", err)
	}
	_, err = c.Exec(context.Background(), engine.Command{Cmd: "true"})
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("exec while the host is down: err = %v, want an UnreachableError", err)
	}
	if err := s.StartAgain(); err != nil {
		t.Fatal(err)
	}
	if out, err := engine.Run(context.Background(), c, "echo back"); err != nil || string(out) != "back\n" {
		t.Fatalf("exec after the host came back: %q, %v", out, err)
	}
}

// TestPersistKeepAliveAsksHost: a run that asks whether its connection through the keeper still
// lives (as it does when a command's channel ended without an exit status) gets the host's
// answer, not the keeper's: a frozen host is found gone once the keeper's own keepalive fails.
func TestPersistKeepAliveAsksHost(t *testing.T) {
	s := startSSHD(t, sshdtest.Options{})
	cfg := s.config("node1", s.KnownHosts(t))
	cfg.Persist, cfg.PersistDir = 2*time.Second, persistDirFor(t)
	cfg.KeepAlive = 200 * time.Millisecond
	c, err := Dial(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cn, _, err := c.get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if gone, err := cn.lost(); gone {
		t.Fatalf("a live host's connection: lost (%v)", err)
	}
	s.Signal(syscall.SIGSTOP) // sshd and its connections answer nothing, TCP stays up
	lost := make(chan bool, 1)
	go func() {
		gone, _ := cn.lost()
		lost <- gone
	}()
	select {
	case gone := <-lost:
		if !gone {
			t.Fatal("a frozen host's connection through the keeper: not lost (the keeper answered for the host)")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no answer 10 s after the host froze")
	}
}
