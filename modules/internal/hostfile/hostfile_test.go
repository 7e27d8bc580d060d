package hostfile

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// TestProbeCommand runs the probe with the local shell against real files.
func TestProbeCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "a file")
	content := []byte("hello\n")
	if err := os.WriteFile(file, content, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "missing"), filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(content)
	tests := []struct {
		path string
		want State
	}{
		{file, State{Kind: File, Mode: 0o640, Owner: me.Username, UID: me.Uid, GID: me.Gid, Size: 6, SHA256: hex.EncodeToString(h[:])}},
		{filepath.Join(dir, "nope"), State{Kind: Absent}},
		{filepath.Join(dir, "dangling"), State{Kind: Other}},
		{"/dev/null", State{Kind: Other}},
		{dir, State{Kind: Directory, Mode: 0o700, Owner: me.Username, UID: me.Uid, GID: me.Gid}},
	}
	for _, shell := range []string{"sh", "bash", "dash"} {
		if _, err := exec.LookPath(shell); err != nil {
			t.Logf("%s is not installed", shell)
			continue
		}
		for _, tt := range tests {
			t.Run(shell+"/"+filepath.Base(tt.path), func(t *testing.T) {
				testProbeCommand(t, shell, tt.path, tt.want)
			})
		}
	}
}

func testProbeCommand(t *testing.T, shell, path string, want State) {
	// alone (Probe), and in a subshell as the engine's batch of probes runs it
	for _, script := range []string{ProbeCommand(path), "(\n" + ProbeCommand(path) + "\n) </dev/null; echo after"} {
		out, err := exec.Command(shell, "-c", script).Output()
		if err != nil {
			t.Fatalf("probe: %v", err)
		}
		text, batched := strings.CutSuffix(string(out), "after\n")
		if strings.HasSuffix(script, "after") && !batched {
			t.Fatalf("the script did not go on after the probe's subshell: %q", out)
		}
		got, err := ParseProbe(text)
		if err != nil {
			t.Fatal(err)
		}
		w := want
		if w.Kind == File || w.Kind == Directory {
			w.Group = got.Group // the group name of the primary gid varies by system
		}
		if w.Kind == Directory {
			w.Size = got.Size // depends on the file system
		}
		if got != w {
			t.Errorf("got %+v, want %+v", got, w)
		}
	}
}

func TestParseProbeErrors(t *testing.T) {
	for _, out := range []string{"", "file 644 root", "file x root root 0 0 1 abc", "fifo 644 root root 0 0 1 -", "file 644 root root 0 0 1 abc -"} {
		if _, err := ParseProbe(out); err == nil {
			t.Errorf("ParseProbe(%q) succeeded, want an error", out)
		}
	}
}

func TestDrift(t *testing.T) {
	st := State{Kind: File, Mode: 0o644, Owner: "root", Group: "adm", UID: "0", GID: "4"}
	tests := []struct {
		attrs   Attrs
		want    string
		wantCmd string
	}{
		{Attrs{}, "", ""},
		{Attrs{Mode: "644", Owner: "0", Group: "adm"}, "", "chown 0:adm -- /f && chmod 644 -- /f"},
		{Attrs{Mode: "0600"}, "mode 0644 -> 0600", "chmod 0600 -- /f"},
		{Attrs{Owner: "redis"}, "owner root -> redis", "chown redis -- /f"},
		{Attrs{Group: "redis", Mode: "2755"}, "mode 0644 -> 2755, group adm -> redis", "chgrp redis -- /f && chmod 2755 -- /f"},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.attrs.Drift(st), ", "); got != tt.want {
			t.Errorf("%+v.Drift = %q, want %q", tt.attrs, got, tt.want)
		}
		if got := tt.attrs.FixCommand("/f"); got != tt.wantCmd {
			t.Errorf("%+v.FixCommand = %q, want %q", tt.attrs, got, tt.wantCmd)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, a := range []Attrs{{Mode: "u+x"}, {Mode: "10000"}, {Owner: "a:b"}, {Group: "x y"}} {
		if err := a.Validate(); err == nil {
			t.Errorf("%+v.Validate() = nil, want an error", a)
		}
	}
	if err := (Attrs{Mode: "0755", Owner: "redis", Group: "redis"}).Validate(); err != nil {
		t.Errorf("valid attrs: %v", err)
	}
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name      string
		old, new  string
		oldExists bool
		want      string
	}{
		{"new file", "", "a\n", false, "--- /dev/null\n+++ /f\n@@ -0,0 +1 @@\n+a"},
		{"change", "a\nb\n", "a\nc\n", true, "--- /f\n+++ /f\n@@ -1,2 +1,2 @@\n a\n-b\n+c"},
		{"no final newline", "a", "a\n", true, "--- /f\n+++ /f\n@@ -1 +1 @@\n-a\n\\ No newline at end of file\n+a"},
		{"binary", "a\x00", "b", true, "Binary files /f differ (2 -> 1 bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Diff("/f", []byte(tt.old), tt.oldExists, []byte(tt.new)); got != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
