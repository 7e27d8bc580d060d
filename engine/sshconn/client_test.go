package sshconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/sshconn/sshdtest"
)

func TestMain(m *testing.M) {
	if MuxRequested() { // a connection keeper started by a test (TestPersist)
		os.Exit(ServeMux(os.Stdin, os.Stdout))
	}
	// Keys from the agent of whoever runs the tests must not change their outcome.
	os.Unsetenv("SSH_AUTH_SOCK")
	os.Exit(m.Run())
}

// dial connects to s with a known_hosts file that lists it, and closes the client when the test
// ends.
func dial(t *testing.T, s sshd, mod func(*Config)) *Client {
	t.Helper()
	cfg := s.config("node1", s.KnownHosts(t))
	if mod != nil {
		mod(&cfg)
	}
	c, err := Dial(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestExec(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	c := dial(t, s, nil)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	tests := []struct {
		name  string
		cmd   string
		stdin string
		want  engine.ExecResult
		// anyStderr: bash may report the killed process on stderr, or not (a session's bash
		// execs a last command itself, a command shell's subshell forks for it)
		anyStderr bool
	}{
		{name: "stdout", cmd: "echo hello", want: engine.ExecResult{Stdout: []byte("hello\n")}},
		{name: "stderr and exit code", cmd: "echo out; echo oops >&2; exit 3",
			want: engine.ExecResult{Stdout: []byte("out\n"), Stderr: []byte("oops\n"), ExitCode: 3}},
		{name: "shell syntax", cmd: "x=2; echo $((x+1)) | tr 3 Z && false || echo ok",
			want: engine.ExecResult{Stdout: []byte("Z\nok\n")}},
		{name: "stdin", cmd: "tr a-z A-Z", stdin: "secret text\n", want: engine.ExecResult{Stdout: []byte("SECRET TEXT\n")}},
		{name: "no stdin is EOF", cmd: "cat; echo done", want: engine.ExecResult{Stdout: []byte("done\n")}},
		{name: "large stdin and stdout", cmd: "cat", stdin: big, want: engine.ExecResult{Stdout: []byte(big)}},
		{name: "killed by signal", cmd: "sh -c 'kill -9 $$'", want: engine.ExecResult{ExitCode: 128 + 9}, anyStderr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := engine.Command{Cmd: tt.cmd}
			if tt.stdin != "" {
				cmd.Stdin = strings.NewReader(tt.stdin)
			}
			got, err := c.Exec(context.Background(), cmd)
			if err != nil {
				t.Fatal(err)
			}
			if tt.anyStderr {
				got.Stderr = tt.want.Stderr
			}
			if got.ExitCode != tt.want.ExitCode || !bytes.Equal(got.Stdout, tt.want.Stdout) || !bytes.Equal(got.Stderr, tt.want.Stderr) {
				t.Errorf("Exec(%q) = exit %d, stdout %.80q, stderr %.80q; want exit %d, stdout %.80q, stderr %.80q",
					tt.cmd, got.ExitCode, got.Stdout, got.Stderr, tt.want.ExitCode, tt.want.Stdout, tt.want.Stderr)
			}
		})
	}
	if n := c.Connects(); n != 1 {
		t.Errorf("Connects() = %d, want 1", n)
	}
}

func TestConcurrentExecsShareOneConnection(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	c := dial(t, s, nil) // MaxSessions 8, below sshd's 10: 40 at once would fail without the limit
	const n = 40
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			res, err := c.Exec(context.Background(), engine.Command{Cmd: fmt.Sprintf("sleep 0.02; echo %d", i)})
			if err == nil && string(res.Stdout) != fmt.Sprintf("%d\n", i) {
				err = fmt.Errorf("stdout %q", res.Stdout)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := s.Accepted(); got != 1 {
		t.Errorf("sshd accepted %d connections, want 1", got)
	}
	if got := c.Connects(); got != 1 {
		t.Errorf("Connects() = %d, want 1", got)
	}
}

func TestMaxSessionsBoundsConcurrency(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	const limit = 3
	c := dial(t, s, func(c *Config) { c.MaxSessions = limit })
	trace := filepath.Join(t.TempDir(), "trace")
	var wg sync.WaitGroup
	for range 3 * limit {
		wg.Go(func() {
			cmd := fmt.Sprintf("echo s >> %[1]s; sleep 0.1; echo e >> %[1]s", engine.ShellQuote(trace))
			if _, err := engine.Run(context.Background(), c, cmd); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	data, err := os.ReadFile(trace) // sshd runs on this machine
	if err != nil {
		t.Fatal(err)
	}
	running, most := 0, 0
	for _, l := range strings.Fields(string(data)) {
		if l == "s" {
			running++
		} else {
			running--
		}
		most = max(most, running)
	}
	if most > limit || most < 2 {
		t.Errorf("at most %d commands ran at once, want between 2 and %d (trace %q)", most, limit, data)
	}
}

func TestExecRefusesSecretOnCommandLine(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	secrets := engine.NewSecrets()
	secrets.Add("hunter2")
	cfg := s.config("node1", s.KnownHosts(t))
	c, err := Dial(context.Background(), cfg, secrets)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	_, err = c.Exec(context.Background(), engine.Command{Cmd: "echo hunter2 > /dev/null"})
	if !errors.Is(err, ErrSecretInCommand) {
		t.Fatalf("Exec with a secret on the command line: err = %v, want ErrSecretInCommand", err)
	}
	if strings.Contains(err.Error(), "hunter2") || !strings.HasPrefix(err.Error(), "node1: ") {
		t.Errorf("error %q should name the host and not the secret", err)
	}
	// On stdin it is fine.
	res, err := c.Exec(context.Background(), engine.Command{Cmd: "cat", Stdin: strings.NewReader("hunter2")})
	if err != nil || string(res.Stdout) != "hunter2" {
		t.Errorf("secret on stdin: stdout %q, err %v", res.Stdout, err)
	}
}

func TestExecCancel(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	c := dial(t, s, func(c *Config) { c.MaxSessions = 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exec(ctx, engine.Command{Cmd: "sleep 30.137"})
	if !errors.Is(err, context.DeadlineExceeded) || !strings.HasPrefix(err.Error(), "node1: command cancelled") {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Exec returned %s after its context ended", d)
	}

	// sshd keeps the session while the command runs (it does not signal root's commands), so
	// the only session slot stays taken until the command ends.
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	if _, err := c.Exec(short, engine.Command{Cmd: "true"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("exec while the cancelled command runs: err = %v, want to wait for the slot", err)
	}
	var killed int
	for _, pid := range sshdtest.Descendants(s.PID()) {
		if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); string(cmdline) == "sleep\x0030.137\x00" {
			syscall.Kill(pid, syscall.SIGKILL)
			killed++
		}
	}
	if killed != 1 {
		t.Fatalf("found %d processes of the cancelled command on the host, want 1", killed)
	}
	long, cancelLong := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelLong()
	if _, err := engine.Run(long, c, "true"); err != nil {
		t.Fatalf("exec after the cancelled command ended: %v", err)
	}
}

// echoServer listens on loopback and sends back what each connection sends, until the test ends.
func echoServer(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(conn, conn); conn.Close() }()
		}
	}()
	return l
}

func TestDialContext(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	c := dial(t, s, nil)
	l := echoServer(t)

	conn, err := c.DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo over the forwarded connection: %q, %v", buf, err)
	}
	conn.Close()

	t.Run("deadline", func(t *testing.T) {
		conn, err := c.DialContext(context.Background(), "tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// Nothing was written, so nothing comes back: the read must end at the deadline.
		if err := conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = conn.Read(make([]byte, 1))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("read past the deadline: err = %v, want a timeout", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("read returned %s after a 100ms deadline", d)
		}
		if _, err := conn.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("write after the deadline closed the connection: err = %v", err)
		}
	})
	t.Run("closed port", func(t *testing.T) {
		_, err := c.DialContext(context.Background(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(sshdtest.FreePort(t))))
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) || !strings.HasPrefix(err.Error(), "node1: dial 127.0.0.1:") {
			t.Errorf("err = %v, want an OpenChannelError naming the host", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := c.DialContext(ctx, "tcp", l.Addr().String()); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
	if got := s.Accepted(); got != 1 {
		t.Errorf("sshd accepted %d connections, want 1", got)
	}
}

func TestHostKeyStrict(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	hostFP := ssh.FingerprintSHA256(s.HostKeys[0].Pub())
	other := sshdtest.NewKey(t, t.TempDir(), "other", "ed25519")
	dir := t.TempDir()

	t.Run("unknown", func(t *testing.T) {
		for _, file := range []string{filepath.Join(dir, "missing"), writeFile(t, dir, "empty", "")} {
			_, err := Dial(context.Background(), s.config("node1", file), nil)
			var ue *UnknownHostKeyError
			t.Logf("error: %v", err)
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want UnknownHostKeyError", err)
			}
			for _, want := range []string{"node1 (" + s.Addr() + ")", hostFP, "accept-new", file} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if ue.Line != knownhosts.Line([]string{s.Addr()}, s.HostKeys[0].Pub()) {
				t.Errorf("UnknownHostKeyError.Line = %q", ue.Line)
			}
		}
	})

	t.Run("changed", func(t *testing.T) {
		file := writeFile(t, dir, "changed", "# comment\n"+knownhosts.Line([]string{s.Addr()}, other.Pub())+"\n")
		_, err := Dial(context.Background(), s.config("node1", file), nil)
		var ce *HostKeyChangedError
		t.Logf("error: %v", err)
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want HostKeyChangedError", err)
		}
		want := []KnownKey{{KeyType: "ssh-ed25519", Fingerprint: ssh.FingerprintSHA256(other.Pub()), File: file, Line: 2}}
		if diff := cmp.Diff(want, ce.Expected); diff != "" {
			t.Errorf("Expected (-want +got):\n%s", diff)
		}
		for _, want := range []string{"node1", "HOST KEY CHANGED", "offered ssh-ed25519 " + hostFP, ssh.FingerprintSHA256(other.Pub()), file + ":2"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	})

	t.Run("other host's key does not count", func(t *testing.T) {
		file := writeFile(t, dir, "other-host", knownhosts.Line([]string{"127.0.0.1:1"}, s.HostKeys[0].Pub())+"\n")
		var ue *UnknownHostKeyError
		if _, err := Dial(context.Background(), s.config("node1", file), nil); !errors.As(err, &ue) {
			t.Fatalf("err = %v, want UnknownHostKeyError", err)
		}
	})

	if got := s.Accepted(); got != 0 {
		t.Errorf("sshd accepted %d connections after refused host keys, want 0", got)
	}

	t.Run("insecure", func(t *testing.T) {
		cfg := s.config("node1", filepath.Join(dir, "missing"))
		cfg.HostKeyPolicy = Insecure
		c, err := Dial(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
}

func TestHostKeyAcceptNew(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	for _, hashed := range []bool{false, true} {
		t.Run(fmt.Sprintf("hashed=%v", hashed), func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "ssh", "known_hosts") // directory created too
			cfg := s.config("node1", file)
			cfg.HostKeyPolicy, cfg.HashKnownHosts = AcceptNew, hashed
			c, err := Dial(context.Background(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.HasPrefix(string(data), "|1|"); got != hashed || strings.Count(string(data), "\n") != 1 {
				t.Errorf("known_hosts after accept-new:\n%s", data)
			}
			// Now strict accepts it, and accept-new does not record it again.
			cfg.HostKeyPolicy = Strict
			if c, err = Dial(context.Background(), cfg, nil); err != nil {
				t.Fatalf("strict after accept-new: %v", err)
			}
			c.Close()
			cfg.HostKeyPolicy = AcceptNew
			if c, err = Dial(context.Background(), cfg, nil); err != nil {
				t.Fatal(err)
			}
			c.Close()
			if again, _ := os.ReadFile(file); !bytes.Equal(again, data) {
				t.Errorf("known_hosts changed on a second accept-new:\n%s", again)
			}
		})
	}

	t.Run("refuses a changed key", func(t *testing.T) {
		other := sshdtest.NewKey(t, t.TempDir(), "other", "ed25519")
		file := writeFile(t, t.TempDir(), "known_hosts", knownhosts.Line([]string{s.Addr()}, other.Pub())) // no final newline
		cfg := s.config("node1", file)
		cfg.HostKeyPolicy = AcceptNew
		var ce *HostKeyChangedError
		_, err := Dial(context.Background(), cfg, nil)
		t.Logf("error: %v", err)
		if !errors.As(err, &ce) {
			t.Fatalf("err = %v, want HostKeyChangedError", err)
		}
		if data, _ := os.ReadFile(file); strings.Count(string(data), "ssh-ed25519") != 1 {
			t.Errorf("known_hosts was modified:\n%s", data)
		}
	})
}

func TestHostKeyAcceptNewConcurrent(t *testing.T) {
	t.Parallel()
	// One sshd on ten loopback addresses: ten "hosts" for known_hosts.
	var listen []string
	for i := 2; i < 12; i++ {
		listen = append(listen, fmt.Sprintf("127.0.0.%d", i))
	}
	s := startSSHD(t, sshdtest.Options{Listen: listen, Extra: []string{"MaxStartups 100"}})
	file := writeFile(t, t.TempDir(), "known_hosts", "# existing comment without newline")
	var wg sync.WaitGroup
	for _, a := range listen {
		for range 3 { // the same host dialled three times at once is recorded once
			wg.Go(func() {
				cfg := s.config(a, file)
				cfg.Address, cfg.HostKeyPolicy = a, AcceptNew
				c, err := Dial(context.Background(), cfg, nil)
				if err != nil {
					t.Error(err)
					return
				}
				c.Close()
			})
		}
	}
	wg.Wait()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 1+len(listen) {
		t.Fatalf("known_hosts has %d lines, want %d:\n%s", len(lines), 1+len(listen), data)
	}
	cb, err := knownhosts.New(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range listen {
		hostport := net.JoinHostPort(a, strconv.Itoa(s.Port))
		if err := cb(hostport, &net.TCPAddr{IP: net.ParseIP(a), Port: s.Port}, s.HostKeys[0].Pub()); err != nil {
			t.Errorf("%s: %v", hostport, err)
		}
	}
}

func TestHostKeyOfAnotherTypeRecorded(t *testing.T) {
	t.Parallel()
	// The host has an ECDSA and an ed25519 key, and known_hosts has only the ed25519 one (as
	// ssh(1) records it). The ssh package prefers ECDSA: the client must ask for the recorded
	// type instead of calling the ECDSA key a changed key.
	for _, order := range [][]string{{"ecdsa", "ed25519"}, {"ed25519", "ecdsa"}} {
		s := startSSHD(t, sshdtest.Options{HostKeyTypes: order})
		recorded := s.HostKeys[0]
		if order[0] != "ed25519" {
			recorded = s.HostKeys[1]
		}
		file := writeFile(t, t.TempDir(), "known_hosts", knownhosts.Line([]string{s.Addr()}, recorded.Pub())+"\n")
		c, err := Dial(context.Background(), s.config("node1", file), nil)
		if err != nil {
			t.Fatalf("host keys %v: %v", order, err)
		}
		c.Close()
	}
}

func TestAuthFailure(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	wrong := sshdtest.NewKey(t, t.TempDir(), "id_wrong", "ed25519")
	cfg := s.config("node1", s.KnownHosts(t))
	cfg.PrivateKeys = []string{wrong.File}
	_, err := Dial(context.Background(), cfg, nil)
	var ae *AuthError
	t.Logf("error: %v", err)
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want AuthError", err)
	}
	for _, want := range []string{"node1 (" + s.Addr() + ")", "user " + s.User, wrong.File, ssh.FingerprintSHA256(wrong.Pub())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestUnreachable(t *testing.T) {
	t.Parallel()
	known := writeFile(t, t.TempDir(), "known_hosts", "")
	key := sshdtest.NewKey(t, t.TempDir(), "id", "ed25519")

	// A port nothing listens on.
	port := sshdtest.FreePort(t)
	cfg := Config{Name: "node2", Address: "127.0.0.1", Port: port, PrivateKeys: []string{key.File}, KnownHosts: known}
	_, err := Dial(context.Background(), cfg, nil)
	var ue *UnreachableError
	t.Logf("error: %v", err)
	if want := fmt.Sprintf("node2 (127.0.0.1:%d): connection refused; check", port); !errors.As(err, &ue) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("closed port: err = %v, want %q", err, want)
	}

	// A server that accepts TCP connections and never speaks SSH.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	cfg.Port, cfg.ConnectTimeout = l.Addr().(*net.TCPAddr).Port, 300*time.Millisecond
	start := time.Now()
	_, err = Dial(context.Background(), cfg, nil)
	t.Logf("error: %v", err)
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "timed out after 300ms during the SSH handshake") {
		t.Errorf("silent server: err = %v, want a handshake timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("silent server: Dial took %s with a 300ms timeout", d)
	}
}

func TestJumpHost(t *testing.T) {
	t.Parallel()
	target := startSSHD(t, sshdtest.Options{})
	jump := startSSHD(t, sshdtest.Options{Client: &target.Client})
	closedJump := startSSHD(t, sshdtest.Options{Client: &target.Client, Extra: []string{"AllowTcpForwarding no"}})
	known := writeFile(t, t.TempDir(), "known_hosts",
		knownhosts.Line([]string{target.Addr()}, target.HostKeys[0].Pub())+"\n"+
			knownhosts.Line([]string{jump.Addr()}, jump.HostKeys[0].Pub())+"\n"+
			knownhosts.Line([]string{closedJump.Addr()}, closedJump.HostKeys[0].Pub())+"\n")

	cfg := target.config("node2", known)
	j := jump.config("bastion", "") // known_hosts and keys come from the target's config
	j.PrivateKeys = nil
	cfg.Jump = &j
	c, err := Dial(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Exec(context.Background(), engine.Command{Cmd: "echo through"})
	if err != nil || string(res.Stdout) != "through\n" {
		t.Fatalf("exec through the jump host: %q, %v", res.Stdout, err)
	}
	if jump.Accepted() != 1 || target.Accepted() != 1 {
		t.Errorf("accepted connections: jump %d, target %d; want 1 and 1", jump.Accepted(), target.Accepted())
	}

	// A jump host that forbids forwarding proves the connection goes through the jump host.
	cj := closedJump.config("bastion2", "")
	cfg.Jump = &cj
	_, err = Dial(context.Background(), cfg, nil)
	var ue *UnreachableError
	t.Logf("error: %v", err)
	if !errors.As(err, &ue) || ue.Via != "bastion2" || !strings.HasPrefix(err.Error(), "node2 ("+target.Addr()+") via bastion2: ") {
		t.Errorf("through a jump host without forwarding: err = %v", err)
	}

	// The jump host itself unreachable.
	dead := Config{Name: "bastion3", Address: "127.0.0.1", Port: sshdtest.FreePort(t)}
	cfg.Jump = &dead
	_, err = Dial(context.Background(), cfg, nil)
	t.Logf("error: %v", err)
	if !errors.As(err, &ue) || ue.Host != "bastion3" || !strings.HasPrefix(err.Error(), "node2: through jump host: bastion3 ") {
		t.Errorf("unreachable jump host: err = %v", err)
	}
}

func TestReconnectAfterSSHDRestart(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	c := dial(t, s, nil)
	if _, err := engine.Run(context.Background(), c, "true"); err != nil {
		t.Fatal(err)
	}

	// The host reboots between two commands: the next command connects again, transparently.
	s.Restart()
	out, err := engine.Run(context.Background(), c, "echo again")
	if err != nil || string(out) != "again\n" {
		t.Fatalf("exec after sshd restart: %q, %v", out, err)
	}
	if c.Connects() != 2 || s.Accepted() != 2 {
		t.Errorf("Connects() = %d, sshd accepted %d; want 2 and 2", c.Connects(), s.Accepted())
	}

	// The host goes down under a running command: the command is not run again.
	errc := killUnderCommand(t, c, s)
	err = <-errc
	var le *LostError
	t.Logf("error: %v", err)
	if !errors.As(err, &le) || !le.Running || !strings.Contains(err.Error(), "node1: connection lost while the command was running") {
		t.Fatalf("command under a dying connection: err = %v, want LostError with Running", err)
	}

	// The host stays down: the next command says so clearly.
	_, err = c.Exec(context.Background(), engine.Command{Cmd: "true"})
	var ue *UnreachableError
	t.Logf("error: %v", err)
	if !errors.As(err, &le) || !errors.As(err, &ue) || !strings.Contains(err.Error(), "reconnecting failed: node1 ("+s.Addr()+"): connection refused") {
		t.Fatalf("exec while sshd is down: err = %v", err)
	}
	// And it comes back.
	if err := s.StartAgain(); err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Run(context.Background(), c, "true"); err != nil {
		t.Fatalf("exec after sshd came back: %v", err)
	}

	// Forwarded connections reconnect too.
	s.Restart()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	conn, err := c.DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("dial after sshd restart: %v", err)
	}
	conn.Close()
	if c.Connects() != 4 {
		t.Errorf("Connects() = %d, want 4", c.Connects())
	}
}

// killUnderCommand starts a long command over c, kills s once it runs, and returns the channel
// that gets the command's error.
func killUnderCommand(t *testing.T, c *Client, s sshd) chan error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), engine.Command{Cmd: "touch " + filepath.Join(s.Dir, "started") + "; sleep 30"})
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the command to start", func() bool {
		_, err := os.Stat(filepath.Join(s.Dir, "started"))
		return err == nil
	})
	s.Kill()
	return errc
}

func TestKeepAliveDetectsVanishedHost(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	const interval = 100 * time.Millisecond
	c := dial(t, s, func(c *Config) { c.KeepAlive = interval })
	started := filepath.Join(s.Dir, "started")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), engine.Command{Cmd: "touch " + started + "; sleep 30"})
		errc <- err
	}()
	waitFor(t, 5*time.Second, "the command to start", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	// Freeze sshd and its connection: TCP stays up, nothing answers, as in a partition.
	s.Signal(syscall.SIGSTOP)
	start := time.Now()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Exec still hangs 10s after the host stopped answering")
	}
	elapsed := time.Since(start)
	var le *LostError
	t.Logf("error: %v", err)
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "no answer to keepalive") {
		t.Errorf("err = %v, want LostError for a keepalive timeout", err)
	}
	if elapsed > 3*interval+time.Second {
		t.Errorf("Exec failed %s after the host stopped answering; want about 3 x %s", elapsed, interval)
	}
}

