package sshconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/sshconn/sshdtest"
)

// localShell runs shellScript under the given shell on this machine, with env, and ends it when
// the test ends.
func localShell(t *testing.T, shellName string, env []string) *shell {
	t.Helper()
	path, err := exec.LookPath(shellName)
	if err != nil {
		t.Skipf("%s not installed", shellName)
	}
	token := newShellToken()
	cmd := exec.Command(path, "-c", shellScript(token))
	cmd.Args[0] = shellName // as sshd starts it
	cmd.Env = env
	cmd.Dir = t.TempDir()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	end := func() {
		once.Do(func() {
			stdin.Close()
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(end)
	return startShell(token, stdin, stdout, stderr, end)
}

// alone runs script the way a session does, `bash -c`, with input in (nil: none).
func alone(t *testing.T, env []string, dir, script string, in []byte) engine.ExecResult {
	t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.Env, cmd.Dir = env, dir
	if in != nil {
		cmd.Stdin = bytes.NewReader(in)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return engine.ExecResult{Stdout: out.Bytes(), Stderr: errb.Bytes(), ExitCode: cmd.ProcessState.ExitCode()}
}

// TestShellRunsLikeASession: every command, run one after the other in one command shell, prints
// and exits exactly as `bash -c` alone does with the same input, whatever the previous command
// did (exit, cd, variables, traps, input left unread), in a UTF-8 locale too; a command or input
// with a NUL byte is refused before anything is sent, and the shell goes on.
func TestShellRunsLikeASession(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 1800) // 30 600 bytes
	tests := []struct {
		name, script string
		in           []byte
	}{
		{"stdout", "echo hello", nil},
		{"no final newline", "printf 'no newline'", nil},
		{"nothing", ":", nil},
		{"blank lines", "printf '\\n\\n'", nil},
		{"both streams and a status", "echo out; printf 'oops' >&2; exit 3", nil},
		{"exit", "exit 7", nil},
		{"state for the next", "cd /; x=1; export Y=2; trap 'echo trapped' EXIT; umask 077; set -e", nil},
		{"the state did not stay", `pwd | grep -c '^/$'; echo "x=${x-unset} Y=${Y-unset}"; umask; false; echo went on`, nil},
		{"no input is end of file", "cat; echo done", nil},
		{"input, no NUL", "od -An -c", []byte("back\\slash\r\n\xff\xfe\t-n -e %s end")},
		{"input left unread", "true", []byte("not read\n")},
		{"after unread input", "echo next", nil},
		{"input whole", "wc -c", big},
		{"exec", "exec echo replaced", nil},
		{"here-document", "cat <<'X'\nline $HOME\nX\necho after", nil},
		{"multibyte script", "printf 'é%s\\n' ü; echo ${#LC_ALL}", nil},
		{"locale of commands", `echo "LC_ALL=${LC_ALL-unset} LANG=${LANG-unset}"`, nil},
		{"looks like a frame line", "printf '\\nRBSH-0123456789abcdef 0\\n'", nil},
		{"large output", "head -c 300000 /dev/zero | tr '\\0' a; echo", nil},
		{"syntax error", "if then", nil},
	}
	for _, env := range [][]string{
		{"PATH=" + os.Getenv("PATH"), "HOME=/"},
		{"PATH=" + os.Getenv("PATH"), "HOME=/", "LANG=C.UTF-8", "LC_ALL=C.UTF-8"},
	} {
		t.Run(strings.Join(env[2:], ","), func(t *testing.T) {
			s := localShell(t, "bash", env)
			dir := t.TempDir()
			for _, tt := range tests {
				want := alone(t, env, dir, tt.script, tt.in)
				out, errb, status, err := s.run(context.Background(), tt.script, tt.in)
				if err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				if tt.name == "syntax error" {
					// bash names the script: "bash: -c: line 1:" alone, "bash: eval: line 1:" here
					errb = bytes.ReplaceAll(errb, []byte("eval:"), []byte("-c:"))
				}
				if status != want.ExitCode || !bytes.Equal(out, want.Stdout) || !bytes.Equal(errb, want.Stderr) {
					t.Errorf("%s: shell gave exit %d, stdout %.120q, stderr %.120q; alone exit %d, stdout %.120q, stderr %.120q",
						tt.name, status, out, errb, want.ExitCode, want.Stdout, want.Stderr)
				}
			}
			if _, _, _, err := s.run(context.Background(), "cat", []byte("a\x00b")); !errors.Is(err, errNUL) || s.broken {
				t.Errorf("input with a NUL byte: %v, broken %v; want errNUL and a usable shell", err, s.broken)
			}
			if _, _, _, err := s.run(context.Background(), "echo a\x00b", nil); !errors.Is(err, errNUL) {
				t.Errorf("command with a NUL byte: %v, want errNUL", err)
			}
			if out, _, _, err := s.run(context.Background(), "echo still", nil); err != nil || string(out) != "still\n" {
				t.Errorf("after the refusals: %q, %v", out, err)
			}
		})
	}
}

// TestShellNotBash: under another shell the script says so before it reads anything.
func TestShellNotBash(t *testing.T) {
	s := localShell(t, "dash", []string{"PATH=" + os.Getenv("PATH")})
	if _, _, _, err := s.run(context.Background(), "echo hello", nil); !errors.Is(err, errNoShell) {
		t.Fatalf("run under dash: err = %v, want errNoShell", err)
	}
}

// TestShellEnds: a shell that ends under a command says so (it may have run); one that ended
// before it took the command says that (it did not); a cancelled command returns at once.
func TestShellEnds(t *testing.T) {
	env := []string{"PATH=" + os.Getenv("PATH")}
	s := localShell(t, "bash", env)
	if _, _, _, err := s.run(context.Background(), "kill -9 $$", nil); !errors.Is(err, errShellEnded) || errors.Is(err, errNotTaken) {
		t.Errorf("command that killed the shell: err = %v, want errShellEnded", err)
	}
	if _, _, _, err := s.run(context.Background(), "echo late", nil); !errors.Is(err, errNotTaken) {
		t.Errorf("command sent to the ended shell: err = %v, want errNotTaken", err)
	}

	s = localShell(t, "bash", env)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, _, err := s.run(ctx, "sleep 5", nil); !errors.Is(err, context.DeadlineExceeded) || !s.broken {
		t.Errorf("cancelled command: err = %v, broken %v; want DeadlineExceeded and a broken shell", err, s.broken)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled command returned after %s", d)
	}
}

// TestReadFrames: frames come out whole however the stream is cut, a marker split across reads
// included, and the end of the stream is an error frame.
func TestReadFrames(t *testing.T) {
	const tok = "RBSH-00"
	stream := "a\nb\n" + tok + " 0\n\n" + tok + " +\nno newline\n" + tok + " 12\n"
	for name, r := range map[string]io.Reader{
		"whole":       strings.NewReader(stream),
		"byte a time": iotest.OneByteReader(strings.NewReader(stream)),
		"half":        iotest.HalfReader(strings.NewReader(stream)),
	} {
		t.Run(name, func(t *testing.T) {
			ch := make(chan frame, 10)
			readFrames(r, []byte("\n"+tok+" "), true, ch)
			var got []string
			for f := range ch {
				if f.err != nil {
					got = append(got, "err:"+f.err.Error())
					continue
				}
				got = append(got, fmt.Sprintf("%q/%s", f.data, f.status))
			}
			want := []string{`"a\nb"/0`, `""/+`, `"no newline"/12`, "err:" + errShellEnded.Error()}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("frames %q, want %q", got, want)
			}
		})
	}
}

// TestExecUsesCommandShells: over a real sshd, commands that do not stream run in command shells
// that stay open (one after the other in the same shell; side by side in as many as Shells
// allows), give each command its own result, and a command with streamed input or output, or
// more input than a shell takes, is a session of its own.
func TestExecUsesCommandShells(t *testing.T) {
	t.Parallel()
	s := startSSHD(t, sshdtest.Options{})
	c := dial(t, s, nil)
	ctx := context.Background()
	shellPID := func(cmd engine.Command) string {
		t.Helper()
		cmd.Cmd = "echo $$; " + cmd.Cmd
		res, err := c.Exec(ctx, cmd)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("%q: %+v, %v", cmd.Cmd, res, err)
		}
		return strings.SplitN(string(res.Stdout), "\n", 2)[0]
	}
	first := shellPID(engine.Command{Cmd: "true"})
	if again := shellPID(engine.Command{Cmd: "cat >/dev/null", Stdin: strings.NewReader("some input")}); again != first {
		t.Errorf("second command ran in process %s, the first in %s: want the same shell", again, first)
	}
	var streamed bytes.Buffer
	if pid := shellPID(engine.Command{Cmd: "true", Stdout: &streamed}); pid == first || streamed.String() != pid+"\n" {
		t.Errorf("streamed output: process %s (shell %s), streamed %q", pid, first, streamed.String())
	}
	stream, w := io.Pipe()
	go func() { w.Write([]byte("x")); w.Close() }()
	if pid := shellPID(engine.Command{Cmd: "cat >/dev/null", Stdin: stream}); pid == first {
		t.Errorf("streamed input ran in the shell %s", pid)
	}
	nul := []byte("a\x00b\xff\n")
	res, err := c.Exec(ctx, engine.Command{Cmd: "echo $$; cat", Stdin: bytes.NewReader(nul)})
	if pid, out, _ := strings.Cut(string(res.Stdout), "\n"); err != nil || pid == first || out != string(nul) {
		t.Errorf("input with a NUL byte: process %s (shell %s), stdout %q, %v; want a session and the input whole", pid, first, res.Stdout, err)
	}
	big := bytes.Repeat([]byte("z"), maxShellStdin+1)
	res, err = c.Exec(ctx, engine.Command{Cmd: "wc -c", Stdin: bytes.NewReader(big)})
	if err != nil || strings.TrimSpace(string(res.Stdout)) != fmt.Sprint(len(big)) {
		t.Errorf("input larger than a shell takes: %q, %v", res.Stdout, err)
	}

	// side by side
	const n = 12
	var wg sync.WaitGroup
	pids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			res, err := c.Exec(ctx, engine.Command{Cmd: fmt.Sprintf("echo $$; sleep 0.05; echo %d; echo e%d >&2", i, i)})
			if err == nil {
				pid, out, _ := strings.Cut(string(res.Stdout), "\n")
				pids[i] = pid
				if out != fmt.Sprintf("%d\n", i) || string(res.Stderr) != fmt.Sprintf("e%d\n", i) {
					err = fmt.Errorf("command %d: stdout %q, stderr %q", i, res.Stdout, res.Stderr)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	shells := map[string]bool{}
	for _, p := range pids {
		shells[p] = true
	}
	c.shells.mu.Lock()
	open := c.shells.open
	c.shells.mu.Unlock()
	if open < 2 || open > DefaultShells || !shells[first] {
		t.Errorf("%d shells open after %d commands side by side (processes %v), want 2 to %d, the first among them", open, n, pids, DefaultShells)
	}
	if got := s.Accepted(); got != 1 {
		t.Errorf("sshd accepted %d connections, want 1", got)
	}
}

// TestExecUnderAnotherLoginShell: where the login shell is not bash (dash here, through sshd's
// ForceCommand), commands run as sessions, each with its own result, and no shell is kept.
func TestExecUnderAnotherLoginShell(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("dash"); err != nil {
		t.Skip("dash not installed")
	}
	s := startSSHD(t, sshdtest.Options{Extra: []string{`ForceCommand exec dash -c "$SSH_ORIGINAL_COMMAND"`}})
	c := dial(t, s, nil)
	for i := range 3 {
		res, err := c.Exec(context.Background(), engine.Command{Cmd: fmt.Sprintf(`echo "${BASH_VERSION-dash} %d"; echo e >&2; exit %d`, i, i)})
		if err != nil || string(res.Stdout) != fmt.Sprintf("dash %d\n", i) || string(res.Stderr) != "e\n" || res.ExitCode != i {
			t.Errorf("command %d: %+v (stdout %q), %v", i, res, res.Stdout, err)
		}
	}
	c.shells.mu.Lock()
	none, open := c.shells.none, c.shells.open
	c.shells.mu.Unlock()
	if !none || open != 0 {
		t.Errorf("shells: none %v, open %d; want no shell tried again, none open", none, open)
	}
}
