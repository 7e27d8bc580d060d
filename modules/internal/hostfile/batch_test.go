package hostfile

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine"
)

// run runs script with shell the way the engine's read-ahead does (a subshell, no stdin).
func run(t *testing.T, shell, script string) engine.ExecResult {
	t.Helper()
	var out, errOut bytes.Buffer
	c := exec.Command(shell, "-c", "(\n"+script+"\n) </dev/null")
	c.Stdout, c.Stderr = &out, &errOut
	res := engine.ExecResult{}
	if err := c.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		res.ExitCode = ee.ExitCode()
	}
	res.Stdout, res.Stderr = out.Bytes(), errOut.Bytes()
	return res
}

// TestPathBatchAnswersAsEachProbe runs, with the local shells against real paths, the batch of
// many paths and each path's own probe, and wants the batch's part for a path to be byte for
// byte what the path's own probe printed.
func TestPathBatchAnswersAsEachProbe(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := mk("a.conf", "port 6379\n", 0o640)
	spaced := mk("with space 'and quote'", "x", 0o600)
	dashed := mk("-n", "", 0o644)
	newline := mk("new\nline", "y\n", 0o644)
	back := mk(`back\slash`, "z", 0o644)
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o750); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), dangling); err != nil {
		t.Fatal(err)
	}
	absent := filepath.Join(dir, "absent")
	parts := []engine.BatchPart{
		FilePart(file), FilePart(spaced), FilePart(sub), FilePart(link), FilePart(dangling),
		FilePart(absent), FilePart("/dev/null"), FilePart(newline), FilePart(back),
		DirectoryPart(sub), DirectoryPart(file), DirectoryPart(absent), DirectoryPart(dir),
		FilePart(filepath.Join(dir, ".", "a.conf")), FilePart(dashed),
	}
	// two probes of file times (one path each in the batch), with their paths among the others
	times := [][]string{
		{file, link, sub, spaced, newline, dashed},
		{absent, file, dangling, back},
	}
	var timeParts [][]engine.BatchPart
	for _, paths := range times {
		tp := MtimeParts(paths)
		timeParts = append(timeParts, tp)
		parts = append(parts, tp...)
	}
	args := make([]string, len(parts))
	for i, p := range parts {
		args[i] = p.Arg
	}
	for _, shell := range []string{"sh", "bash", "dash"} {
		if _, err := exec.LookPath(shell); err != nil {
			t.Logf("%s is not installed", shell)
			continue
		}
		t.Run(shell, func(t *testing.T) {
			b := pathBatch{}
			res := run(t, shell, b.Command(args))
			got, err := b.Split(res, args)
			if err != nil {
				t.Fatalf("split: %v\nstdout %q\nstderr %q", err, res.Stdout, res.Stderr)
			}
			// each probe of times is its parts joined: outputs in order, the first failed status
			at := len(parts)
			for _, tp := range timeParts {
				at -= len(tp)
			}
			for n, tp := range timeParts {
				var joined []byte
				rc := 0
				for _, r := range got[at : at+len(tp)] {
					joined = append(joined, r.Stdout...)
					if rc == 0 {
						rc = r.ExitCode
					}
					if len(r.Stderr) != 0 {
						t.Errorf("times %d: a part has stderr %q", n, r.Stderr)
					}
				}
				alone := run(t, shell, tp[0].Probe)
				if !bytes.Equal(joined, alone.Stdout) || rc != alone.ExitCode {
					t.Errorf("times %d: batch gave %q (exit %d), the probe alone %q (exit %d)", n, joined, rc, alone.Stdout, alone.ExitCode)
				}
				if n == 0 && (rc != 0 || bytes.Count(joined, []byte("\n")) != len(tp)+1) {
					t.Errorf("times of paths that all exist: %q (exit %d)", joined, rc)
				}
				if n == 1 && rc != 1 {
					t.Errorf("times with an absent path: exit %d, want 1", rc)
				}
				at += len(tp)
			}
			for i, p := range parts[:len(parts)-len(timeParts[0])-len(timeParts[1])] {
				alone := run(t, shell, p.Probe)
				if alone.ExitCode != 0 || len(alone.Stderr) != 0 {
					t.Fatalf("%s alone: exit %d, %s", args[i], alone.ExitCode, alone.Stderr)
				}
				if !bytes.Equal(got[i].Stdout, alone.Stdout) || got[i].ExitCode != 0 || len(got[i].Stderr) != 0 {
					t.Errorf("%q: batch gave %q (exit %d, stderr %q), its probe %q", args[i], got[i].Stdout, got[i].ExitCode, got[i].Stderr, alone.Stdout)
				}
				if _, err := ParseProbe(string(got[i].Stdout)); err != nil {
					t.Errorf("%q: %v", args[i], err)
				}
			}
		})
	}
}

// TestPathBatchRefusesWhatDoesNotLineUp: a batch whose paths moved under it, or whose output is
// not what Command prints, is an error (the modules then read for themselves), never a guess.
func TestPathBatchRefusesWhatDoesNotLineUp(t *testing.T) {
	args := []string{"f/a", "d/b"}
	hash := strings.Repeat("0", 64)
	tests := []struct {
		name string
		res  engine.ExecResult
	}{
		{"stat failed", engine.ExecResult{Stdout: []byte("fd\n"), Stderr: []byte("stat: cannot statx '/a'"), ExitCode: 1}},
		{"fewer kinds", engine.ExecResult{Stdout: []byte("f\n644 root root 0 0 1\n.\n" + hash + "  /a\n")}},
		{"no separator", engine.ExecResult{Stdout: []byte("fd\n644 root root 0 0 1\n755 root root 0 0 1\n")}},
		{"missing stat line", engine.ExecResult{Stdout: []byte("fd\n644 root root 0 0 1\n.\n" + hash + "  /a\n")}},
		{"missing hash", engine.ExecResult{Stdout: []byte("fd\n644 root root 0 0 1\n755 root root 0 0 1\n.\n")}},
		{"bad hash", engine.ExecResult{Stdout: []byte("fd\n644 root root 0 0 1\n755 root root 0 0 1\n.\nsha256sum: /a: Is a directory\n")}},
		{"unknown kind", engine.ExecResult{Stdout: []byte("fx\n644 root root 0 0 1 9\n.\n" + hash + "  /a\n")}},
		{"a time for a file", engine.ExecResult{Stdout: []byte("md\n644 root root 0 0 1 9\n755 root root 0 0 1 9\n.\n")}},
	}
	for _, tt := range tests {
		if got, err := (pathBatch{}).Split(tt.res, args); err == nil {
			t.Errorf("%s: split gave %v, want an error", tt.name, got)
		}
	}
	// and the real thing: a path that is a directory when sha256sum reads it
	dir := t.TempDir()
	res := run(t, "sh", strings.Replace(pathBatch{}.Command([]string{"f" + dir}), `c=${c}d;`, `c=${c}f;`, 1))
	if got, err := (pathBatch{}).Split(res, []string{"f" + dir}); err == nil {
		t.Errorf("a directory hashed as a file split into %v", got)
	}
	// a file's time asked for, a directory's kind given
	if got, err := (pathBatch{}).Split(engine.ExecResult{Stdout: []byte("d\n755 root root 0 0 1 9\n.\n")}, []string{"m/x"}); err == nil {
		t.Errorf("a kind for a time split into %v", got)
	}
}