func TestAgent(t *testing.T) {
	s := startSSHD(t, sshdtest.Options{})
	sock := serveAgent(t, s.Client)
	t.Setenv("SSH_AUTH_SOCK", sock)
	cfg := s.config("node1", s.KnownHosts(t))
	cfg.PrivateKeys = nil
	c, err := Dial(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()

	// A wrong key file is tried first, then the agent's key.
	wrong := sshdtest.NewKey(t, t.TempDir(), "id_wrong", "ed25519")
	cfg.PrivateKeys = []string{wrong.File}
	if c, err = Dial(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// serveAgent serves an ssh-agent holding key on a unix socket until the test ends.
func serveAgent(t *testing.T, key sshdtest.Key) string {
	t.Helper()
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key.Priv, Comment: "test key"}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { agent.ServeAgent(keyring, conn); conn.Close() })
		}
	})
	return sock
}

// silencer is a TCP relay in front of a host that can fall silent, as a host does whose power or
// network is cut: once silenced it stops relaying on the connections it has (no FIN, no reset)
// and accepts new ones without ever answering, counting them.
type silencer struct {
	l net.Listener

	mu       sync.Mutex
	silent   bool
	attempts int        // connections accepted while silent
	conns    []net.Conn // every connection, closed at the end
}

func newSilencer(t *testing.T, upstream string) *silencer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &silencer{l: l}
	t.Cleanup(func() {
		l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	go func() {
		for {
			down, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, down)
			silent := p.silent
			if silent {
				p.attempts++
			}
			p.mu.Unlock()
			if silent {
				continue // held, never answered
			}
			up, err := net.Dial("tcp", upstream)
			if err != nil {
				down.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			go p.copy(up, down)
			go p.copy(down, up)
		}
	}()
	return p
}

// copy relays from src to dst until either ends or the relay falls silent.
func (p *silencer) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		silent := p.silent
		p.mu.Unlock()
		if silent {
			return // drop it, and everything after it: neither end hears of it
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *silencer) port() int { return p.l.Addr().(*net.TCPAddr).Port }

// dialSilencer starts sshd and a silencer in front of it, and connects to the silencer with mod
// applied to the Config.
func dialSilencer(t *testing.T, mod func(*Config)) (*Client, *silencer) {
	t.Helper()
	s := startSSHD(t, sshdtest.Options{})
	p := newSilencer(t, s.Addr())
	known := filepath.Join(t.TempDir(), "known_hosts")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port()))
	if err := os.WriteFile(known, []byte(knownhosts.Line([]string{addr}, s.HostKeys[0].Pub())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := dial(t, s, func(cfg *Config) {
		cfg.Address, cfg.Port, cfg.KnownHosts = "127.0.0.1", p.port(), known
		mod(cfg)
	})
	return c, p
}

func (p *silencer) set(silent bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.silent = silent
}

func (p *silencer) silentAttempts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.attempts
}

