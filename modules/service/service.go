// Package service implements the service module: a daemon kept running, stopped or restarted,
// either as a systemd unit or as a plain process tracked by its pidfile.
package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

// Service is the configuration of a service task.
type Service struct {
	Name         string `hcl:"name,optional" doc:"systemd unit name (required for the systemd backend); with the process backend, a label shown in messages."`
	State        string `hcl:"state,optional" doc:"\"started\" (or \"running\") to ensure it runs, \"stopped\" to ensure it does not, \"restarted\" to restart it every time (meant for handlers)."`
	Backend      string `hcl:"backend,optional" doc:"\"systemd\", \"process\", or \"auto\": systemd when /run/systemd/system exists on the host, the process backend otherwise."`
	Enabled      *bool  `hcl:"enabled,optional" doc:"systemd backend: whether the unit starts at boot. Unset leaves it as it is."`
	Pidfile      string `hcl:"pidfile,optional" doc:"Process backend: absolute path of the pidfile the daemon writes. The daemon runs when the pidfile names a live process whose command line contains match; a pidfile naming a dead process means stopped."`
	Start        string `hcl:"start,optional" doc:"Process backend: shell command that starts the daemon and returns, e.g. \"redis-server /etc/redis/a.conf\" with daemonize yes. Required to start or restart."`
	Match        string `hcl:"match,optional" doc:"Process backend: text that the live process's command line (/proc/PID/cmdline) must contain, guarding against a reused pid. Default: the base name of start's first word."`
	StartTimeout string `hcl:"start_timeout,optional" doc:"How long to wait for the daemon to come up after start (process backend: until the pidfile names a live process)."`
	StopTimeout  string `hcl:"stop_timeout,optional" doc:"Process backend: how long to wait after SIGTERM before sending SIGKILL."`

	startDir string // tests: startDir's stand-in
}

// Info describes the service module for the registry.
func Info() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "service",
		Summary: "Keep a daemon started, stopped, or restart it (systemd or pidfile).",
		Doc: `Ensures a daemon is running or stopped, or restarts it. Two backends:

- **systemd**: ` + "`systemctl start|stop|restart`" + ` of the unit ` + "`name`" + `, and
  ` + "`systemctl enable|disable`" + ` when ` + "`enabled`" + ` is set.
- **process**, for hosts without systemd: the daemon is started with the ` + "`start`" + ` command, which
  must return once the daemon runs in the background and writes ` + "`pidfile`" + ` (for Redis:
  ` + "`daemonize yes`" + ` and ` + "`pidfile`" + ` in its configuration). It counts as running when the pidfile
  names a live process whose command line contains ` + "`match`" + `; a stale pidfile means stopped. After
  start the module waits until that holds; stop sends SIGTERM, waits up to ` + "`stop_timeout`" + `,
  then sends SIGKILL. ` + "`start`" + ` acts on its host only (it starts a daemon there): what runbook
  read ahead of the other hosts stays true across it.

With ` + "`backend = \"auto\"`" + ` (the default) the same task works on both kinds of host; give it
` + "`name`" + ` and the process settings. One remote command reads the state (and detects the
backend). ` + "`state = \"restarted\"`" + ` always restarts (starting a stopped daemon): use it in handlers.

Outputs: ` + "`backend`" + ` (the one used), ` + "`running`" + ` (bool, after the task) and, for the
process backend, ` + "`pid`" + ` (string, empty when not running or in plan after a change).`,
		Example: `task "redis_up" {
  on       = group.redis
  for_each = { a = 6379, b = 6380, c = 6381 }
  service {
    name    = "redis-server@${each.key}"
    pidfile = "/run/redis/redis-${each.key}.pid"
    start   = "redis-server /etc/redis/${each.key}.conf"
  }
}

handler "restart_redis" {
  on       = group.redis
  for_each = { a = 6379, b = 6380, c = 6381 }
  service {
    name    = "redis-server@${each.key}"
    state   = "restarted"
    pidfile = "/run/redis/redis-${each.key}.pid"
    start   = "redis-server /etc/redis/${each.key}.conf"
  }
}`,
		New: func() engine.Module {
			return &Service{State: "started", Backend: "auto", StartTimeout: "30s", StopTimeout: "10s"}
		},
	}
}

