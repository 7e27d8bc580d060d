package lock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbook/runbook/engine"
)

// localConn is an engine.Conn that runs commands with the local sh: real flock, real processes,
// no SSH. Cancelling ctx kills the command, as a lost session would.
// localConn runs commands with a local shell (sh when shell is empty).
type localConn struct{ shell string }

func (l localConn) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	sh := l.shell
	if sh == "" {
		sh = "sh"
	}
	c := exec.CommandContext(ctx, sh, "-c", cmd.Cmd)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if cmd.Stdout != nil {
		c.Stdout = io.MultiWriter(&stdout, cmd.Stdout)
	}
	if cmd.Stderr != nil {
		c.Stderr = io.MultiWriter(&stderr, cmd.Stderr)
	}
	if cmd.Stdin != nil {
		// Like an SSH session, the command's end does not wait for its input to end.
		r, w, err := os.Pipe()
		if err != nil {
			return engine.ExecResult{}, err
		}
		c.Stdin = r
		go func() {
			_, _ = io.Copy(w, cmd.Stdin)
			w.Close()
		}()
		defer r.Close()
	}
	err := c.Run()
	res := engine.ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exit *exec.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		res.ExitCode = exit.ExitCode()
		return res, nil
	}
	return res, err
}

func (localConn) DialContext(context.Context, string, string) (net.Conn, error) { return nil, nil }

func TestHolderRoundTrip(t *testing.T) {
	started := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   Holder
		want Holder
	}{
		{"full", Holder{PID: 42, User: "alice", Machine: "laptop", Playbook: "site.hcl", Started: started},
			Holder{PID: 42, User: "alice", Machine: "laptop", Playbook: "site.hcl", Started: started}},
		{"newlines are flattened", Holder{PID: 1, User: "a\nb", Playbook: "x\r\ny.hcl", Started: started},
			Holder{PID: 1, User: "a b", Playbook: "x  y.hcl", Started: started}},
		{"equal signs survive", Holder{PID: 7, Playbook: "a=b.hcl", Started: started},
			Holder{PID: 7, Playbook: "a=b.hcl", Started: started}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, token := decode(encode(tt.in, "abc123"))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decode(encode()) mismatch (-want +got):\n%s", diff)
			}
			if token != "abc123" {
				t.Errorf("token = %q, want abc123", token)
			}
		})
	}
}

func TestHolderString(t *testing.T) {
	started := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   Holder
		want []string
	}{
		{Holder{PID: 42, User: "alice", Machine: "laptop", Playbook: "site.hcl", Started: started},
			[]string{"alice@laptop (runbook pid 42, playbook site.hcl) since 2025-06-01 "}},
		{Holder{}, []string{"another run (it left no holder information)"}},
		{Holder{PID: 3}, []string{"unknown user (runbook pid 3)"}},
	}
	for _, tt := range tests {
		got := tt.in.String()
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%+v.String() = %q, want it to contain %q", tt.in, got, w)
			}
		}
	}
}

