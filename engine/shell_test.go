package engine_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
)

// TestWriteFileLocalShells runs WriteFile's command with the local shells against real files:
// content, mode (set by the umask, by chmod, or kept from the old file), owner, nothing left
// beside the destination; and an upload cut short leaves the old file as it was.
func TestWriteFileLocalShells(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(me.Gid)
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range []string{"sh", "bash", "dash"} {
		if _, err := exec.LookPath(sh); err != nil {
			continue
		}
		t.Run(sh, func(t *testing.T) {
			dir := t.TempDir()
			c := enginetest.NewConn().On(``, enginetest.LocalShell(sh))
			tests := []struct {
				name, mode, oldMode string
				owner               bool
				want                os.FileMode
			}{
				{name: "new 0640", mode: "0640", want: 0o640},
				{name: "new 0600 owned", mode: "0600", owner: true, want: 0o600},
				{name: "new 0755", mode: "0755", want: 0o755},
				{name: "new setgid", mode: "2750", want: 0o750 | os.ModeSetgid},
				{name: "new default", want: 0o644},
				{name: "keeps old mode", oldMode: "0604", want: 0o604},
				{name: "replaces 0600 by 0644", mode: "0644", oldMode: "0600", want: 0o644},
			}
			for _, tt := range tests {
				path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+" 'x'")
				if tt.oldMode != "" {
					if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
						t.Fatal(err)
					}
					if err := exec.Command("chmod", tt.oldMode, path).Run(); err != nil {
						t.Fatal(err)
					}
				}
				f := engine.FileSpec{Path: path, Content: []byte("new\x00content\n"), Mode: tt.mode}
				if tt.owner {
					f.Owner, f.Group = me.Username, g.Name
				}
				if err := engine.WriteFile(context.Background(), c, f); err != nil {
					t.Fatalf("%s: %v", tt.name, err)
				}
				b, err := os.ReadFile(path)
				fi, _ := os.Stat(path)
				if err != nil || string(b) != "new\x00content\n" || fi.Mode() != tt.want {
					t.Errorf("%s: content %q, mode %v, %v; want mode %v", tt.name, b, fi.Mode(), err, tt.want)
				}
			}
			// cut short: the shell gets fewer bytes than were meant
			path := filepath.Join(dir, "cut")
			os.WriteFile(path, []byte("old"), 0o644)
			cut := enginetest.NewConn().On(``, func(call enginetest.Call) (engine.ExecResult, error) {
				call.Stdin = call.Stdin[:3]
				return enginetest.LocalShell(sh)(call)
			})
			err := engine.WriteFile(context.Background(), cut, engine.FileSpec{Path: path, Content: []byte("new content"), Mode: "0644"})
			if err == nil || !strings.Contains(err.Error(), "upload incomplete: 3 of 11 bytes") {
				t.Errorf("cut upload: err = %v", err)
			}
			if b, _ := os.ReadFile(path); string(b) != "old" {
				t.Errorf("cut upload replaced the file: %q", b)
			}
			// the content came whole but the sentinel did not (a head that reads ahead takes it
			// too): the bytes written are counted instead, and they are all there
			whole := enginetest.NewConn().On(``, func(call enginetest.Call) (engine.ExecResult, error) {
				call.Stdin = call.Upload()
				return enginetest.LocalShell(sh)(call)
			})
			if err := engine.WriteFile(context.Background(), whole, engine.FileSpec{Path: path, Content: []byte("new content"), Mode: "0644"}); err != nil {
				t.Errorf("upload without its sentinel: %v", err)
			}
			if b, _ := os.ReadFile(path); string(b) != "new content" {
				t.Errorf("upload without its sentinel wrote %q", b)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.Contains(e.Name(), ".rb-") {
					t.Errorf("left behind: %s", e.Name())
				}
			}
		})
	}
}

