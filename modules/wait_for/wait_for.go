// Package waitfor implements the wait_for module: wait until a TCP port opens or closes, a path
// appears or disappears, or a command succeeds on a host.
package waitfor

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

// WaitFor is the configuration of a wait_for task.
type WaitFor struct {
	Port     int    `hcl:"port,optional" doc:"TCP port to wait for. The connection is opened from the host itself (through SSH), so no route to it is needed."`
	Host     string `hcl:"host,optional" doc:"Address to connect to with port. Default: the target host's address from the inventory."`
	Path     string `hcl:"path,optional" doc:"Absolute path on the host to wait for."`
	Command  string `hcl:"command,optional" doc:"Read-only shell command to run until it exits 0."`
	State    string `hcl:"state,optional" doc:"\"started\" (or \"present\"): wait until the port accepts connections or the path exists; \"stopped\" (or \"absent\"): until the port refuses them or the path is gone. Not used with command."`
	Timeout  string `hcl:"timeout,optional" doc:"How long to wait before failing, as a duration."`
	Interval string `hcl:"interval,optional" doc:"Time between checks, as a duration."`
}

// Info describes the wait_for module for the registry.
func Info() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "wait_for",
		Summary: "Wait until a port opens or closes, a path appears, or a command succeeds.",
		Doc: `Waits for a condition on the host: exactly one of ` + "`port`" + ` (a TCP connection from the host to
` + "`host:port`" + `), ` + "`path`" + ` or ` + "`command`" + `. It checks every ` + "`interval`" + ` and fails after
` + "`timeout`" + `. It never changes anything.

In plan it checks once and does not wait: the summary says whether the condition holds now or
that apply would wait for it (typically because an earlier task starts the service).

Outputs: ` + "`elapsed`" + ` (seconds waited, 0 in plan).`,
		Example: `task "redis_up" {
  on       = group.redis
  for_each = { a = 6379, b = 6380, c = 6381 }
  wait_for {
    port    = each.value
    timeout = "10s"
  }
}`,
		New: func() engine.Module { return &WaitFor{Timeout: "30s", Interval: "200ms"} },
	}
}

// Validate checks the configuration before anything runs.
func (m *WaitFor) Validate() error {
	var errs []error
	n := 0
	for _, set := range []bool{m.Port != 0, m.Path != "", m.Command != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		errs = append(errs, errors.New("exactly one of port, path and command must be set"))
	}
	if m.Port < 0 || m.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is not a TCP port", m.Port))
	}
	if m.Host != "" && m.Port == 0 {
		errs = append(errs, errors.New("host: only used with port"))
	}
	if m.Path != "" && !path.IsAbs(m.Path) {
		errs = append(errs, fmt.Errorf("path: %q is not an absolute path", m.Path))
	}
	switch m.State {
	case "", "started", "present", "stopped", "absent":
		if m.Command != "" && m.State != "" {
			errs = append(errs, errors.New("state: not used with command"))
		}
	default:
		errs = append(errs, fmt.Errorf(`state: %q is not "started", "stopped", "present" or "absent"`, m.State))
	}
	for name, v := range map[string]string{"timeout": m.Timeout, "interval": m.Interval} {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a positive duration like \"10s\"", name, v))
		}
	}
	return errors.Join(errs...)
}

// Run checks the condition once in plan, and waits for it in apply.
func (m *WaitFor) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	if err := m.Validate(); err != nil {
		return engine.Outcome{}, err
	}
	what, holds, check := m.condition(t)
	out := engine.Outcome{Outputs: map[string]cty.Value{"elapsed": cty.NumberIntVal(0)}}
	if t.DryRun() {
		ok, err := check(ctx)
		if err != nil {
			return out, err
		}
		if ok {
			out.Summary = holds
		} else {
			out.Summary = "would wait for " + what
		}
		return out, nil
	}
	timeout, _ := time.ParseDuration(m.Timeout) // checked by Validate
	interval, _ := time.ParseDuration(m.Interval)
	start := time.Now()
	if err := t.Poll(ctx, what, interval, timeout, check); err != nil {
		return out, err
	}
	elapsed := time.Since(start)
	out.Outputs["elapsed"] = cty.NumberFloatVal(math.Round(elapsed.Seconds()*1000) / 1000)
	out.Summary = fmt.Sprintf("%s (after %s)", holds, elapsed.Round(time.Millisecond))
	return out, nil
}

// condition returns a description of what is awaited, the sentence that says it holds, and a
// read-only check for it.
func (m *WaitFor) condition(t *engine.Target) (what, holds string, check func(ctx context.Context) (bool, error)) {
	positive := m.State == "" || m.State == "started" || m.State == "present"
	c := t.Conn()
	switch {
	case m.Port != 0:
		host := m.Host
		if host == "" {
			host = t.Host().Address
		}
		addr := net.JoinHostPort(host, strconv.Itoa(m.Port))
		what, holds := "port "+addr+" to be open", "port "+addr+" is open"
		if !positive {
			what, holds = "port "+addr+" to be closed", "port "+addr+" is closed"
		}
		return what, holds, func(ctx context.Context) (bool, error) {
			open := portOpen(ctx, c, addr)
			if err := ctx.Err(); err != nil {
				// a dial cut short by the wait's own end says nothing about the port (it is
				// not "closed")
				return false, fmt.Errorf("check %s: %w", addr, err)
			}
			return open == positive, nil
		}
	case m.Path != "":
		what, holds := m.Path+" to exist", m.Path+" exists"
		if !positive {
			what, holds = m.Path+" to be absent", m.Path+" is absent"
		}
		cmd := "if [ -e " + engine.ShellQuote(m.Path) + " ]; then echo present; else echo absent; fi"
		return what, holds, func(ctx context.Context) (bool, error) {
			out, err := engine.Run(ctx, c, cmd)
			if err != nil {
				return false, fmt.Errorf("check %s: %w", m.Path, err)
			}
			return (strings.TrimSpace(string(out)) == "present") == positive, nil
		}
	}
	return "command to succeed: " + m.Command, "command succeeds: " + m.Command, func(ctx context.Context) (bool, error) {
		res, err := c.Exec(ctx, engine.Command{Cmd: "(\n" + m.Command + "\n) </dev/null"})
		if err != nil {
			return false, fmt.Errorf("run %s: %w", m.Command, err)
		}
		return res.ExitCode == 0, nil
	}
}

// portOpen reports whether a TCP connection from the host to addr succeeds.
func portOpen(ctx context.Context, c engine.Conn, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := c.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

var (
	_ engine.Module    = (*WaitFor)(nil)
	_ engine.Validator = (*WaitFor)(nil)
)