// TestLockFolderIsPrivate: the lock file's folder is made 0700 when missing, and a folder that
// others could plant a link in (a shared sticky folder, another user's, a symbolic link) is
// refused before the file is opened, so the file a link points at is left untouched.
func TestLockFolderIsPrivate(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	ctx := context.Background()
	hosts := map[string]engine.Conn{"h1": localConn{}}
	dir := t.TempDir()

	fresh := filepath.Join(dir, "fresh")
	rel, err := AcquireAll(ctx, hosts, Options{Path: filepath.Join(fresh, "lock")})
	if err != nil {
		t.Fatalf("lock in a folder to make: %v", err)
	}
	rel()
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("made folder: %v, %v; want mode 0700", fi, err)
	}

	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sticky := filepath.Join(dir, "sticky")
	if err := os.Mkdir(sticky, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sticky, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(dir, "linked")
	if err := os.Symlink(fresh, linked); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{"shared sticky folder": sticky, "symbolic link to a folder": linked}
	if os.Geteuid() == 0 {
		other := filepath.Join(dir, "other")
		if err := os.Mkdir(other, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases["another user's folder"] = other
	}
	for name, folder := range cases {
		path := filepath.Join(folder, "lock")
		// what a local user would plant: the lock file as a link to a file of theirs to ruin
		if err := os.Symlink(victim, path); err != nil && !os.IsExist(err) {
			t.Fatal(err)
		}
		_, err := AcquireAll(ctx, hosts, Options{Path: path})
		if err == nil || !strings.Contains(err.Error(), "is not the connecting user's own private folder") || !strings.Contains(err.Error(), folder) {
			t.Errorf("%s: %v, want a refusal naming %s", name, err, folder)
		}
		os.Remove(path)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("the file a planted link pointed at became %q", b)
	}
}

// TestLocal exercises the holding script with the local shell and flock.
func TestLocal(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "runbook.lock")
	hosts := map[string]engine.Conn{"h1": localConn{}}
	a := Options{Path: path, Holder: Holder{PID: 111, User: "alice", Machine: "m1", Playbook: "a.hcl"}}
	b := Options{Path: path, Holder: Holder{PID: 222, User: "bob", Machine: "m2", Playbook: "b.hcl"}}

	relA, err := AcquireAll(ctx, hosts, a)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}

	t.Run("second run fails at once naming the holder", func(t *testing.T) {
		start := time.Now()
		_, err := AcquireAll(ctx, hosts, Options{Path: path, Holder: b.Holder, Hint: "retry later"})
		var busy *BusyError
		if !errors.As(err, &busy) {
			t.Fatalf("err = %v, want a BusyError", err)
		}
		if busy.Holder.PID != 111 || busy.Holder.Playbook != "a.hcl" || busy.Holder.User != "alice" {
			t.Errorf("holder = %+v, want alice's run 111 of a.hcl", busy.Holder)
		}
		for _, w := range []string{"h1: locked by another run: alice@m1 (runbook pid 111, playbook a.hcl) since ", path, "; retry later"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not contain %q", err, w)
			}
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("a zero timeout took %s", d)
		}
	})

	t.Run("second run waits, says so, and gets the lock on release", func(t *testing.T) {
		var mu sync.Mutex
		var msgs []string
		waiting := make(chan struct{})
		opts := b
		opts.Timeout = 30 * time.Second
		opts.Retry = 20 * time.Millisecond
		opts.Waiting = func(host, msg string) {
			mu.Lock()
			defer mu.Unlock()
			msgs = append(msgs, msg)
			if len(msgs) == 1 {
				close(waiting)
			}
		}
		done := make(chan error, 1)
		var relB func()
		go func() {
			var err error
			relB, err = AcquireAll(ctx, hosts, opts)
			done <- err
		}()
		<-waiting
		relA()
		if err := <-done; err != nil {
			t.Fatalf("waiting run: %v", err)
		}
		defer relB()
		mu.Lock()
		defer mu.Unlock()
		if len(msgs) != 1 || !strings.HasPrefix(msgs[0], "waiting for the lock on h1 held by alice@m1 (runbook pid 111, playbook a.hcl) since ") {
			t.Errorf("waiting messages = %q, want one naming alice's run", msgs)
		}
		// the lock file now names bob's run
		out, err := engine.Run(ctx, localConn{}, "cat "+path)
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := decode(string(out)); h.PID != 222 {
			t.Errorf("lock file names %+v, want pid 222", h)
		}
	})

	t.Run("release empties the lock file and frees the lock", func(t *testing.T) {
		rel, err := AcquireAll(ctx, map[string]engine.Conn{"h2": localConn{}}, Options{Path: path + "2"})
		if err != nil {
			t.Fatal(err)
		}
		rel()
		rel() // a second release is harmless
		out, err := engine.Run(ctx, localConn{}, "cat "+path+"2; flock -n "+path+"2 true && echo free")
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != "free\n" {
			t.Errorf("after release: %q, want an empty, free lock file", out)
		}
	})
}

// TestAllOrNothing: when one host is busy, the locks taken on the others are given back.
func TestAllOrNothing(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	ctx := context.Background()
	dir := t.TempDir()
	// two "hosts" with their own lock file: the path is expanded by each host's shell
	h1 := envConn{"LOCKDIR=" + dir + "/h1"}
	h2 := envConn{"LOCKDIR=" + dir + "/h2"}
	path := "$LOCKDIR/runbook.lock"
	rel1, err := AcquireAll(ctx, map[string]engine.Conn{"h1": h1}, Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer rel1()
	_, err = AcquireAll(ctx, map[string]engine.Conn{"h1": h1, "h2": h2}, Options{Path: path})
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Host != "h1" {
		t.Fatalf("err = %v, want h1 busy", err)
	}
	rel2, err := AcquireAll(ctx, map[string]engine.Conn{"h2": h2}, Options{Path: path})
	if err != nil {
		t.Fatalf("h2 still locked by the failed attempt: %v", err)
	}
	rel2()
}

// envConn is a localConn whose shell gets an extra environment variable.
type envConn struct{ env string }

func (e envConn) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	cmd.Cmd = "export " + e.env + "; " + cmd.Cmd
	return localConn{}.Exec(ctx, cmd)
}

