package directory

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/modules/internal/hostfile"
	"github.com/runbook/runbook/modules/internal/moduletest"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name        string
		mod         Directory
		probe       string
		dryRun      bool
		wantCmds    []string
		wantChanges []string
		wantErr     string
	}{
		{
			name:        "create plan",
			mod:         Directory{Path: "/var/lib/redis", State: "present", Owner: "redis", Mode: "0750"},
			probe:       "absent",
			dryRun:      true,
			wantCmds:    []string{`^p=/var/lib/redis; `},
			wantChanges: []string{"create directory /var/lib/redis"},
		},
		{
			name:        "create apply",
			mod:         Directory{Path: "/var/lib/redis", State: "present", Owner: "redis", Group: "redis", Mode: "0750"},
			probe:       "absent",
			wantCmds:    []string{`^p=`, `^mkdir -p -- /var/lib/redis && chown redis:redis -- /var/lib/redis && chmod 0750 -- /var/lib/redis$`},
			wantChanges: []string{"create directory /var/lib/redis"},
		},
		{
			name:     "up to date",
			mod:      Directory{Path: "/var/lib/redis", State: "present", Owner: "redis", Mode: "750"},
			probe:    "directory 750 redis redis 100 101 4096 -",
			wantCmds: []string{`^p=`},
		},
		{
			name:        "drift",
			mod:         Directory{Path: "/var/lib/redis", State: "present", Owner: "redis", Mode: "0750"},
			probe:       "directory 755 root root 0 0 4096 -",
			wantCmds:    []string{`^p=`, `^chown redis -- /var/lib/redis && chmod 0750 -- /var/lib/redis$`},
			wantChanges: []string{"set mode 0755 -> 0750, owner root -> redis on /var/lib/redis"},
		},
		{
			name:     "file in the way",
			mod:      Directory{Path: "/var/lib/redis", State: "present"},
			probe:    "other",
			wantCmds: []string{`^p=`},
			wantErr:  "/var/lib/redis exists on the host and is not a directory",
		},
		{
			name:        "remove plan",
			mod:         Directory{Path: "/var/lib/redis", State: "absent"},
			probe:       "directory 750 redis redis 100 101 4096 -",
			dryRun:      true,
			wantCmds:    []string{`^p=`},
			wantChanges: []string{"remove directory /var/lib/redis recursively"},
		},
		{
			name:        "remove apply",
			mod:         Directory{Path: "/var/lib/redis", State: "absent"},
			probe:       "directory 750 redis redis 100 101 4096 -",
			wantCmds:    []string{`^p=`, `^rm -rf -- /var/lib/redis$`},
			wantChanges: []string{"remove directory /var/lib/redis recursively"},
		},
		{
			name:     "already removed",
			mod:      Directory{Path: "/var/lib/redis", State: "absent"},
			probe:    "absent",
			wantCmds: []string{`^p=`},
		},
		{
			name:     "remove refuses a file",
			mod:      Directory{Path: "/var/lib/redis", State: "absent"},
			probe:    "other",
			wantCmds: []string{`^p=`},
			wantErr:  "/var/lib/redis exists and is not a directory; refusing to remove it",
		},
		{name: "refuse root", mod: Directory{Path: "/", State: "absent"}, wantErr: `refusing to remove "/"`},
		{name: "refuse double slash", mod: Directory{Path: "//", State: "absent"}, wantErr: `refusing to remove "/"`},
		{name: "refuse etc", mod: Directory{Path: "/etc/", State: "absent"}, wantErr: `system directory "/etc"`},
		{name: "refuse dotdot", mod: Directory{Path: "/var/lib/../lib", State: "absent"}, wantErr: "not a clean path"},
		{name: "refuse relative", mod: Directory{Path: "data", State: "absent"}, wantErr: "not an absolute path"},
		{name: "bad state", mod: Directory{Path: "/data", State: "exists"}, wantErr: `state: "exists" is not`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := enginetest.NewConn().
				On(`^p=`, enginetest.Reply(tt.probe+"\n", 0)).
				On(`^(mkdir|rm|chown|chmod|chgrp) `, enginetest.Reply("", 0))
			r := moduletest.Run(&tt.mod, c, tt.dryRun, "")
			r.CheckErr(t, tt.wantErr)
			r.CheckCalls(t, tt.wantCmds...)
			r.CheckChanges(t, tt.wantChanges...)
			r.CheckReach(t, tt.mod.Path)
		})
	}
}

// TestProbeShell runs the probe with the local shells against real paths and compares what it
// finds with the file modules' probe (hostfile.ProbeCommand), which also tells files from other
// things and hashes them: the directory module treats both alike.
func TestProbeShell(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "a file")
	if err := os.WriteFile(file, []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"dangling": filepath.Join(dir, "missing"), "link to dir": dir} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	dirLine := func(out string) string { // the group name and size vary by system
		st, err := hostfile.ParseProbe(out)
		if err != nil {
			t.Fatal(err)
		}
		return "directory 750 " + me.Username + " " + st.Group + " " + me.Uid + " " + me.Gid + " " + itoa(fi.Size()) + " -"
	}
	tests := []struct {
		name string
		path string
		want string // exact output; "dir" for the directory line
	}{
		{"directory", dir, "dir"},
		{"link to a directory", filepath.Join(dir, "link to dir"), "dir"},
		{"absent", filepath.Join(dir, "nope"), "absent\n"},
		{"regular file", file, "other\n"},
		{"dangling link", filepath.Join(dir, "dangling"), "other\n"},
		{"device", "/dev/null", "other\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Directory{Path: tt.path}
			for _, sh := range []string{"sh", "bash", "dash"} {
				if _, err := exec.LookPath(sh); err != nil {
					continue
				}
				b, err := exec.Command(sh, "-c", m.ProbeCommand()).Output()
				if err != nil {
					t.Fatalf("%s: probe: %v", sh, err)
				}
				out, want := string(b), tt.want
				if want == "dir" {
					want = dirLine(out) + "\n"
				}
				if out != want {
					t.Errorf("%s: output %q, want %q", sh, out, want)
				}
				got, err := hostfile.ParseProbe(out)
				if err != nil {
					t.Fatalf("%s: %v", sh, err)
				}
				ref, err := exec.Command(sh, "-c", hostfile.ProbeCommand(tt.path)).Output()
				if err != nil {
					t.Fatalf("%s: reference probe: %v", sh, err)
				}
				wantSt, err := hostfile.ParseProbe(string(ref))
				if err != nil {
					t.Fatalf("%s: %v", sh, err)
				}
				if wantSt.Kind == hostfile.File {
					wantSt = hostfile.State{Kind: hostfile.Other}
				}
				if got != wantSt {
					t.Errorf("%s: state %+v, the file modules' probe %+v", sh, got, wantSt)
				}
			}
		})
	}
}

func itoa(i int64) string { return strconv.FormatInt(i, 10) }
