// Package command implements the command module: run a shell command on a host, unless a guard
// says it has already been done.
package command

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

// Command is the configuration of a command task.
type Command struct {
	Cmd      string `hcl:"cmd,attr" doc:"Shell command line, run with sh -c on the host. Quote arguments yourself; never put secrets here, pass them on stdin."`
	Creates  string `hcl:"creates,optional" doc:"Path on the host whose existence means the command has already run: it is then not run. Relative to chdir when set."`
	Removes  string `hcl:"removes,optional" doc:"Path on the host whose absence means the command has already run: it is then not run. Relative to chdir when set."`
	Unless   string `hcl:"unless,optional" doc:"Shell command that only reads; when it exits 0 the command has already run and is not run. It runs in plan too, in chdir, with no input."`
	Chdir    string `hcl:"chdir,optional" doc:"Directory on the host to run the command (and unless) in."`
	Stdin    string `hcl:"stdin,optional" doc:"Text given to the command on its standard input; the place for secrets."`
	Readonly bool   `hcl:"readonly,optional" doc:"The command only reads: it also runs in plan, and the task reports ok, never changed."`
	OkCodes  []int  `hcl:"ok_codes,optional" doc:"Exit codes that mean success."`
	Timeout  string `hcl:"timeout,optional" doc:"Longest the command may run, as a duration such as \"90s\" or \"5m\"; empty means no limit of its own."`
}

// Info describes the command module for the registry.
func Info() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "command",
		Summary: "Run a shell command, guarded by creates, removes or unless.",
		Doc: `Runs a shell command on the host. Since a command is opaque to runbook, it counts as a change
every time it runs; make it idempotent with a guard: ` + "`creates`" + ` (a path that exists once it has run),
` + "`removes`" + ` (a path that is gone once it has run) or ` + "`unless`" + ` (a read-only command that exits 0
when there is nothing to do). The guards are evaluated with one remote command, in plan as in apply,
so plan says "will run: ..." only when the command would really run.

A command that only reads (a query whose output later tasks use) sets ` + "`readonly = true`" + `: it runs
in plan too and never counts as a change. When its task depends on no other task and it has no
` + "`stdin`" + ` and no ` + "`timeout`" + `, it may run before the tasks start, together with the host's other
read-only checks in one round trip (as the run could have started with it anyway).

An exit code not in ` + "`ok_codes`" + ` fails the task, with the first lines of stderr in the error.

Outputs: ` + "`stdout`, `stderr`, `exit_code`" + ` and ` + "`ran`" + ` (false when a guard skipped the command).
In plan, the outputs of a command that would run are unknown.`,
		Example: `task "cluster_create" {
  on = host.node1
  command {
    cmd     = "redis-cli --cluster create ${join(" ", local.instances)} --cluster-replicas 2 --cluster-yes"
    unless  = "redis-cli -h ${self.address} -p 6379 cluster info | grep -q '^cluster_known_nodes:9'"
    timeout = "60s"
  }
}`,
		New: func() engine.Module { return &Command{OkCodes: []int{0}} },
	}
}

// Validate checks the configuration before anything runs.
func (m *Command) Validate() error {
	var errs []error
	if strings.TrimSpace(m.Cmd) == "" {
		errs = append(errs, errors.New("cmd: must not be empty"))
	}
	if m.Timeout != "" {
		if d, err := time.ParseDuration(m.Timeout); err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("timeout: %q is not a positive duration like \"30s\"", m.Timeout))
		}
	}
	if len(m.OkCodes) == 0 {
		errs = append(errs, errors.New("ok_codes: must list at least one exit code"))
	}
	return errors.Join(errs...)
}

// Run evaluates the guards and runs the command when they say it is not done yet.
func (m *Command) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	if err := m.Validate(); err != nil {
		return engine.Outcome{}, err
	}
	out := engine.Outcome{Outputs: map[string]cty.Value{
		"stdout": cty.StringVal(""), "stderr": cty.StringVal(""), "exit_code": cty.NumberIntVal(0), "ran": cty.False,
	}}
	show := oneLine(m.Cmd)
	if reason, err := m.done(ctx, t.Conn()); err != nil {
		return out, err
	} else if reason != "" {
		out.Summary = "skipped: " + reason
		return out, nil
	}

	if m.Readonly {
		res, err := m.exec(ctx, t.Conn())
		m.setOutputs(&out, res)
		if err != nil {
			return out, err
		}
		out.Summary = fmt.Sprintf("ran: %s (exit %d)", show, res.ExitCode)
		return out, nil
	}

	var res engine.ExecResult
	ch := engine.Change{Summary: "run: " + show}
	if show != m.Cmd {
		ch.Diff = m.Cmd
	}
	err := t.Change(ctx, ch, func(ctx context.Context) error {
		var err error
		res, err = m.exec(ctx, t.Conn())
		return err
	})
	if t.DryRun() {
		out.Summary = "will run: " + show
		for k := range out.Outputs {
			out.Outputs[k] = cty.UnknownVal(out.Outputs[k].Type())
		}
		return out, nil
	}
	m.setOutputs(&out, res)
	if err != nil {
		return out, err
	}
	out.Summary = fmt.Sprintf("ran: %s (exit %d)", show, res.ExitCode)
	return out, nil
}