func (envConn) DialContext(context.Context, string, string) (net.Conn, error) { return nil, nil }

// TestLease: a holder that keeps sending heartbeats keeps the lock past its lease; a holder that
// vanished without closing its session (a partitioned client: stdin open, silent) loses it after
// the lease, so the next run can take over.
// TestLease runs the holding script under dash (its waits are timeout(1)) and bash (read -t).
func TestLease(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) { testLease(t, shell) })
	}
}

func testLease(t *testing.T, shell string) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "runbook.lock")
	hosts := map[string]engine.Conn{"h1": localConn{shell}}
	lease := time.Second

	rel, err := AcquireAll(ctx, hosts, Options{Path: path, Lease: lease, Holder: Holder{PID: 1}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * lease)
	if _, err := AcquireAll(ctx, hosts, Options{Path: path, Lease: lease}); err == nil {
		t.Fatal("a live holder lost its lock after its lease although it sent heartbeats")
	}
	rel()

	// a silent holder: the holding script with an input that stays open and says nothing
	silent := exec.Command(shell, "-c", holdScript(path, encode(Holder{PID: 2, Playbook: "gone.hcl"}, "tok"), "tok", lease, ""))
	in, err := silent.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := silent.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * lease)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), "gone.hcl") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the silent holder never took the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, err = AcquireAll(ctx, hosts, Options{Path: path, Lease: lease})
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Holder.Playbook != "gone.hcl" {
		t.Fatalf("while the silent holder's lease runs: err = %v, want busy naming gone.hcl", err)
	}
	rel2, err := AcquireAll(ctx, hosts, Options{Path: path, Lease: lease, Timeout: 5 * lease})
	if err != nil {
		t.Fatalf("after the silent holder's lease: %v", err)
	}
	rel2()
	silent.Wait()
}

func TestLineWatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		seen   bool
	}{
		{"whole line", []string{"runbook-lock-taken abc\n"}, true},
		{"split across writes", []string{"runbook-lock", "-taken a", "bc\n"}, true},
		{"after other output", []string{"noise\n", "runbook-lock-taken abc\n"}, true},
		{"other token", []string{"runbook-lock-taken abd\n"}, false},
		{"line not ended", []string{"runbook-lock-taken abc"}, false},
		{"after a long output", []string{strings.Repeat("x", 10000), "runbook-lock-taken abc\n"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newLineWatch(takenLine("abc"), false)
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			select {
			case <-w.seen:
				if !tc.seen {
					t.Fatal("seen, want not")
				}
			default:
				if tc.seen {
					t.Fatal("not seen")
				}
			}
		})
	}
}

// TestHostNameInPath: $(uname -n) in the lock path is the host's name, under dash and bash.
func TestHostNameInPath(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	name, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, shell := range []string{"sh", "bash"} {
		dir := t.TempDir()
		rel, err := AcquireAll(context.Background(), map[string]engine.Conn{"h1": localConn{shell}},
			Options{Path: dir + "/runbook-$(uname -n).lock"})
		if err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "runbook-"+name+".lock")); err != nil {
			entries, _ := os.ReadDir(dir)
			t.Errorf("%s: %v; the folder holds %v", shell, err, entries)
		}
		rel()
	}
}

