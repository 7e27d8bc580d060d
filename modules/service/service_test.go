package service

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/modules/internal/moduletest"
)

// Exact outputs of the process probe (see TestProbeShell): tr, which prints the command line,
// replaces the shell, so nothing follows it.
const (
	running = "backend=process\npid=42\ncmdline=/usr/bin/redis-server 127.0.0.1:6379 "
	stale   = "backend=process\npid=42\n"
	none    = "backend=process\npid=\n"
	reused  = "backend=process\npid=42\ncmdline=bash "
	zombie  = "backend=process\npid=42\ncmdline="
)

func proc(state string) Service {
	return Service{State: state, Backend: "auto", Pidfile: "/run/redis/a.pid", Start: "redis-server /etc/redis/a.conf", StartTimeout: "1s", StopTimeout: "1s"}
}

func TestProcess(t *testing.T) {
	const probe = `^if \[ -d /run/systemd/system \]; then .*; else echo backend=process; pid=; while read -r l .* done 2>/dev/null < /run/redis/a\.pid; echo pid=\$pid; .*read -r -d .* command exec tr `
	const start = `^if \{ \[ -d /run/runbook \].* else e=\$\(mktemp\) \|\| exit 1; k=; fi; if \(\nredis-server /etc/redis/a\.conf\n\) </dev/null`
	tests := []struct {
		name        string
		mod         Service
		probes      []string // successive probe outputs
		started     string   // what the start command's own look at the pidfile prints
		alive       []string // successive answers of the liveness check after SIGTERM
		dryRun      bool
		wantCmds    []string
		wantChanges []string
		wantSummary string
		wantErr     string
	}{
		{
			name:        "running",
			mod:         proc("started"),
			probes:      []string{running},
			wantCmds:    []string{probe},
			wantSummary: "/run/redis/a.pid is running (pid 42)",
		},
		{
			name:        "stale pidfile plan",
			mod:         proc("started"),
			probes:      []string{stale},
			dryRun:      true,
			wantCmds:    []string{probe},
			wantChanges: []string{"start /run/redis/a.pid: redis-server /etc/redis/a.conf"},
			wantSummary: "will start /run/redis/a.pid",
		},
		{
			name:        "start waits for the pidfile",
			mod:         proc("running"),
			probes:      []string{none, none, stale, running},
			wantCmds:    []string{probe, start, probe, probe, probe},
			wantChanges: []string{"start /run/redis/a.pid: redis-server /etc/redis/a.conf"},
			wantSummary: "started /run/redis/a.pid",
		},
		{
			name:        "start sees the daemon in its own session",
			mod:         proc("started"),
			probes:      []string{none},
			started:     running,
			wantCmds:    []string{probe, start},
			wantChanges: []string{"start /run/redis/a.pid: redis-server /etc/redis/a.conf"},
			wantSummary: "started /run/redis/a.pid",
		},
		{
			name:        "start's own look finds a stale pid: it waits",
			mod:         proc("started"),
			probes:      []string{none, running},
			started:     stale,
			wantCmds:    []string{probe, start, probe},
			wantChanges: []string{"start /run/redis/a.pid: redis-server /etc/redis/a.conf"},
			wantSummary: "started /run/redis/a.pid",
		},
		{
			name:        "reused pid is not running",
			mod:         proc("started"),
			probes:      []string{reused, running},
			wantCmds:    []string{probe, start, probe},
			wantChanges: []string{"start /run/redis/a.pid: redis-server /etc/redis/a.conf"},
		},
		{
			name:        "zombie is not running",
			mod:         proc("started"),
			probes:      []string{zombie, running},
			wantCmds:    []string{probe, start, probe},
			wantChanges: []string{"start /run/redis/a.pid: redis-server /etc/redis/a.conf"},
			wantSummary: "started /run/redis/a.pid",
		},
		{
			name:     "start never comes up",
			mod:      proc("started"),
			probes:   []string{none},
			wantCmds: nil, // polled until the timeout
			wantErr:  "timed out after 1s waiting for /run/redis/a.pid to write a live pid",
		},
		{
			name:        "stop",
			mod:         Service{Name: "redis-a", State: "stopped", Backend: "process", Pidfile: "/run/redis/a.pid", StartTimeout: "1s", StopTimeout: "1s"},
			probes:      []string{running},
			alive:       []string{"alive", "gone"},
			wantCmds:    []string{`^echo backend=process; pid=`, `^kill -TERM 42$`, `^if kill -0 42 `, `^if kill -0 42 `},
			wantChanges: []string{"stop redis-a (pid 42)"},
			wantSummary: "stopped redis-a",
		},
		{
			name:        "stop escalates to SIGKILL",
			mod:         Service{Name: "redis-a", State: "stopped", Backend: "process", Pidfile: "/run/redis/a.pid", StartTimeout: "1s", StopTimeout: "100ms"},
			probes:      []string{running},
			alive:       []string{"alive"},
			wantCmds:    nil,
			wantChanges: []string{"stop redis-a (pid 42)"},
		},
		{
			name:        "stopped already",
			mod:         proc("stopped"),
			probes:      []string{stale},
			wantCmds:    []string{probe},
			wantSummary: "/run/redis/a.pid is stopped",
		},
		{
			name:        "restart plan",
			mod:         proc("restarted"),
			probes:      []string{running},
			dryRun:      true,
			wantCmds:    []string{probe},
			wantChanges: []string{"restart /run/redis/a.pid: redis-server /etc/redis/a.conf"},
			wantSummary: "will restart /run/redis/a.pid",
		},
		{
			name:        "restart apply",
			mod:         proc("restarted"),
			probes:      []string{running, running},
			alive:       []string{"gone"},
			wantCmds:    []string{probe, `^kill -TERM 42$`, `^if kill -0 42`, start, probe},
			wantChanges: []string{"restart /run/redis/a.pid: redis-server /etc/redis/a.conf"},
			wantSummary: "restarted /run/redis/a.pid",
		},
		{
			name:    "no systemd and no pidfile",
			mod:     Service{Name: "redis", State: "started", Backend: "auto", StartTimeout: "1s", StopTimeout: "1s"},
			probes:  []string{"backend=process\n"},
			wantErr: "the host has no systemd",
		},
		{name: "bad state", mod: Service{Name: "x", State: "up", Backend: "auto", StartTimeout: "1s", StopTimeout: "1s"}, wantErr: `state: "up"`},
		{name: "process needs start", mod: Service{State: "started", Backend: "process", Pidfile: "/p", StartTimeout: "1s", StopTimeout: "1s"}, wantErr: "start: required"},
		{name: "relative pidfile", mod: Service{State: "stopped", Backend: "process", Pidfile: "p", StartTimeout: "1s", StopTimeout: "1s"}, wantErr: "pidfile: \"p\" is not an absolute path"},
		{name: "bad timeout", mod: Service{Name: "x", State: "started", Backend: "systemd", StartTimeout: "1s", StopTimeout: "x"}, wantErr: "stop_timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probes, alive := tt.probes, tt.alive
			next := func(list *[]string) string {
				s := (*list)[0]
				if len(*list) > 1 {
					*list = (*list)[1:]
				}
				return s
			}
			killed := false
			c := enginetest.NewConn().
				On(`^if \{ \[ -d /run/runbook \]`, enginetest.Reply(tt.started, 0)).
				On(`^if kill -0 `, func(enginetest.Call) (engine.ExecResult, error) {
					if killed {
						return engine.ExecResult{Stdout: []byte("gone\n")}, nil
					}
					return engine.ExecResult{Stdout: []byte(next(&alive) + "\n")}, nil
				}).
				On(`^kill -KILL 42`, func(enginetest.Call) (engine.ExecResult, error) {
					killed = true
					return engine.ExecResult{}, nil
				}).
				On(`backend=`, func(enginetest.Call) (engine.ExecResult, error) {
					return engine.ExecResult{Stdout: []byte(next(&probes))}, nil
				}).
				On(`^kill -TERM 42`, enginetest.Reply("", 0))
			r := moduletest.Run(&tt.mod, c, tt.dryRun, "")
			r.CheckErr(t, tt.wantErr)
			if tt.wantCmds != nil {
				r.CheckCalls(t, tt.wantCmds...)
			}
			r.CheckChanges(t, tt.wantChanges...)
			if tt.wantSummary != "" && r.Outcome.Summary != tt.wantSummary {
				t.Errorf("summary = %q, want %q", r.Outcome.Summary, tt.wantSummary)
			}
			if tt.dryRun {
				for _, c := range r.Calls {
					if !strings.Contains(c.Cmd, "backend=") {
						t.Errorf("plan ran a command that is not the probe: %q", c.Cmd)
					}
				}
			}
			if tt.name == "stop escalates to SIGKILL" {
				var killed bool
				for _, c := range r.Calls {
					killed = killed || strings.HasPrefix(c.Cmd, "kill -KILL 42")
				}
				if !killed {
					t.Errorf("no SIGKILL sent: %v", r.Calls)
				}
			}
		})
	}
}

