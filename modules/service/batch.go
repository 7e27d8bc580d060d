package service

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/runbook/runbook/engine"
)

// stateBatch reads the state of several services in one shell instead of one each: the probes
// are shell builtins but for systemctl (and tr under shells other than bash), so alone each costs
// a process for its shell and batched they cost none. An arg is a service's probe as a batch part
// (probeCommand(false)): it never replaces or leaves the shell, and sets every variable it reads.
//
// Command prints a line with a random marker first, then each part's output followed by a
// newline, the marker, the part's index and its exit status. What a part prints is thus what its
// probe alone prints, but for one race: tr failing on the command line of a process that exits
// while it reads, where the part adds a newline (parseProbe reads the same either way).
type stateBatch struct{}

// Key implements engine.ProbeBatch.
func (stateBatch) Key() string { return "service.state" }

// Command implements engine.ProbeBatch.
func (stateBatch) Command(args []string) string {
	var tb [8]byte
	if _, err := rand.Read(tb[:]); err != nil {
		return "exit 70" // Split refuses it: the modules read for themselves
	}
	mark := "RBSVC-" + hex.EncodeToString(tb[:])
	var b strings.Builder
	fmt.Fprintf(&b, "echo %s\n", mark)
	for i, a := range args {
		fmt.Fprintf(&b, "%s\nprintf '\\n%s %d %%s\\n' $?\n", a, mark, i)
	}
	return b.String()
}

// Split implements engine.ProbeBatch.
func (stateBatch) Split(res engine.ExecResult, args []string) ([]engine.ExecResult, error) {
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("exit status %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	if len(res.Stderr) > 0 {
		// which part printed it is unknown
		return nil, fmt.Errorf("unexpected error output %q", res.Stderr)
	}
	mark, rest, ok := strings.Cut(string(res.Stdout), "\n")
	if !ok || !strings.HasPrefix(mark, "RBSVC-") {
		return nil, fmt.Errorf("output does not start with the batch's marker")
	}
	out := make([]engine.ExecResult, len(args))
	for i := range args {
		body, tail, ok := strings.Cut(rest, "\n"+mark+" ")
		if !ok {
			return nil, fmt.Errorf("%d of %d parts in the output", i, len(args))
		}
		head, after, ok := strings.Cut(tail, "\n")
		f := strings.Fields(head)
		if !ok || len(f) != 2 || f[0] != strconv.Itoa(i) {
			return nil, fmt.Errorf("unexpected part line %q", head)
		}
		code, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("unexpected part line %q", head)
		}
		out[i] = engine.ExecResult{Stdout: []byte(body), Stderr: []byte{}, ExitCode: code}
		rest = after
	}
	if rest != "" {
		return nil, fmt.Errorf("unexpected output after the last part: %q", rest)
	}
	return out, nil
}