// Validate checks the configuration before anything runs.
func (m *Service) Validate() error {
	var errs []error
	switch m.State {
	case "started", "running", "stopped", "restarted":
	default:
		errs = append(errs, fmt.Errorf(`state: %q is not "started", "stopped" or "restarted"`, m.State))
	}
	needStart := m.State != "stopped"
	switch m.Backend {
	case "systemd":
		if m.Name == "" {
			errs = append(errs, errors.New(`name: required with backend = "systemd"`))
		}
	case "process":
		errs = append(errs, m.validateProcess(needStart)...)
	case "auto":
		if m.Name == "" && m.Pidfile == "" {
			errs = append(errs, errors.New("name (systemd) or pidfile and start (process) must be set"))
		}
		if m.Pidfile != "" || m.Start != "" {
			errs = append(errs, m.validateProcess(needStart)...)
		}
	default:
		errs = append(errs, fmt.Errorf(`backend: %q is not "auto", "systemd" or "process"`, m.Backend))
	}
	if m.Enabled != nil && m.Backend == "process" {
		errs = append(errs, errors.New(`enabled: only the systemd backend manages boot-time start`))
	}
	for name, v := range map[string]string{"start_timeout": m.StartTimeout, "stop_timeout": m.StopTimeout} {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration like \"10s\"", name, v))
		}
	}
	return errors.Join(errs...)
}

func (m *Service) validateProcess(needStart bool) []error {
	var errs []error
	if !path.IsAbs(m.Pidfile) {
		errs = append(errs, fmt.Errorf("pidfile: %q is not an absolute path (required by the process backend)", m.Pidfile))
	}
	if needStart && strings.TrimSpace(m.Start) == "" {
		errs = append(errs, errors.New("start: required by the process backend to start the daemon"))
	}
	return errs
}

// Run converges the daemon's state.
func (m *Service) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	if err := m.Validate(); err != nil {
		return engine.Outcome{}, err
	}
	out, err := engine.Run(ctx, t.Conn(), m.ProbeCommand())
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("inspect %s: %w", m.label(), err)
	}
	st := parseProbe(string(out))
	switch st.backend {
	case "systemd":
		if m.Name == "" {
			return engine.Outcome{}, errors.New("the host runs systemd: set name to the unit to manage, or backend = \"process\"")
		}
		return m.runSystemd(ctx, t, st)
	case "process":
		if m.Pidfile == "" {
			return engine.Outcome{}, errors.New("the host has no systemd: set pidfile and start for the process backend")
		}
		return m.runProcess(ctx, t, st)
	}
	return engine.Outcome{}, fmt.Errorf("inspect %s: unexpected output %q", m.label(), out)
}

// ProbeCommand returns the one read-only command that detects the backend (for auto) and reads the
// daemon's state. It runs on every check of an unchanged host, so it runs as few programs as it
// can, in POSIX sh (bash and dash):
//   - systemd: systemctl is-active and is-enabled, one process each. A single systemctl show of
//     ActiveState and UnitFileState would not answer the same: it reports the state of the unit an
//     alias points to instead of "alias", knows nothing of the SysV scripts is-enabled consults,
//     and reads the manager's cached state rather than the unit files.
//   - process: the pid is every digit of the pidfile, collected by builtins (read, parameter
//     expansion); kill -0 is a builtin. The NUL-separated /proc/PID/cmdline is read by bash's
//     read with an empty delimiter (a builtin; bash is the usual login shell), and elsewhere by
//     tr, which replaces the shell (exec) instead of forking since no POSIX builtin keeps NUL
//     bytes; both print each NUL as a space and nothing after the last byte. When
//     /proc/PID/cmdline cannot be opened
//     (the process just exited), the output is the "cmdline=" line alone ("command exec" fails
//     without leaving the shell).
func (m *Service) ProbeCommand() string { return m.probeCommand(true) }

// probeCommand is ProbeCommand; alone is false for the part of a batch (stateBatch), which runs
// in a shell it shares with other parts: tr runs as a child of that shell rather than replacing
// it, and prints the same.
func (m *Service) probeCommand(alone bool) string {
	systemd := "echo backend=systemd; " +
		"echo active=$(systemctl is-active -- " + engine.ShellQuote(m.Name) + " 2>/dev/null); " +
		"echo enabled=$(systemctl is-enabled -- " + engine.ShellQuote(m.Name) + " 2>/dev/null)"
	process := m.processProbe(alone)
	switch m.Backend {
	case "systemd":
		return systemd
	case "process":
		return process
	}
	return "if [ -d /run/systemd/system ]; then " + systemd + "; else " + process + "; fi"
}