// TestWriteFileBashCountsNothing checks that under bash a whole upload starts no wc(1): bash's
// read finds the sentinel. A wc earlier in PATH records each run; under dash it must run (and
// count right), so the check can tell.
func TestWriteFileBashCountsNothing(t *testing.T) {
	realWc, err := exec.LookPath("wc")
	if err != nil {
		t.Skip("no wc")
	}
	bin, log := t.TempDir(), filepath.Join(t.TempDir(), "wc.log")
	stub := "#!/bin/sh\necho ran >> '" + log + "'\nexec '" + realWc + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "wc"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, tt := range []struct {
		sh     string
		wantWc bool
	}{{"bash", false}, {"dash", true}} {
		if _, err := exec.LookPath(tt.sh); err != nil {
			continue
		}
		os.Remove(log)
		path := filepath.Join(t.TempDir(), "f")
		c := enginetest.NewConn().On(``, enginetest.LocalShell(tt.sh))
		if err := engine.WriteFile(context.Background(), c, engine.FileSpec{Path: path, Content: []byte("x\x00y\n"), Mode: "0600"}); err != nil {
			t.Fatalf("%s: %v", tt.sh, err)
		}
		if b, _ := os.ReadFile(path); string(b) != "x\x00y\n" {
			t.Errorf("%s: wrote %q", tt.sh, b)
		}
		_, err := os.Stat(log)
		if ran := err == nil; ran != tt.wantWc {
			t.Errorf("%s: wc ran = %v, want %v", tt.sh, ran, tt.wantWc)
		}
	}
}

// TestWriteFileBashRunsNoHead: under bash, content without a NUL byte is read by bash itself: no
// head(1), no wc(1); the file is exact (bytes that are not UTF-8, backslashes, no final newline),
// in a UTF-8 locale too, and a cut upload is still refused. Under dash head runs.
func TestWriteFileBashRunsNoHead(t *testing.T) {
	bin, log := t.TempDir(), filepath.Join(t.TempDir(), "ran.log")
	for _, tool := range []string{"head", "wc"} {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s", tool)
		}
		stub := "#!/bin/sh\necho " + tool + " >> '" + log + "'\nexec '" + real + "' \"$@\"\n"
		if err := os.WriteFile(filepath.Join(bin, tool), []byte(stub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	content := []byte("caf\xc3\xa9 \xff\xfe back\\slash\r\n-n -e %s\n\nno final newline")
	for _, tt := range []struct {
		sh, lang, wantRan string
	}{{"bash", "", ""}, {"bash", "C.UTF-8", ""}, {"dash", "", "head\nwc\n"}} {
		if _, err := exec.LookPath(tt.sh); err != nil {
			continue
		}
		if tt.lang != "" {
			t.Setenv("LC_ALL", tt.lang)
		}
		os.Remove(log)
		path := filepath.Join(t.TempDir(), "f")
		c := enginetest.NewConn().On(``, enginetest.LocalShell(tt.sh))
		if err := engine.WriteFile(context.Background(), c, engine.FileSpec{Path: path, Content: content, Mode: "0600"}); err != nil {
			t.Fatalf("%s %s: %v", tt.sh, tt.lang, err)
		}
		if b, _ := os.ReadFile(path); string(b) != string(content) {
			t.Errorf("%s %s: wrote %q", tt.sh, tt.lang, b)
		}
		ran, _ := os.ReadFile(log)
		if string(ran) != tt.wantRan {
			t.Errorf("%s %s: ran %q, want %q", tt.sh, tt.lang, ran, tt.wantRan)
		}
		cut := enginetest.NewConn().On(``, func(call enginetest.Call) (engine.ExecResult, error) {
			call.Stdin = call.Stdin[:5]
			return enginetest.LocalShell(tt.sh)(call)
		})
		err := engine.WriteFile(context.Background(), cut, engine.FileSpec{Path: path, Content: content, Mode: "0600"})
		if want := fmt.Sprintf("upload incomplete: 5 of %d bytes", len(content)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s %s: cut upload: err = %v, want %q", tt.sh, tt.lang, err, want)
		}
		if b, _ := os.ReadFile(path); string(b) != string(content) {
			t.Errorf("%s %s: the cut upload replaced the file: %q", tt.sh, tt.lang, b)
		}
	}
}