// When a host falls silent under several commands, they fail together on one attempt to
// connect again, instead of each making its own after the one before it timed out; a command
// after that tries again, and succeeds once the host answers.
func TestVanishedHostOneReconnectForWaitingCommands(t *testing.T) {
	t.Parallel()
	c, p := dialSilencer(t, func(cfg *Config) {
		cfg.KeepAlive, cfg.ConnectTimeout = 100*time.Millisecond, 400*time.Millisecond
	})
	if _, err := engine.Run(context.Background(), c, "true"); err != nil {
		t.Fatal(err)
	}

	p.set(true)
	const n = 4
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := c.Exec(context.Background(), engine.Command{Cmd: "true"})
			errs <- err
		}()
	}
	for i := 0; i < n; i++ {
		err := <-errs
		var le *LostError
		var ue *UnreachableError
		if !errors.As(err, &le) || !errors.As(err, &ue) || !strings.Contains(err.Error(), "reconnecting failed") {
			t.Errorf("command %d on the silent host: err = %v, want a LostError whose reconnection failed", i, err)
		}
		if eu := engine.UnreachableError(nil); !errors.As(err, &eu) || eu.UnreachableHost() != "node1" {
			t.Errorf("command %d on the silent host: err = %v does not say to the runner that node1 is unreachable", i, err)
		}
		if i == 0 {
			t.Logf("error: %v", err)
		}
	}
	if got := p.silentAttempts(); got != 1 {
		t.Errorf("%d commands waiting on a silent host made %d attempts to connect again, want 1 between them", n, got)
	}

	// A later command asks the host again: still silent, then back.
	before := p.silentAttempts()
	if _, err := c.Exec(context.Background(), engine.Command{Cmd: "true"}); err == nil {
		t.Error("a command on the still silent host succeeded")
	}
	if got := p.silentAttempts() - before; got != 1 {
		t.Errorf("a later command made %d attempts to connect again, want 1", got)
	}
	p.set(false)
	if out, err := engine.Run(context.Background(), c, "echo back"); err != nil || string(out) != "back\n" {
		t.Errorf("once the host answers again: %q, %v", out, err)
	}
}

// A forwarded connection's deadline holds when its host falls silent: the read ends at the
// deadline, not when the keepalive gives up on the SSH connection (a minute here).
func TestForwardedDeadlineOnSilentHost(t *testing.T) {
	t.Parallel()
	c, p := dialSilencer(t, func(cfg *Config) { cfg.KeepAlive = time.Minute })
	l := echoServer(t)
	conn, err := c.DialContext(context.Background(), "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 4)
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo before the host fell silent: %q, %v", buf, err)
	}

	p.set(true)
	if _, err := conn.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err = readResult(t, conn, 20*time.Second)
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read from the silent host past the deadline: err = %v, want a timeout", err)
	}
}