// processProbe is the process backend's part of probeCommand.
func (m *Service) processProbe(alone bool) string {
	tr := `command exec tr '\0' ' ' < /proc/$pid/cmdline; echo`
	if !alone {
		tr = `command tr '\0' ' ' 2>/dev/null < /proc/$pid/cmdline || echo`
	}
	process := "echo backend=process"
	if m.Pidfile != "" {
		process += `; pid=; while read -r l || [ -n "$l" ]; do while [ -n "$l" ]; do ` +
			`pid=$pid${l%%[!0-9]*}; l=${l#"${l%%[!0-9]*}"}; l=${l#"${l%%[0-9]*}"}; done; ` +
			`done 2>/dev/null < ` + engine.ShellQuote(m.Pidfile) + `; echo pid=$pid; ` +
			`if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then printf cmdline=; ` +
			`if [ -n "${BASH_VERSION-}" ]; then c=; a=; if { while IFS= read -r -d '' a; do c=$c$a' '; done; } 2>/dev/null < /proc/$pid/cmdline; ` +
			`then printf '%s' "$c$a"; else echo; fi; ` +
			`else ` + tr + `; fi; fi`
	}
	return process
}

type probe struct {
	backend string
	// systemd
	active, enabled string
	// process: pid is what the pidfile says, cmdline is set when that process is alive.
	pid, cmdline string
	alive        bool
}

func parseProbe(out string) probe {
	var p probe
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "backend":
			p.backend = v
		case "active":
			p.active = v
		case "enabled":
			p.enabled = v
		case "pid":
			p.pid = v
		case "cmdline":
			p.cmdline, p.alive = v, true
		}
	}
	return p
}

func (m *Service) label() string {
	if m.Name != "" {
		return m.Name
	}
	return m.Pidfile
}

func (m *Service) runSystemd(ctx context.Context, t *engine.Target, st probe) (engine.Outcome, error) {
	unit := engine.ShellQuote(m.Name)
	running := st.active == "active" || st.active == "reloading" || st.active == "activating"
	systemctl := func(verb string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			_, err := engine.Run(ctx, t.Conn(), "systemctl "+verb+" -- "+unit)
			return err
		}
	}
	var did []string
	change := func(verb string) error {
		did = append(did, verb)
		return t.Change(ctx, engine.Change{Summary: verb + " " + m.Name, HostOnly: true}, systemctl(verb))
	}
	if m.Enabled != nil {
		isEnabled := st.enabled == "enabled" || st.enabled == "enabled-runtime"
		fixed := st.enabled == "static" || st.enabled == "indirect" || st.enabled == "generated" || st.enabled == "alias"
		switch {
		case *m.Enabled && !isEnabled && !fixed:
			if err := change("enable"); err != nil {
				return engine.Outcome{}, err
			}
		case !*m.Enabled && isEnabled:
			if err := change("disable"); err != nil {
				return engine.Outcome{}, err
			}
		}
	}
	var err error
	switch {
	case m.State == "restarted":
		err = change("restart")
		running = true
	case m.State == "stopped" && running:
		err = change("stop")
		running = false
	case m.State != "stopped" && !running:
		err = change("start")
		running = true
	}
	out := engine.Outcome{
		Summary: summary(t, m.Name, did, running),
		Outputs: map[string]cty.Value{"backend": cty.StringVal("systemd"), "running": cty.BoolVal(running), "pid": cty.StringVal("")},
	}
	return out, err
}

func (m *Service) runProcess(ctx context.Context, t *engine.Target, st probe) (engine.Outcome, error) {
	match := m.match()
	running := st.alive && strings.Contains(st.cmdline, match)
	if st.pid != "" && !running {
		if st.alive {
			t.Logf("pidfile %s names pid %s, which is not %q (%s): not running", m.Pidfile, st.pid, match, st.cmdline)
		} else {
			t.Logf("stale pidfile %s: pid %s is not running", m.Pidfile, st.pid)
		}
	}
	pid := ""
	if running {
		pid = st.pid
	}
	var did []string
	var err error
	switch {
	case m.State == "restarted":
		did = append(did, "restart")
		err = t.Change(ctx, engine.Change{Summary: "restart " + m.label() + ": " + m.Start, HostOnly: true}, func(ctx context.Context) error {
			if running {
				if err := m.stop(ctx, t, st.pid); err != nil {
					return err
				}
			}
			pid, err = m.start(ctx, t)
			return err
		})
		running = true
	case m.State == "stopped" && running:
		did = append(did, "stop")
		err = t.Change(ctx, engine.Change{Summary: fmt.Sprintf("stop %s (pid %s)", m.label(), st.pid), HostOnly: true}, func(ctx context.Context) error {
			return m.stop(ctx, t, st.pid)
		})
		running, pid = false, ""
	case m.State != "stopped" && !running:
		did = append(did, "start")
		err = t.Change(ctx, engine.Change{Summary: "start " + m.label() + ": " + m.Start, HostOnly: true}, func(ctx context.Context) error {
			pid, err = m.start(ctx, t)
			return err
		})
		running = true
	}
	if t.DryRun() && len(did) > 0 {
		pid = ""
	}
	out := engine.Outcome{
		Summary: summary(t, m.label(), did, running),
		Outputs: map[string]cty.Value{"backend": cty.StringVal("process"), "running": cty.BoolVal(running), "pid": cty.StringVal(pid)},
	}
	if running && pid != "" && len(did) == 0 {
		out.Summary += " (pid " + pid + ")"
	}
	return out, err
}