func TestSystemd(t *testing.T) {
	yes, no := true, false
	unit := func(state string, enabled *bool) Service {
		return Service{Name: "redis-server", State: state, Backend: "systemd", Enabled: enabled, StartTimeout: "1s", StopTimeout: "1s"}
	}
	tests := []struct {
		name        string
		mod         Service
		probe       string
		dryRun      bool
		wantCmds    []string
		wantChanges []string
	}{
		{"active", unit("started", &yes), "backend=systemd\nactive=active\nenabled=enabled\n", false, []string{`^echo backend=systemd; echo active=\$\(systemctl is-active -- redis-server 2>/dev/null\); echo enabled=`}, nil},
		{"start plan", unit("started", nil), "backend=systemd\nactive=inactive\nenabled=disabled\n", true, []string{`^echo backend=systemd`}, []string{"start redis-server"}},
		{"start and enable", unit("started", &yes), "backend=systemd\nactive=failed\nenabled=disabled\n", false, []string{`^echo backend=systemd`, `^systemctl enable -- redis-server$`, `^systemctl start -- redis-server$`}, []string{"enable redis-server", "start redis-server"}},
		{"static unit", unit("started", &yes), "backend=systemd\nactive=active\nenabled=static\n", false, []string{`^echo backend=systemd`}, nil},
		{"stop and disable", unit("stopped", &no), "backend=systemd\nactive=active\nenabled=enabled\n", false, []string{`^echo`, `^systemctl disable -- redis-server$`, `^systemctl stop -- redis-server$`}, []string{"disable redis-server", "stop redis-server"}},
		{"restart", unit("restarted", nil), "backend=systemd\nactive=active\nenabled=enabled\n", false, []string{`^echo`, `^systemctl restart -- redis-server$`}, []string{"restart redis-server"}},
		{"auto picks systemd", Service{Name: "redis-server", State: "started", Backend: "auto", Pidfile: "/run/r.pid", Start: "redis-server", StartTimeout: "1s", StopTimeout: "1s"}, "backend=systemd\nactive=active\nenabled=enabled\n", false, []string{`^if \[ -d /run/systemd/system \]`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := enginetest.NewConn().
				On(`backend=`, enginetest.Reply(tt.probe, 0)).
				On(`^systemctl `, enginetest.Reply("", 0))
			r := moduletest.Run(&tt.mod, c, tt.dryRun, "")
			r.CheckErr(t, "")
			r.CheckCalls(t, tt.wantCmds...)
			r.CheckChanges(t, tt.wantChanges...)
		})
	}
}