// TestThen: the script given for a host runs in the holding session once the lock is taken,
// under dash and bash, and what it printed on each stream comes back whole (output without a
// final newline, output that looks like the line that says the lock is taken, a subshell that
// exits, as a probe may); a busy lock runs nothing; the lock still holds afterwards.
func TestThen(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	for _, shell := range []string{"sh", "bash"} {
		t.Run(shell, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			path := filepath.Join(dir, "runbook.lock")
			mark := filepath.Join(dir, "ran")
			hosts := map[string]engine.Conn{"h1": localConn{shell: shell}}
			script := `printf 'out1\nrunbook-lock-taken fake\nno newline'; printf 'err1\n' >&2; echo x >> ` + engine.ShellQuote(mark) + `; (exit 3)`
			s, err := Acquire(ctx, hosts, Options{Path: path, Then: map[string]string{"h1": script}})
			if err != nil {
				t.Fatal(err)
			}
			res, ok := s.Then(ctx, "h1")
			if !ok || string(res.Stdout) != "out1\nrunbook-lock-taken fake\nno newline" || string(res.Stderr) != "err1\n" {
				t.Errorf("Then(h1) = %q, %q, %v", res.Stdout, res.Stderr, ok)
			}
			// held: another run is refused, and runs no script
			_, err = Acquire(ctx, hosts, Options{Path: path, Then: map[string]string{"h1": script}})
			var busy *BusyError
			if !errors.As(err, &busy) {
				t.Errorf("second run: %v, want a BusyError", err)
			}
			s.Release()
			s, err = Acquire(ctx, hosts, Options{Path: path, Then: map[string]string{"h2": script}})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Then(ctx, "h1"); ok {
				t.Error("Then(h1) answered for a host without a script")
			}
			s.Release()
			if b, _ := os.ReadFile(mark); string(b) != "x\n" {
				t.Errorf("the script ran %q times (one x per run), want once", b)
			}
		})
	}
}

// refusedConn is a host that could not be connected.
type refusedConn struct{ err error }

func (c refusedConn) Exec(context.Context, engine.Command) (engine.ExecResult, error) {
	return engine.ExecResult{}, c.err
}

func (c refusedConn) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, c.err
}

// TestUnreachableLeftOut: a host whose connection error wraps ErrUnreachable is left out of the
// Set and the others are locked; any other connection error fails the whole attempt and leaves
// nothing locked.
func TestUnreachableLeftOut(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := "$LOCKDIR/runbook.lock"
	up := envConn{"LOCKDIR=" + dir + "/up"}
	s, err := Acquire(ctx, map[string]engine.Conn{
		"up":   up,
		"down": refusedConn{fmt.Errorf("connect: %w: connection refused", ErrUnreachable)},
	}, Options{Path: path, Then: map[string]string{"up": "echo checked", "down": "echo checked"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"up"}, s.Hosts()); diff != "" {
		t.Errorf("hosts held (-want +got):\n%s", diff)
	}
	if res, ok := s.Then(ctx, "up"); !ok || strings.TrimSpace(string(res.Stdout)) != "checked" {
		t.Errorf("up's checks: %q, %v", res.Stdout, ok)
	}
	if _, ok := s.Then(ctx, "down"); ok {
		t.Error("checks of the unreachable host came back")
	}
	if _, err := AcquireAll(ctx, map[string]engine.Conn{"up": up}, Options{Path: path}); err == nil {
		t.Error("up's lock was not held")
	}
	s.Release()

	_, err = Acquire(ctx, map[string]engine.Conn{"up": up, "broken": refusedConn{errors.New("connection lost")}}, Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), "connection lost") {
		t.Fatalf("err = %v, want the lost connection", err)
	}
	rel, err := AcquireAll(ctx, map[string]engine.Conn{"up": up}, Options{Path: path})
	if err != nil {
		t.Fatalf("up still locked by the failed attempt: %v", err)
	}
	rel()
}

// deafHost is a host that stops answering once its lock is taken: the holding session never
// sees its input end, so it would hold on until the run's connection gives up on the host.
type deafHost struct {
	localConn
	cancelled chan struct{} // closed when the holding session's context ended
}

func (d deafHost) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	if cmd.Stdin == nil {
		return d.localConn.Exec(ctx, cmd)
	}
	in := cmd.Stdin
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.Copy(pw, in) // the run's input, but never its end
		<-ctx.Done()
		pw.Close() // the local process may go now
	}()
	cmd.Stdin = pr
	type result struct {
		res engine.ExecResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := d.localConn.Exec(context.WithoutCancel(ctx), cmd)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-ctx.Done(): // as an SSH session does: the run stops waiting for the host at once
		close(d.cancelled)
		return engine.ExecResult{}, ctx.Err()
	}
}

// Release does not wait on a host that stopped answering longer than ReleaseWait: it drops the
// holding session, and the run ends.
func TestReleaseOfDeafHost(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	host := deafHost{cancelled: make(chan struct{})}
	opts := Options{Path: filepath.Join(t.TempDir(), "runbook.lock"), ReleaseWait: 100 * time.Millisecond}
	release, err := AcquireAll(context.Background(), map[string]engine.Conn{"h1": host}, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		release()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Release still waits on the deaf host 30s later")
	}
	select {
	case <-host.cancelled:
	default:
		t.Error("Release returned without dropping the holding session")
	}
}