// match is the text the daemon's command line must contain.
func (m *Service) match() string {
	if m.Match != "" {
		return m.Match
	}
	if f := strings.Fields(m.Start); len(f) > 0 {
		return path.Base(f[0])
	}
	return ""
}

// StartCommand is the remote command that runs the start command and then, in the same
// session, looks at the pidfile once: right away when it is there, else after waiting up to half
// a second for it to appear (a daemon writes it once it has forked). It prints what the process
// probe prints.
func (m *Service) StartCommand() string {
	// The daemon's output goes to a file, not to the session, so the session ends when start
	// returns (a daemon may keep its standard streams open). As root the file is one per service
	// in startDir, a folder only root can write to, made once per boot: no program runs for it
	// but the start, and it is emptied after every start (nothing of what a start printed
	// stays behind). Elsewhere (not root, no /run) a mktemp(1) file, removed after.
	dir := startDir
	if m.startDir != "" {
		dir = m.startDir
	}
	d := engine.ShellQuote(dir)
	f := engine.ShellQuote(dir + "/" + m.startFile())
	cmd := `if { [ -d ` + d + ` ] || mkdir -m 700 ` + d + ` 2>/dev/null; } && ` + engine.PrivateFolderTest(d) + `; then e=` + f + `; k=1; else e=$(mktemp) || exit 1; k=; fi; ` +
		`if (` + "\n" + m.Start + "\n" + `) </dev/null >"$e" 2>&1; then if [ -n "$k" ]; then : >"$e"; else rm -f "$e"; fi; ` +
		`else rc=$?; cat "$e" >&2; if [ -n "$k" ]; then : >"$e"; else rm -f "$e"; fi; exit $rc; fi`
	if m.Pidfile == "" {
		return cmd
	}
	// The wait for the pidfile, when the daemon has not written it yet: bash looks every 5 ms,
	// waiting with its own read -t on a pipe that no one writes to (one process for the whole
	// wait: the pipe's; the process substitution is hidden from other shells' parsers by eval);
	// other shells every 25 ms with sleep, whose fraction is GNU's and BusyBox's (where it fails
	// the loop ends at once).
	p := engine.ShellQuote(m.Pidfile)
	wait := `n=0; if [ -s ` + p + ` ]; then :; elif [ -n "${BASH_VERSION-}" ] && eval 'exec 8<> <(:)' 2>/dev/null; then ` +
		`while [ ! -s ` + p + ` ] && [ $n -lt 100 ]; do read -r -t 0.005 -u 8 _ 2>/dev/null; n=$((n+1)); done; exec 8<&-; ` +
		`else while [ ! -s ` + p + ` ] && [ $n -lt 20 ]; do sleep 0.025 2>/dev/null || break; n=$((n+1)); done; fi`
	return cmd + "\n" + wait + "\n" + m.processProbe(true)
}

// startDir is the folder of the files that catch what a start prints, when the connection's
// user is root (see StartCommand).
const startDir = "/run/runbook"

// StartOutputFile is the file that catches what the start command prints when the connecting
// user is root (emptied after every start): a file of /run/runbook, one per start command and
// pidfile.
func (m *Service) StartOutputFile() string { return startDir + "/" + m.startFile() }

// startFile names the file of startDir that catches what this service's start prints: one per
// start command and pidfile, so that services started side by side on a host do not share one.
func (m *Service) startFile() string {
	sum := sha256.Sum256([]byte(m.Start + "\x00" + m.Pidfile))
	return "start-" + hex.EncodeToString(sum[:6]) + ".out"
}