// referenceProbe is the process probe as it was written with cat, tr and a command substitution
// (three programs, four processes): the builtin-based ProbeCommand must read exactly the same.
func referenceProbe(pidfile string) string {
	return "echo backend=process; pid=$(cat -- " + engine.ShellQuote(pidfile) + ` 2>/dev/null | tr -dc 0-9); echo pid=$pid; ` +
		`if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then printf cmdline=; tr '\0' ' ' < /proc/$pid/cmdline; echo; fi`
}

// shells are the POSIX shells present here: the probe runs in the login shell (bash on Debian)
// and is promised to work with sh -c (dash).
func shells(t *testing.T) []string {
	var found []string
	for _, sh := range []string{"sh", "bash", "dash"} {
		if _, err := exec.LookPath(sh); err == nil {
			found = append(found, sh)
		}
	}
	if len(found) == 0 {
		t.Skip("no shell")
	}
	return found
}

// startProcess starts a real process that the test ends; it returns its pid.
func startProcess(t *testing.T, name string, args ...string) int {
	t.Helper()
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// TestProbeShell runs the process probe with the local shells against real pidfiles and
// processes, and compares its exact output and what parseProbe makes of it with the reference.
func TestProbeShell(t *testing.T) {
	dir := t.TempDir()
	live := itoa(startProcess(t, "sleep", "60"))
	spaced := itoa(startProcess(t, "sh", "-c", "sleep 61; exit 0"))
	// A process that exited and was reaped: its pid is (almost surely) free.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := itoa(dead.Process.Pid)
	// A zombie: alive for kill -0, with an empty command line.
	zc := exec.Command("true")
	if err := zc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { zc.Wait() })
	zombie := itoa(zc.Process.Pid)
	for {
		b, err := os.ReadFile("/proc/" + zombie + "/stat")
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(b)); len(f) > 2 && f[2] == "Z" {
			break
		}
		runtime.Gosched()
	}

	tests := []struct {
		name    string
		content *string // nil: no pidfile
		isDir   bool
		want    string // exact output
		wantP   probe
	}{
		{name: "no pidfile", want: "backend=process\npid=\n", wantP: probe{backend: "process"}},
		{name: "pidfile is a directory", isDir: true, want: "backend=process\npid=\n", wantP: probe{backend: "process"}},
		{name: "empty", content: ptr(""), want: "backend=process\npid=\n", wantP: probe{backend: "process"}},
		{name: "garbage", content: ptr("none\n"), want: "backend=process\npid=\n", wantP: probe{backend: "process"}},
		{name: "live", content: ptr(live + "\n"), want: "backend=process\npid=" + live + "\ncmdline=sleep 60 ",
			wantP: probe{backend: "process", pid: live, cmdline: "sleep 60", alive: true}},
		{name: "live without newline", content: ptr(live), want: "backend=process\npid=" + live + "\ncmdline=sleep 60 ",
			wantP: probe{backend: "process", pid: live, cmdline: "sleep 60", alive: true}},
		{name: "live with blanks and CRLF", content: ptr("  " + live + " \r\n"), want: "backend=process\npid=" + live + "\ncmdline=sleep 60 ",
			wantP: probe{backend: "process", pid: live, cmdline: "sleep 60", alive: true}},
		{name: "digits over several lines", content: ptr(live[:1] + "\nx" + live[1:] + "\n"), want: "backend=process\npid=" + live + "\ncmdline=sleep 60 ",
			wantP: probe{backend: "process", pid: live, cmdline: "sleep 60", alive: true}},
		{name: "arguments with spaces", content: ptr(spaced + "\n"), want: "backend=process\npid=" + spaced + "\ncmdline=sh -c sleep 61; exit 0 ",
			wantP: probe{backend: "process", pid: spaced, cmdline: "sh -c sleep 61; exit 0", alive: true}},
		{name: "stale", content: ptr(stale + "\n"), want: "backend=process\npid=" + stale + "\n", wantP: probe{backend: "process", pid: stale}},
		{name: "zombie", content: ptr(zombie + "\n"), want: "backend=process\npid=" + zombie + "\ncmdline=",
			wantP: probe{backend: "process", pid: zombie, alive: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidfile := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".pid")
			switch {
			case tt.isDir:
				if err := os.Mkdir(pidfile, 0o755); err != nil {
					t.Fatal(err)
				}
			case tt.content != nil:
				if err := os.WriteFile(pidfile, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m := Service{Backend: "process", Pidfile: pidfile}
			for _, sh := range shells(t) {
				out, err := exec.Command(sh, "-c", m.ProbeCommand()).Output()
				if err != nil {
					t.Fatalf("%s: probe: %v", sh, err)
				}
				if string(out) != tt.want {
					t.Errorf("%s: output %q, want %q", sh, out, tt.want)
				}
				if got := parseProbe(string(out)); got != tt.wantP {
					t.Errorf("%s: parsed %+v, want %+v", sh, got, tt.wantP)
				}
				ref, err := exec.Command(sh, "-c", referenceProbe(pidfile)).Output()
				if err != nil {
					t.Fatalf("%s: reference probe: %v", sh, err)
				}
				if got, want := parseProbe(string(out)), parseProbe(string(ref)); got != want {
					t.Errorf("%s: parsed %+v, the reference probe %+v", sh, got, want)
				}
			}
		})
	}

	// Every probe above, batched (as the engine reads them ahead), gives each part exactly what
	// the probe alone printed.
	var parts []engine.BatchPart
	for _, tt := range tests {
		m := Service{Backend: "process", Pidfile: filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".pid")}
		bp := m.BatchParts()
		if len(bp) != 1 || bp[0].Probe != m.ProbeCommand() || bp[0].Batch.Key() != (stateBatch{}).Key() {
			t.Fatalf("BatchParts() = %+v, want one part of the state batch for the probe", bp)
		}
		parts = append(parts, bp[0])
	}
	args := make([]string, len(parts))
	for i, p := range parts {
		args[i] = p.Arg
	}
	for _, sh := range shells(t) {
		cmd := exec.Command(sh, "-c", parts[0].Batch.Command(args))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: batch: %v: %s", sh, err, stderr.Bytes())
		}
		res := engine.ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
		split, err := parts[0].Batch.Split(res, args)
		if err != nil {
			t.Fatalf("%s: split: %v\n%s", sh, err, stdout.Bytes())
		}
		for i, tt := range tests {
			if got := string(split[i].Stdout); got != tt.want || split[i].ExitCode != 0 {
				t.Errorf("%s: batch part %q: %q (exit %d), want %q (exit 0)", sh, tt.name, got, split[i].ExitCode, tt.want)
			}
		}
	}
}

