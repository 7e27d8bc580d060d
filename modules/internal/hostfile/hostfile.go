// Package hostfile holds what the file-like modules (template, file, directory) share: one
// read-only probe of a path on a host (kind, mode, owner, size and sha256 in a single round trip),
// the comparison of wanted attributes with what the probe found, and unified diffs for plan.
package hostfile

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/pmezard/go-difflib/difflib"

	"github.com/runbook/runbook/engine"
)

// Kind is what a path is on the host.
type Kind string

// The kinds a probe reports.
const (
	Absent    Kind = "absent"
	File      Kind = "file"
	Directory Kind = "directory"
	// Other is anything else: a device, a socket, a dangling symbolic link...
	Other Kind = "other"
)

// State is what Probe found at a path. Symbolic links are followed.
type State struct {
	Kind Kind
	// Mode holds the permission bits (with setuid, setgid and sticky), e.g. 0o644.
	Mode  uint32
	Owner string
	Group string
	UID   string
	GID   string
	Size  int64
	// SHA256 is the hex digest of a regular file's content, computed on the host.
	SHA256 string
}

// ProbeCommand returns the one shell command Probe runs. It only reads, and forks as little as it
// can (no command substitution; its last program replaces the shell): it runs on every check of
// an unchanged file. Since it ends in exec, nothing may be appended to it.
func ProbeCommand(path string) string {
	return "p=" + engine.ShellQuote(path) + `; ` +
		`if [ -d "$p" ]; then exec stat -L -c "directory %a %U %G %u %g %s -" -- "$p"; ` +
		`elif [ -f "$p" ]; then stat -L -c "file %a %U %G %u %g %s" -- "$p" || exit 1; exec sha256sum < "$p"; ` +
		`elif [ -e "$p" ] || [ -L "$p" ]; then echo other; else echo absent; fi`
}

// Probe reads the state of path on the host with a single command.
func Probe(ctx context.Context, c engine.Conn, path string) (State, error) {
	out, err := engine.Run(ctx, c, ProbeCommand(path))
	if err != nil {
		return State{}, fmt.Errorf("inspect %s: %w", path, err)
	}
	st, err := ParseProbe(string(out))
	if err != nil {
		return State{}, fmt.Errorf("inspect %s: %w", path, err)
	}
	return st, nil
}

// ParseProbe parses the output of ProbeCommand.
func ParseProbe(out string) (State, error) {
	f := strings.Fields(out)
	if len(f) == 1 && (f[0] == string(Absent) || f[0] == string(Other)) {
		return State{Kind: Kind(f[0])}, nil
	}
	// sha256sum prints "HASH  -" for its standard input; a directory gets a lone "-".
	if len(f) == 9 && f[8] == "-" {
		f = f[:8]
	}
	if len(f) != 8 {
		return State{}, fmt.Errorf("unexpected probe output %q", strings.TrimSpace(out))
	}
	mode, err := strconv.ParseUint(f[1], 8, 32)
	if err != nil {
		return State{}, fmt.Errorf("unexpected mode %q: %w", f[1], err)
	}
	size, err := strconv.ParseInt(f[6], 10, 64)
	if err != nil {
		return State{}, fmt.Errorf("unexpected size %q: %w", f[6], err)
	}
	st := State{Kind: Kind(f[0]), Mode: uint32(mode), Owner: f[2], Group: f[3], UID: f[4], GID: f[5], Size: size}
	switch st.Kind {
	case File:
		if len(f[7]) != 64 {
			return State{}, fmt.Errorf("unexpected digest %q", f[7])
		}
		st.SHA256 = f[7]
	case Directory:
	default:
		return State{}, fmt.Errorf("unexpected kind %q", f[0])
	}
	return st, nil
}

// Attrs are the wanted mode and ownership of a path; empty fields are not managed.
type Attrs struct {
	// Mode is an octal string like "0644".
	Mode  string
	Owner string
	Group string
}

// ParseMode parses an octal mode such as "0644" or "755".
func ParseMode(s string) (uint32, error) {
	m, err := strconv.ParseUint(strings.TrimSpace(s), 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal permission like \"0644\"", s)
	}
	return uint32(m), nil
}