// start runs the start command and waits until the pidfile names a live, matching process.
func (m *Service) start(ctx context.Context, t *engine.Target) (string, error) {
	out, err := engine.Run(ctx, t.Conn(), m.StartCommand())
	if err != nil {
		return "", fmt.Errorf("start: %w", err)
	}
	if st := parseProbe(string(out)); st.alive && strings.Contains(st.cmdline, m.match()) {
		return st.pid, nil
	}
	timeout, _ := time.ParseDuration(m.StartTimeout) // checked by Validate
	var pid string
	var probeErr error
	err = t.Poll(ctx, fmt.Sprintf("%s to write a live pid to %s", m.label(), m.Pidfile), 50*time.Millisecond, timeout, func(ctx context.Context) (bool, error) {
		out, err := engine.Run(ctx, t.Conn(), m.ProbeCommand())
		if err != nil {
			if ctx.Err() != nil {
				return false, nil // the wait's own time limit, which Poll reports
			}
			probeErr = err
			return false, err
		}
		st := parseProbe(string(out))
		pid = st.pid
		return st.alive && strings.Contains(st.cmdline, m.match()), nil
	})
	if err != nil && probeErr == nil && ctx.Err() == nil {
		// The start command succeeded, so the daemon forked; it died afterwards, where its
		// error went to its log rather than to us.
		err = fmt.Errorf("%w: the start command succeeded but the daemon is not running; it most likely exited right after starting (port already in use? bad configuration?): look at its log", err)
	}
	return pid, err
}

// stop sends SIGTERM to pid, waits for it to exit, and sends SIGKILL after stop_timeout.
func (m *Service) stop(ctx context.Context, t *engine.Target, pid string) error {
	c := t.Conn()
	if _, err := c.Exec(ctx, engine.Command{Cmd: "kill -TERM " + pid}); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	gone := func(ctx context.Context) (bool, error) {
		// A zombie has an empty command line: it is gone as far as the service is concerned.
		out, err := engine.Run(ctx, c, `if kill -0 `+pid+` 2>/dev/null && [ -n "$(tr -d '\0' < /proc/`+pid+`/cmdline 2>/dev/null)" ]; then echo alive; else echo gone; fi`)
		return strings.TrimSpace(string(out)) == "gone", err
	}
	timeout, _ := time.ParseDuration(m.StopTimeout) // checked by Validate
	what := fmt.Sprintf("%s (pid %s) to exit", m.label(), pid)
	err := t.Poll(ctx, what, 50*time.Millisecond, timeout, gone)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	t.Logf("%s did not exit within %s after SIGTERM; sending SIGKILL", m.label(), m.StopTimeout)
	kill := "kill -KILL " + pid + " 2>/dev/null; if [ \"$(cat -- " + engine.ShellQuote(m.Pidfile) + " 2>/dev/null | tr -dc 0-9)\" = " + pid + " ]; then rm -f -- " + engine.ShellQuote(m.Pidfile) + "; fi"
	if _, err := engine.Run(ctx, c, kill); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if err := t.Poll(ctx, what+" after SIGKILL", 50*time.Millisecond, 5*time.Second, gone); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	return nil
}

// summary describes the result: what was (or will be) done, or the state found.
func summary(t *engine.Target, label string, did []string, running bool) string {
	if len(did) > 0 {
		verbs := strings.Join(did, ", ")
		if t.DryRun() {
			return "will " + verbs + " " + label
		}
		past := strings.NewReplacer("restart", "restarted", "start", "started", "stop", "stopped", "enable", "enabled", "disable", "disabled").Replace(verbs)
		return past + " " + label
	}
	if running {
		return label + " is running"
	}
	return label + " is stopped"
}

var (
	_ engine.Module    = (*Service)(nil)
	_ engine.Validator = (*Service)(nil)
)

// Probes implements engine.Prober: the read of the daemon's state Run starts with.
func (m *Service) Probes() []string { return []string{m.ProbeCommand()} }

// ProbePaths implements engine.PathProber: the probe reads the process table and the pidfile,
// or systemd's state and unit folders.
func (m *Service) ProbePaths() []string {
	p := []string{"/proc", "/run/systemd", "/etc/systemd", "/lib/systemd", "/usr/lib/systemd", "/usr/local/lib/systemd"}
	if m.Pidfile != "" {
		p = append(p, m.Pidfile)
	}
	return p
}

// BatchParts implements engine.ProbeBatcher: the probe can run with other services' in one shell.
func (m *Service) BatchParts() []engine.BatchPart {
	return []engine.BatchPart{{Probe: m.ProbeCommand(), Batch: stateBatch{}, Arg: m.probeCommand(false)}}
}

var (
	_ engine.PathProber   = (*Service)(nil)
	_ engine.ProbeBatcher = (*Service)(nil)
)
