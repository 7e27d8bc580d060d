// Package enginetest provides fakes for testing modules without a host: a recording Conn whose
// answers are matched on the exact remote command.
package enginetest

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"

	"github.com/runbook/runbook/engine"
)

// Call is one command the fake received.
type Call struct {
	Cmd   string
	Stdin string
}

// Upload is the file content the call uploads when it is engine.WriteFile's command: its
// standard input without the sentinel that follows the content.
func (c Call) Upload() string { return strings.TrimSuffix(c.Stdin, engine.UploadSentinel) }

// Responder answers a matched command.
type Responder func(call Call) (engine.ExecResult, error)

type rule struct {
	re   *regexp.Regexp
	resp Responder
}

// Conn is a recording fake engine.Conn. Commands are matched against rules in the order they were
// added; an unmatched command fails the call with an error naming it, so tests see unexpected
// commands.
type Conn struct {
	mu    sync.Mutex
	rules []rule
	calls []Call
	// Dial, when set, serves DialContext.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// NewConn returns an empty fake.
func NewConn() *Conn { return &Conn{} }

// On adds a rule: commands matching the regular expression pattern get resp's answer.
func (c *Conn) On(pattern string, resp Responder) *Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.rules = append(c.rules, rule{re: regexp.MustCompile(pattern), resp: resp})
	return c
}

// Reply returns a Responder with fixed stdout and exit code.
func Reply(stdout string, exit int) Responder {
	return func(Call) (engine.ExecResult, error) {
		return engine.ExecResult{Stdout: []byte(stdout), ExitCode: exit}, nil
	}
}

// Exec implements engine.Conn.
func (c *Conn) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	call := Call{Cmd: cmd.Cmd}
	if cmd.Stdin != nil {
		b, err := io.ReadAll(cmd.Stdin)
		if err != nil {
			return engine.ExecResult{}, err
		}
		call.Stdin = string(b)
	}
	c.mu.Lock()
	c.calls = append(c.calls, call)
	rules := append([]rule(nil), c.rules...)
	c.mu.Unlock()
	for _, r := range rules {
		if r.re.MatchString(cmd.Cmd) {
			res, err := r.resp(call)
			if cmd.Stdout != nil && len(res.Stdout) > 0 {
				_, _ = cmd.Stdout.Write(res.Stdout)
			}
			if cmd.Stderr != nil && len(res.Stderr) > 0 {
				_, _ = cmd.Stderr.Write(res.Stderr)
			}
			return res, err
		}
	}
	return engine.ExecResult{}, fmt.Errorf("enginetest: unexpected command %q", cmd.Cmd)
}

// DialContext implements engine.Conn.
func (c *Conn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.Dial == nil {
		return nil, fmt.Errorf("enginetest: dial %s not supported", addr)
	}
	return c.Dial(ctx, network, addr)
}

// Calls returns every command received so far.
func (c *Conn) Calls() []Call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Call(nil), c.calls...)
}

// Target returns a Target on this fake for host name, in plan mode when dryRun.
func (c *Conn) Target(host string, dryRun bool) *engine.Target {
	return engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: host, Address: "192.0.2.1"}, Task: "test", Conn: c, DryRun: dryRun})
}

var _ engine.Conn = (*Conn)(nil)
