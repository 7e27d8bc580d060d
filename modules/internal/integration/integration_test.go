package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/sshconn"
	"github.com/runbook/runbook/engine/sshconn/sshdtest"
	"github.com/runbook/runbook/modules/command"
	"github.com/runbook/runbook/modules/directory"
	"github.com/runbook/runbook/modules/file"
	pkg "github.com/runbook/runbook/modules/package"
	"github.com/runbook/runbook/modules/service"
	"github.com/runbook/runbook/modules/template"
	waitfor "github.com/runbook/runbook/modules/wait_for"
)

// host is a real sshd on 127.0.0.1 and a connection to it.
type host struct {
	conn *sshconn.Client
	dir  string // a scratch directory on the host (the same machine)
}

// startHost starts sshd with a temporary configuration and connects to it; it skips the test when
// sshd is not installed or cannot run.
func startHost(t *testing.T) *host {
	t.Helper()
	s := sshdtest.Start(t, sshdtest.Options{Extra: []string{"MaxSessions 20"}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := sshconn.Dial(ctx, sshconn.Config{
		Name: "local", Address: s.Listen[0], Port: s.Port, User: s.User,
		PrivateKeys: []string{s.Client.File}, KnownHosts: s.KnownHosts(t),
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return &host{conn: conn, dir: t.TempDir()}
}

// run runs m on the host, in plan mode when dryRun, and returns the outcome and the changes.
func (h *host) run(t *testing.T, m engine.Module, dryRun bool, playbookDir string) (engine.Outcome, []engine.Change) {
	t.Helper()
	tg := engine.NewTarget(engine.TargetOptions{
		Host: engine.Host{Name: "local", Address: "127.0.0.1"}, Task: t.Name(), Conn: h.conn, DryRun: dryRun, Dir: playbookDir,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := m.Run(ctx, tg)
	if err != nil {
		t.Fatalf("%T run (dry run %v): %v", m, dryRun, err)
	}
	return out, tg.Changes()
}

func mtime(t *testing.T, path string) time.Time {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

func TestTemplate(t *testing.T) {
	h := startHost(t)
	playbooks := t.TempDir()
	if err := os.WriteFile(filepath.Join(playbooks, "app.conf"), []byte("port ${port}\n%{ for n in names ~}\nnode ${n}\n%{ endfor ~}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(h.dir, "etc", "app.conf")
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	newMod := func(port int64) *template.Template {
		return &template.Template{
			Source: "app.conf", Dest: dest, Mode: "0640",
			Vars: cty.ObjectVal(map[string]cty.Value{
				"port":  cty.NumberIntVal(port),
				"names": cty.ListVal([]cty.Value{cty.StringVal("a"), cty.StringVal("b")}),
			}),
		}
	}
	want := "port 6379\nnode a\nnode b\n"

	// Plan changes nothing on the host.
	out, changes := h.run(t, newMod(6379), true, playbooks)
	if len(changes) != 1 || changes[0].Summary != "create "+dest || !strings.Contains(changes[0].Diff, "+node b") {
		t.Fatalf("plan: changes %+v", changes)
	}
	if _, err := os.Stat(dest); !os.IsNotExist(err) {
		t.Fatalf("plan created %s (stat: %v)", dest, err)
	}
	t.Logf("plan: %s", out.Summary)

	// Apply writes it.
	if _, changes = h.run(t, newMod(6379), false, playbooks); len(changes) != 1 {
		t.Fatalf("apply: changes %+v", changes)
	}
	got, err := os.ReadFile(dest)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("apply wrote %q, want %q", got, want)
	}
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	before := mtime(t, dest)

	// A second apply changes nothing and leaves the file alone.
	out, changes = h.run(t, newMod(6379), false, playbooks)
	if len(changes) != 0 {
		t.Fatalf("second apply: changes %+v", changes)
	}
	if !mtime(t, dest).Equal(before) {
		t.Errorf("second apply touched the file")
	}
	t.Logf("second apply: %s", out.Summary)

	// Mode drift is fixed without rewriting the content.
	if err := os.Chmod(dest, 0o666); err != nil {
		t.Fatal(err)
	}
	if _, changes = h.run(t, newMod(6379), false, playbooks); len(changes) != 1 || !strings.HasPrefix(changes[0].Summary, "set mode 0666 -> 0640") {
		t.Fatalf("drift: changes %+v", changes)
	}
	if fi, _ := os.Stat(dest); fi.Mode().Perm() != 0o640 || !mtime(t, dest).Equal(before) {
		t.Errorf("drift fix: mode %v, mtime changed %v", fi.Mode().Perm(), !mtime(t, dest).Equal(before))
	}

	// A change in the variables shows a diff in plan and is uploaded in apply.
	_, changes = h.run(t, newMod(6380), true, playbooks)
	if len(changes) != 1 || !strings.Contains(changes[0].Diff, "-port 6379\n+port 6380") {
		t.Fatalf("plan of a change: %+v", changes)
	}
	if got, _ := os.ReadFile(dest); string(got) != want {
		t.Fatalf("plan changed the file to %q", got)
	}
	h.run(t, newMod(6380), false, playbooks)
	if got, _ := os.ReadFile(dest); string(got) != "port 6380\nnode a\nnode b\n" {
		t.Fatalf("apply of a change wrote %q", got)
	}

	// Ten unchanged templates: one round trip each.
	start := time.Now()
	for i := 0; i < 10; i++ {
		if _, changes := h.run(t, newMod(6380), false, playbooks); len(changes) != 0 {
			t.Fatalf("unchanged template changed: %+v", changes)
		}
	}
	t.Logf("10 unchanged templates checked in %s", time.Since(start))
}

func TestFileAndDirectory(t *testing.T) {
	h := startHost(t)
	dir := filepath.Join(h.dir, "data", "sub")
	d := &directory.Directory{Path: dir, Mode: "0750", State: "present"}
	if _, changes := h.run(t, d, true, ""); len(changes) != 1 {
		t.Fatalf("plan: %+v", changes)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("plan created %s", dir)
	}
	h.run(t, d, false, "")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o750 {
		t.Fatalf("apply: %v %v", fi, err)
	}
	if _, changes := h.run(t, d, false, ""); len(changes) != 0 {
		t.Fatalf("second apply: %+v", changes)
	}

	content := "secret=1\n"
	f := &file.File{Dest: filepath.Join(dir, "f"), Content: &content, Mode: "0600", State: "present"}
	h.run(t, f, false, "")
	if b, err := os.ReadFile(f.Dest); err != nil || string(b) != content {
		t.Fatalf("file: %q %v", b, err)
	}
	if _, changes := h.run(t, f, false, ""); len(changes) != 0 {
		t.Fatalf("file second apply: %+v", changes)
	}
	h.run(t, &file.File{Dest: f.Dest, State: "absent"}, false, "")
	if _, err := os.Stat(f.Dest); !os.IsNotExist(err) {
		t.Fatalf("file not removed: %v", err)
	}

	rm := &directory.Directory{Path: filepath.Join(h.dir, "data"), State: "absent"}
	h.run(t, rm, true, "")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("plan removed the directory: %v", err)
	}
	h.run(t, rm, false, "")
	if _, err := os.Stat(rm.Path); !os.IsNotExist(err) {
		t.Fatalf("directory not removed: %v", err)
	}
}

func TestCommandAndPackage(t *testing.T) {
	h := startHost(t)
	marker := filepath.Join(h.dir, "done")
	c := &command.Command{Cmd: "echo ran > " + engine.ShellQuote(marker) + "; cat", Stdin: "from stdin", Creates: marker, OkCodes: []int{0}}
	out, changes := h.run(t, c, true, "")
	if len(changes) != 1 || out.Summary != "will run: "+c.Cmd {
		t.Fatalf("plan: %q %+v", out.Summary, changes)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatal("plan ran the command")
	}
	out, _ = h.run(t, c, false, "")
	if out.Outputs["stdout"].AsString() != "from stdin" {
		t.Errorf("stdout = %#v", out.Outputs["stdout"])
	}
	out, changes = h.run(t, c, false, "")
	if len(changes) != 0 || out.Summary != "skipped: "+marker+" exists" {
		t.Errorf("guarded re-run: %q %+v", out.Summary, changes)
	}
	ro := &command.Command{Cmd: "id -u", Readonly: true, OkCodes: []int{0}}
	out, changes = h.run(t, ro, true, "")
	if len(changes) != 0 || strings.TrimSpace(out.Outputs["stdout"].AsString()) != strconv.Itoa(os.Getuid()) {
		t.Errorf("readonly in plan: %+v %#v", changes, out.Outputs["stdout"])
	}

	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("not a Debian host")
	}
	p := &pkg.Package{Names: []string{"coreutils", "runbook-no-such-package"}}
	out, changes = h.run(t, p, true, "")
	if len(changes) != 1 || changes[0].Summary != "install runbook-no-such-package" {
		t.Errorf("package plan: %q %+v", out.Summary, changes)
	}
}

func TestServiceAndWaitFor(t *testing.T) {
	redis, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed")
	}
	h := startHost(t)
	port := sshdtest.FreePort(t)
	pidfile := filepath.Join(h.dir, "redis.pid")
	start := fmt.Sprintf("%s --port %d --bind 127.0.0.1 --daemonize yes --pidfile %s --dir %s --logfile %s --save '' --appendonly no",
		redis, port, pidfile, h.dir, filepath.Join(h.dir, "redis.log"))
	svc := func(state string) *service.Service {
		return &service.Service{Name: "redis-test", State: state, Backend: "process", Pidfile: pidfile, Start: start, StartTimeout: "10s", StopTimeout: "5s"}
	}
	// As root the start catches its output in a file of this machine's /run/runbook: leave the
	// machine as the test found it.
	startOut := svc("started").StartOutputFile()
	_, dirErr := os.Stat(filepath.Dir(startOut))
	t.Cleanup(func() {
		os.Remove(startOut)
		if os.IsNotExist(dirErr) {
			os.Remove(filepath.Dir(startOut)) // only if empty
		}
	})
	// Stop the redis-servers this test started if a failure left them running: only pids seen in
	// the outputs, and only while they still are our redis-server.
	var started []string
	t.Cleanup(func() {
		for _, p := range started {
			if pid, err := strconv.Atoi(p); err == nil && alive(pid) && strings.Contains(cmdline(pid), ":"+strconv.Itoa(port)) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	wait := func(state string) *waitfor.WaitFor {
		return &waitfor.WaitFor{Port: port, State: state, Timeout: "10s", Interval: "50ms"}
	}

	out, changes := h.run(t, svc("started"), true, "")
	if len(changes) != 1 {
		t.Fatalf("plan: %q %+v", out.Summary, changes)
	}
	if out, _ := h.run(t, wait("started"), true, ""); !strings.HasPrefix(out.Summary, "would wait for port 127.0.0.1:") {
		t.Fatalf("wait_for plan after service plan: %q (plan started redis?)", out.Summary)
	}

	out, changes = h.run(t, svc("started"), false, "")
	if len(changes) != 1 || out.Outputs["pid"].AsString() == "" {
		t.Fatalf("start: %q %+v", out.Summary, changes)
	}
	pid := out.Outputs["pid"].AsString()
	started = append(started, pid)
	if !strings.Contains(cmdline(atoi(t, pid)), "redis-server") {
		t.Fatalf("pid %s is %q, not redis-server", pid, cmdline(atoi(t, pid)))
	}
	if b, _ := os.ReadFile(pidfile); strings.TrimSpace(string(b)) != pid {
		t.Fatalf("pidfile holds %q, outputs say %s", b, pid)
	}
	out, _ = h.run(t, wait("started"), false, "")
	t.Logf("wait_for: %s", out.Summary)
	if out, _ := h.run(t, wait("started"), true, ""); !strings.HasSuffix(out.Summary, ":"+strconv.Itoa(port)+" is open") {
		t.Errorf("wait_for plan with redis up: %q", out.Summary)
	}

	out, changes = h.run(t, svc("started"), false, "")
	if len(changes) != 0 || out.Summary != "redis-test is running (pid "+pid+")" {
		t.Fatalf("second start: %q %+v", out.Summary, changes)
	}

	out, changes = h.run(t, svc("restarted"), false, "")
	newPid := out.Outputs["pid"].AsString()
	started = append(started, newPid)
	if len(changes) != 1 || newPid == "" || newPid == pid {
		t.Fatalf("restart: %q %+v pid %s -> %s", out.Summary, changes, pid, newPid)
	}

	if _, changes = h.run(t, svc("stopped"), false, ""); len(changes) != 1 {
		t.Fatalf("stop: %+v", changes)
	}
	h.run(t, wait("stopped"), false, "")
	for _, p := range started {
		if alive(atoi(t, p)) {
			t.Errorf("redis-server pid %s still alive after stop", p)
		}
	}

	// A stale pidfile (a dead pid) means stopped.
	if err := os.WriteFile(pidfile, []byte(pid+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, changes = h.run(t, svc("stopped"), false, ""); len(changes) != 0 {
		t.Errorf("stale pidfile: %q %+v", out.Summary, changes)
	}

	p := filepath.Join(h.dir, "appears")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := h.run(t, &waitfor.WaitFor{Path: p, Timeout: "1s", Interval: "50ms"}, false, ""); !strings.HasPrefix(out.Summary, p+" exists (after ") {
		t.Errorf("wait_for path: %q", out.Summary)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// alive reports whether pid is a live process (not gone, not a zombie waiting to be reaped).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.ReplaceAll(string(b), "\x00", " ")
}