// Probes returns the guard command, which only reads, and a readonly command that takes no input
// and has no timeout: the engine may run them ahead, with the other checks of the host, in one
// round trip (only for a task that depends on no other task: see engine.RootProber).
func (m *Command) Probes() []string {
	var out []string
	if g := m.GuardCommand(); g != "" {
		out = append(out, g)
	}
	if m.Readonly && m.Stdin == "" && m.Timeout == "" && strings.TrimSpace(m.Cmd) != "" {
		out = append(out, m.cd()+m.Cmd)
	}
	return out
}

// ProbesAtRootOnly marks the command's probes as arbitrary queries (engine.RootProber).
func (m *Command) ProbesAtRootOnly() {}

// GuardCommand returns the one read-only command that evaluates the guards: it prints "run" when
// the command must run, or the guard that says it is already done. Empty when there is no guard.
func (m *Command) GuardCommand() string {
	var b strings.Builder
	if m.Creates != "" {
		fmt.Fprintf(&b, "if [ -e %s ]; then echo creates; exit 0; fi\n", engine.ShellQuote(m.resolve(m.Creates)))
	}
	if m.Removes != "" {
		fmt.Fprintf(&b, "if [ ! -e %s ]; then echo removes; exit 0; fi\n", engine.ShellQuote(m.resolve(m.Removes)))
	}
	if m.Unless != "" {
		fmt.Fprintf(&b, "if (\n%s%s\n) </dev/null >/dev/null 2>&1; then echo unless; exit 0; fi\n", m.cd(), m.Unless)
	}
	if b.Len() == 0 {
		return ""
	}
	b.WriteString("echo run")
	return b.String()
}

// done returns why the command is already done, or "" when it must run.
func (m *Command) done(ctx context.Context, c engine.Conn) (string, error) {
	guard := m.GuardCommand()
	if guard == "" {
		return "", nil
	}
	stdout, err := engine.Run(ctx, c, guard)
	if err != nil {
		return "", fmt.Errorf("check guards: %w", err)
	}
	switch strings.TrimSpace(string(stdout)) {
	case "run":
		return "", nil
	case "creates":
		return m.resolve(m.Creates) + " exists", nil
	case "removes":
		return m.resolve(m.Removes) + " does not exist", nil
	case "unless":
		return "unless command succeeded", nil
	}
	return "", fmt.Errorf("check guards: unexpected output %q", stdout)
}

// exec runs the command; an exit code outside ok_codes is an error.
func (m *Command) exec(ctx context.Context, c engine.Conn) (engine.ExecResult, error) {
	if m.Timeout != "" {
		d, _ := time.ParseDuration(m.Timeout) // checked by Validate
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	cmd := engine.Command{Cmd: m.cd() + m.Cmd}
	if m.Stdin != "" {
		cmd.Stdin = strings.NewReader(m.Stdin)
	}
	res, err := c.Exec(ctx, cmd)
	if err != nil {
		return res, err
	}
	if !slices.Contains(m.OkCodes, res.ExitCode) {
		return res, res.Err()
	}
	return res, nil
}

func (m *Command) setOutputs(out *engine.Outcome, res engine.ExecResult) {
	out.Outputs["stdout"] = cty.StringVal(string(res.Stdout))
	out.Outputs["stderr"] = cty.StringVal(string(res.Stderr))
	out.Outputs["exit_code"] = cty.NumberIntVal(int64(res.ExitCode))
	out.Outputs["ran"] = cty.True
}

// cd returns the line that enters chdir, or "".
func (m *Command) cd() string {
	if m.Chdir == "" {
		return ""
	}
	return "cd -- " + engine.ShellQuote(m.Chdir) + " || exit 1\n"
}

func (m *Command) resolve(p string) string {
	if m.Chdir == "" || path.IsAbs(p) {
		return p
	}
	return path.Join(m.Chdir, p)
}

// oneLine shortens a command for a one-line summary.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i]) + " ..."
	}
	const max = 120
	if r := []rune(s); len(r) > max {
		s = string(r[:max]) + "..."
	}
	return s
}

var (
	_ engine.Module    = (*Command)(nil)
	_ engine.Validator = (*Command)(nil)
)
