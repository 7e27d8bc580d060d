package hostfile

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/runbook/runbook/engine"
)

// DirectoryProbeCommand is the directory module's probe of path: ProbeCommand's answer for a
// directory, "other" for anything else that exists (a regular file included), "absent" otherwise.
func DirectoryProbeCommand(path string) string {
	return "p=" + engine.ShellQuote(path) + `; ` +
		`if [ -d "$p" ]; then exec stat -L -c "directory %a %U %G %u %g %s -" -- "$p"; ` +
		`elif [ -e "$p" ] || [ -L "$p" ]; then echo other; else echo absent; fi`
}

// FilePart lets the engine answer ProbeCommand(path) with the paths batch.
func FilePart(path string) engine.BatchPart {
	return engine.BatchPart{Probe: ProbeCommand(path), Batch: pathBatch{}, Arg: "f" + path}
}

// DirectoryPart lets the engine answer DirectoryProbeCommand(path) with the paths batch.
func DirectoryPart(path string) engine.BatchPart {
	return engine.BatchPart{Probe: DirectoryProbeCommand(path), Batch: pathBatch{}, Arg: "d" + path}
}

// MtimesCommand prints "MTIME PATH" (seconds since the epoch, following symbolic links) for every
// path that exists, and exits 1 when one does not.
func MtimesCommand(paths []string) string {
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = engine.ShellQuote(p)
	}
	return "exec stat -L -c '%Y %n' -- " + strings.Join(quoted, " ") + " 2>/dev/null"
}

// MtimeParts lets the engine answer MtimesCommand(paths) with the paths batch: one part per path.
func MtimeParts(paths []string) []engine.BatchPart {
	probe := MtimesCommand(paths)
	parts := make([]engine.BatchPart, len(paths))
	for i, p := range paths {
		parts[i] = engine.BatchPart{Probe: probe, Batch: pathBatch{}, Arg: "m" + p}
	}
	return parts
}

// pathBatch reads the state of many paths with two processes however many there are: the shell
// sorts the paths with its own tests, one stat(1) reads the attributes of every directory and
// regular file and the times of the paths asked for theirs, one sha256sum(1) hashes every regular
// file. Alone, each path costs a fork, a stat and, for a file, a sha256sum. An arg is "f" or "d"
// (ProbeCommand's or DirectoryProbeCommand's view of the path) or "m" (MtimesCommand's, for one
// path) followed by the path.
type pathBatch struct{}

// Key implements engine.ProbeBatch.
func (pathBatch) Key() string { return "hostfile.paths" }

// statFormat is what both probes print for a directory or a file, between the kind and the rest.
const statFormat = "%a %U %G %u %g %s"

// Command implements engine.ProbeBatch. It prints one letter per arg (d directory, f regular file,
// o other, a absent; for an "m" arg m when the path exists, a when not), then a line of stat per
// d, f or m (statFormat and the time), a "." line, then sha256sum's line per f.
// Anything that moves under it (a path removed or turned into a directory between the shell's
// test and stat or sha256sum) makes one of them fail, and the batch exits non-zero.
func (pathBatch) Command(args []string) string {
	var all, paths strings.Builder
	for _, a := range args {
		all.WriteString(" " + engine.ShellQuote(a))
		paths.WriteString(" " + engine.ShellQuote(a[1:]))
	}
	pick := func(classes string) string {
		return `set --; x=$c; for p in` + paths.String() + `; do case $x in [` + classes + `]*) set -- "$@" "$p";; esac; x=${x#?}; done; `
	}
	return `c=; for a in` + all.String() + `; do p=${a#?}; ` +
		`if [ "${a%"$p"}" = m ]; then if [ -e "$p" ]; then c=${c}m; else c=${c}a; fi; ` +
		`elif [ -d "$p" ]; then c=${c}d; elif [ "${a%"$p"}" = f ] && [ -f "$p" ]; then c=${c}f; ` +
		`elif [ -e "$p" ] || [ -L "$p" ]; then c=${c}o; else c=${c}a; fi; done; echo "$c"; ` +
		pick("dfm") + `if [ $# -gt 0 ]; then stat -L -c "` + statFormat + ` %Y" -- "$@" || exit 1; fi; echo .; ` +
		pick("f") + `if [ $# -gt 0 ]; then exec sha256sum -- "$@"; fi`
}

// Split implements engine.ProbeBatch: it gives each arg what its own probe would have printed.
func (pathBatch) Split(res engine.ExecResult, args []string) ([]engine.ExecResult, error) {
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("exit status %d: %s", res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	lines := strings.Split(strings.TrimSuffix(string(res.Stdout), "\n"), "\n")
	classes := lines[0]
	if len(classes) != len(args) {
		return nil, fmt.Errorf("%d kinds for %d paths", len(classes), len(args))
	}
	rest := lines[1:]
	sep := -1
	for i, l := range rest {
		if l == "." {
			sep = i
			break
		}
	}
	if sep < 0 {
		return nil, errors.New("no separator after the stat lines")
	}
	stats, sums := rest[:sep], rest[sep+1:]
	want := strings.Count(classes, "d") + strings.Count(classes, "f") + strings.Count(classes, "m")
	if len(stats) != want || len(sums) != strings.Count(classes, "f") {
		return nil, fmt.Errorf("%d stat and %d sha256sum lines for %q", len(stats), len(sums), classes)
	}
	out := make([]engine.ExecResult, len(args))
	for i, c := range classes {
		var b bytes.Buffer
		kind, path := args[i][0], args[i][1:]
		attrs, mtime := "", ""
		if c == 'd' || c == 'f' || c == 'm' {
			j := strings.LastIndexByte(stats[0], ' ')
			if j < 0 {
				return nil, fmt.Errorf("unexpected stat line %q", stats[0])
			}
			attrs, mtime = stats[0][:j], stats[0][j+1:]
			stats = stats[1:]
		}
		if kind == 'm' && c != 'm' && c != 'a' || kind != 'm' && c == 'm' {
			return nil, fmt.Errorf("kind %q for %q", c, args[i])
		}
		rc := 0
		switch c {
		case 'd':
			fmt.Fprintf(&b, "directory %s -\n", attrs)
		case 'f':
			// sha256sum marks a line whose file name it had to escape with a leading backslash.
			hash, _, ok := strings.Cut(strings.TrimPrefix(sums[0], `\`), " ")
			if !ok || len(hash) != 64 {
				return nil, fmt.Errorf("unexpected sha256sum line %q", sums[0])
			}
			fmt.Fprintf(&b, "file %s\n%s  -\n", attrs, hash)
			sums = sums[1:]
		case 'm':
			fmt.Fprintf(&b, "%s %s\n", mtime, path)
		case 'o':
			b.WriteString(string(Other) + "\n")
		case 'a':
			if kind == 'm' {
				rc = 1 // stat's status for a path that is not there; what it says went to /dev/null
			} else {
				b.WriteString(string(Absent) + "\n")
			}
		default:
			return nil, fmt.Errorf("unexpected kind %q", c)
		}
		out[i] = engine.ExecResult{Stdout: b.Bytes(), Stderr: []byte{}, ExitCode: rc}
	}
	return out, nil
}