// TestStateBatchRefusesWhatDoesNotLineUp: output that is not the batch's whole answer is
// refused (the modules then read for themselves) rather than misfiled.
func TestStateBatchRefusesWhatDoesNotLineUp(t *testing.T) {
	args := []string{"echo backend=process; echo pid=", "echo backend=process; echo pid="}
	good := "RBSVC-01\nbackend=process\npid=\n\nRBSVC-01 0 0\nbackend=process\npid=\n\nRBSVC-01 1 0\n"
	if split, err := (stateBatch{}).Split(engine.ExecResult{Stdout: []byte(good)}, args); err != nil || len(split) != 2 || string(split[1].Stdout) != "backend=process\npid=\n" {
		t.Fatalf("well-formed output: %+v, %v", split, err)
	}
	tests := []struct {
		name string
		res  engine.ExecResult
	}{
		{"failed", engine.ExecResult{Stdout: []byte(good), ExitCode: 1}},
		{"error output", engine.ExecResult{Stdout: []byte(good), Stderr: []byte("tr: oops\n")}},
		{"no marker", engine.ExecResult{Stdout: []byte("backend=process\n")}},
		{"cut short", engine.ExecResult{Stdout: []byte("RBSVC-01\nbackend=process\npid=\n\nRBSVC-01 0 0\nbackend=process\n")}},
		{"parts out of order", engine.ExecResult{Stdout: []byte("RBSVC-01\nx\n\nRBSVC-01 1 0\ny\n\nRBSVC-01 0 0\n")}},
		{"bad status", engine.ExecResult{Stdout: []byte("RBSVC-01\nx\n\nRBSVC-01 0 z\ny\n\nRBSVC-01 1 0\n")}},
		{"trailing output", engine.ExecResult{Stdout: []byte(good + "more\n")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if split, err := (stateBatch{}).Split(tt.res, args); err == nil {
				t.Errorf("Split accepted it: %+v", split)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func itoa(i int) string { return strconv.Itoa(i) }

// TestStartCommandShell runs the start command with the local shells: a daemon that forks and
// writes its pidfile a little later is found by the command's own look, and a start command
// that fails prints its output and exits with its status.
func TestStartCommandShell(t *testing.T) {
	for _, sh := range shells(t) {
		for _, where := range []string{"private folder", "mktemp"} {
			t.Run(sh+"/"+where, func(t *testing.T) {
				dir := t.TempDir()
				pidfile := filepath.Join(dir, "d.pid")
				run := filepath.Join(dir, "run")
				if where == "mktemp" {
					// a folder that cannot be made: the start falls back to a mktemp file
					if err := os.WriteFile(run, nil, 0o644); err != nil {
						t.Fatal(err)
					}
					run = filepath.Join(run, "sub")
				}
				tmp := t.TempDir()
				env := append(os.Environ(), "TMPDIR="+tmp)
				// Like a real daemon, the process the pidfile names is the daemon by the time it is
				// written (writing it before an exec would let a quick look see the command line
				// change under it).
				m := Service{Pidfile: pidfile, startDir: run, Start: "echo starting; sh -c 'sleep 0.1; sleep 59 & sleep 0.05; echo $! > " + pidfile + "' >/dev/null 2>&1 &"}
				cmd := exec.Command(sh, "-c", m.StartCommand())
				cmd.Env = env
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				st := parseProbe(string(out))
				if pid, err := strconv.Atoi(st.pid); err == nil {
					t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
				}
				if !st.alive || st.cmdline != "sleep 59" {
					t.Fatalf("start's own look = %+v from %q, want the live daemon", st, out)
				}
				bad := Service{Pidfile: pidfile + ".none", startDir: run, Start: "echo no such config >&2; exit 3"}
				cmd = exec.Command(sh, "-c", bad.StartCommand())
				cmd.Env = env
				var stderr strings.Builder
				cmd.Stderr = &stderr
				err = cmd.Run()
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || stderr.String() != "no such config\n" {
					t.Errorf("failed start: err %v, stderr %q; want exit 3 and its output", err, stderr.String())
				}
				// Nothing a start printed stays behind: the private folder keeps one empty file per
				// service, made 0700; the mktemp files are gone.
				left, _ := os.ReadDir(tmp)
				if len(left) != 0 {
					t.Errorf("left in TMPDIR: %v", left)
				}
				if where == "mktemp" {
					return
				}
				fi, err := os.Stat(run)
				if err != nil || fi.Mode().Perm() != 0o700 {
					t.Fatalf("start folder: %v, %v; want it made 0700", fi, err)
				}
				files, _ := os.ReadDir(run)
				want := map[string]bool{m.startFile(): true, bad.startFile(): true}
				if len(files) != 2 || m.startFile() == bad.startFile() {
					t.Fatalf("start folder holds %v; want one file for each of the two services", files)
				}
				for _, f := range files {
					b, err := os.ReadFile(filepath.Join(run, f.Name()))
					if !want[f.Name()] || err != nil || len(b) != 0 {
						t.Errorf("%s: %q, %v; want an empty file of one of the services", f.Name(), b, err)
					}
				}
			})
		}
	}
}

// TestStartFolderNotOurs: a start folder that is a symbolic link or a shared sticky folder (or is
// not the user's) is not used; the start falls back to mktemp and writes nothing there.
func TestStartFolderNotOurs(t *testing.T) {
	for _, sh := range shells(t) {
		for _, kind := range []string{"link", "sticky"} {
			t.Run(sh+"/"+kind, func(t *testing.T) {
				dir := t.TempDir()
				target := filepath.Join(dir, "elsewhere")
				if err := os.Mkdir(target, 0o700); err != nil {
					t.Fatal(err)
				}
				run := filepath.Join(dir, "run")
				if kind == "link" {
					if err := os.Symlink(target, run); err != nil {
						t.Fatal(err)
					}
				} else {
					run = target
					if err := os.Chmod(target, 0o777|os.ModeSticky); err != nil {
						t.Fatal(err)
					}
				}
				tmp := t.TempDir()
				m := Service{startDir: run, Start: "echo started"}
				cmd := exec.Command(sh, "-c", m.StartCommand())
				cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				if files, _ := os.ReadDir(target); len(files) != 0 {
					t.Errorf("wrote in the %s: %v", kind, files)
				}
				if files, _ := os.ReadDir(tmp); len(files) != 0 {
					t.Errorf("left in TMPDIR: %v", files)
				}
			})
		}
	}
}
