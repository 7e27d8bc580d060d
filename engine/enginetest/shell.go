package enginetest

import (
	"bytes"
	"errors"
	"os/exec"
	"strings"

	"github.com/runbook/runbook/engine"
)

// LocalShell returns a Responder that runs every command with the local shell sh ("sh", "bash",
// "dash"), its stdin given, as sshd would run it on a host: a module's real commands against real
// paths of this machine, with the fake still recording every call.
func LocalShell(sh string) Responder {
	return func(call Call) (engine.ExecResult, error) {
		cmd := exec.Command(sh, "-c", call.Cmd)
		cmd.Stdin = strings.NewReader(call.Stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return engine.ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: ee.ExitCode()}, nil
		}
		return engine.ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}, err
	}
}
