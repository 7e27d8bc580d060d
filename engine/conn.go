package engine

import (
	"context"
	"fmt"
	"io"
	"net"
)

// UnreachableError is implemented by a connection's error that says its host could not be
// reached: the connection could not be made, or it was lost and could not be made again. The
// runner marks that host unreachable in the recap (a module's error about another host it reached
// through this one names that other host, and does not).
type UnreachableError interface {
	error
	// UnreachableHost returns the inventory name of the host.
	UnreachableHost() string
}

// Conn is the connection to one host. There is one per host for a whole run (one SSH connection with
// many sessions over it); it is safe for concurrent use.
type Conn interface {
	// Exec runs cmd.Cmd with `sh -c` on the host. A non-zero exit status is not an error: it is in
	// ExecResult.ExitCode. Errors are transport failures (connection lost, context done).
	// Secrets must never be part of cmd.Cmd: pass them on cmd.Stdin. Implementations refuse a
	// command line that contains a registered secret.
	Exec(ctx context.Context, cmd Command) (ExecResult, error)
	// DialContext opens a TCP connection that originates at the host (an SSH direct-tcpip channel),
	// so the operator's machine needs no route to the host's service ports.
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Command is a remote command.
type Command struct {
	// Cmd is the shell command line, run by `sh -c`. Quote arguments with ShellQuote. A Conn may
	// run it in a subshell of a shell that runs the host's commands one after the other
	// (sshconn's command shells): $$ is then that shell's process, not the command's own; a
	// command that signals or names its own process uses `sh -c` (or bash's $BASHPID).
	Cmd string
	// Stdin, when not nil, is copied to the command's standard input. A Conn may send input that
	// a *bytes.Reader, *strings.Reader or *bytes.Buffer holds whole along with the command; any
	// other reader is read as the command runs (a stream that lasts, like the run lock's).
	Stdin io.Reader
	// Stdout, when not nil, also receives the command's standard output as it arrives, while the
	// command runs (ExecResult.Stdout still holds all of it). Every Conn implements it: the run
	// lock learns from it that the lock was taken, without a second round trip.
	Stdout io.Writer
	// Stderr, when not nil, likewise receives the standard error as it arrives.
	Stderr io.Writer
}

// ExecResult is the result of a remote command.
type ExecResult struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
}

// Err returns nil when the command exited 0, and otherwise an error that includes the exit code and
// the first lines of stderr (or stdout when stderr is empty).
func (r ExecResult) Err() error {
	if r.ExitCode == 0 {
		return nil
	}
	msg := firstLines(string(r.Stderr), 3)
	if msg == "" {
		msg = firstLines(string(r.Stdout), 3)
	}
	if msg == "" {
		return fmt.Errorf("exit status %d", r.ExitCode)
	}
	return fmt.Errorf("exit status %d: %s", r.ExitCode, msg)
}

// Run is a convenience that executes cmd and turns a non-zero exit status into an error carrying the
// command's stderr. It returns stdout.
func Run(ctx context.Context, c Conn, cmd string) ([]byte, error) {
	res, err := c.Exec(ctx, Command{Cmd: cmd})
	if err != nil {
		return nil, err
	}
	if err := res.Err(); err != nil {
		return res.Stdout, err
	}
	return res.Stdout, nil
}