// Validate checks the attributes' syntax; errors name the attribute.
func (a Attrs) Validate() error {
	if a.Mode != "" {
		if _, err := ParseMode(a.Mode); err != nil {
			return fmt.Errorf("mode: %w", err)
		}
	}
	for name, v := range map[string]string{"owner": a.Owner, "group": a.Group} {
		if strings.ContainsAny(v, ": \t\n") {
			return fmt.Errorf("%s: %q is not a user or group name", name, v)
		}
	}
	return nil
}

// Drift lists how st differs from the wanted attributes, as readable items such as
// "mode 0644 -> 0640". An empty result means nothing to fix.
func (a Attrs) Drift(st State) []string {
	var d []string
	if a.Mode != "" {
		if m, err := ParseMode(a.Mode); err == nil && m != st.Mode {
			d = append(d, fmt.Sprintf("mode %04o -> %04o", st.Mode, m))
		}
	}
	if a.Owner != "" && a.Owner != st.Owner && a.Owner != st.UID {
		d = append(d, fmt.Sprintf("owner %s -> %s", st.Owner, a.Owner))
	}
	if a.Group != "" && a.Group != st.Group && a.Group != st.GID {
		d = append(d, fmt.Sprintf("group %s -> %s", st.Group, a.Group))
	}
	return d
}

// FixCommand returns the command that sets the managed attributes of path (empty when none are
// managed).
func (a Attrs) FixCommand(path string) string {
	q := engine.ShellQuote(path)
	var cmds []string
	switch {
	case a.Owner != "" && a.Group != "":
		cmds = append(cmds, "chown "+engine.ShellQuote(a.Owner+":"+a.Group)+" -- "+q)
	case a.Owner != "":
		cmds = append(cmds, "chown "+engine.ShellQuote(a.Owner)+" -- "+q)
	case a.Group != "":
		cmds = append(cmds, "chgrp "+engine.ShellQuote(a.Group)+" -- "+q)
	}
	if a.Mode != "" {
		// chmod after chown: chown clears setuid/setgid bits.
		cmds = append(cmds, "chmod "+engine.ShellQuote(a.Mode)+" -- "+q)
	}
	return strings.Join(cmds, " && ")
}

// Fix returns a change function that sets the managed attributes of path.
func (a Attrs) Fix(c engine.Conn, path string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		_, err := engine.Run(ctx, c, a.FixCommand(path))
		return err
	}
}

// MaxDiffSize is the largest old or new content that is diffed; bigger files are summarised.
const MaxDiffSize = 1 << 20

// Diff returns a unified diff from old to new for path. A file that did not exist has oldExists
// false. Binary or oversized content gets a one-line summary instead.
func Diff(path string, old []byte, oldExists bool, new []byte) string {
	if len(old) > MaxDiffSize || len(new) > MaxDiffSize {
		return fmt.Sprintf("%s: content too large to diff (%d -> %d bytes)", path, len(old), len(new))
	}
	if isBinary(old) || isBinary(new) {
		return fmt.Sprintf("Binary files %s differ (%d -> %d bytes)", path, len(old), len(new))
	}
	from := path
	if !oldExists {
		from = "/dev/null"
	}
	d, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A:        splitLines(string(old)),
		B:        splitLines(string(new)),
		FromFile: from,
		ToFile:   path,
		Context:  3,
	})
	if err != nil {
		return fmt.Sprintf("%s: %v", path, err)
	}
	return strings.TrimRight(d, "\n")
}

// NeedsContent reports whether the old content must be fetched to show a diff: only when it
// exists, differs and is small enough to diff.
func NeedsContent(st State) bool {
	return st.Kind == File && st.Size <= MaxDiffSize
}

// Read returns the content of a file on the host (a read-only command).
func Read(ctx context.Context, c engine.Conn, path string) ([]byte, error) {
	out, err := engine.Run(ctx, c, "cat -- "+engine.ShellQuote(path))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// splitLines splits s into lines that keep their newline, marking a missing final newline the way
// diff does.
func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] += "\n\\ No newline at end of file\n"
	}
	return lines
}

func isBinary(b []byte) bool {
	return bytes.IndexByte(b, 0) >= 0
}
