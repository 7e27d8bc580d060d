package run

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/runbook/runbook/engine"
)

// tracingConn reports every remote command and forwarded connection as a log event (--verbose),
// with secrets redacted.
type tracingConn struct {
	engine.Conn
	host string
	r    *Runner
}

func (c tracingConn) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	start := time.Now()
	res, err := c.Conn.Exec(ctx, cmd)
	msg := fmt.Sprintf("$ %s", c.r.pb.Secrets.Redact(cmd.Cmd))
	if cmd.Stdin != nil {
		msg += "  (with stdin)"
	}
	if err != nil {
		msg += fmt.Sprintf("  → error: %v", err)
	} else {
		msg += fmt.Sprintf("  → exit %d", res.ExitCode)
	}
	msg += fmt.Sprintf(" in %s", time.Since(start).Round(time.Millisecond))
	c.r.emit(Event{Type: EventLog, Host: c.host, Summary: c.r.pb.Secrets.Redact(msg)})
	return res, err
}

func (c tracingConn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	start := time.Now()
	nc, err := c.Conn.DialContext(ctx, network, addr)
	msg := fmt.Sprintf("dial %s from the host", addr)
	if err != nil {
		msg += fmt.Sprintf("  → error: %v", err)
	}
	msg += fmt.Sprintf(" in %s", time.Since(start).Round(time.Millisecond))
	c.r.emit(Event{Type: EventLog, Host: c.host, Summary: c.r.pb.Secrets.Redact(msg)})
	return nc, err
}

// Close closes the wrapped connection when it can be closed.
func (c tracingConn) Close() error {
	if cl, ok := c.Conn.(interface{ Close() error }); ok {
		return cl.Close()
	}
	return nil
}
