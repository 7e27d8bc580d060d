package file

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/modules/internal/moduletest"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func ptr(s string) *string { return &s }

func TestRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "blob"), []byte("bin\x00ary"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		mod         File
		probe       string
		dryRun      bool
		wantCmds    []string
		wantChanges []string
		wantStdin   string
		wantErr     string
	}{
		{
			name:        "create plan",
			mod:         File{Dest: "/etc/motd", Content: ptr("hi\n"), State: "present"},
			probe:       "absent",
			dryRun:      true,
			wantCmds:    []string{`^p=/etc/motd; `},
			wantChanges: []string{"create /etc/motd"},
		},
		{
			name:        "create apply",
			mod:         File{Dest: "/etc/motd", Content: ptr("hi\n"), State: "present", Mode: "0600"},
			probe:       "absent",
			wantCmds:    []string{`^p=/etc/motd; `, `umask 0177; t=/etc/motd\.rb-[0-9a-f]{12}; `},
			wantChanges: []string{"create /etc/motd"},
			wantStdin:   "hi\n",
		},
		{
			name:     "same content",
			mod:      File{Dest: "/etc/motd", Content: ptr("hi\n"), State: "present", Mode: "0644"},
			probe:    "file 644 root root 0 0 3 " + sum("hi\n"),
			wantCmds: []string{`^p=`},
		},
		{
			name:        "source binary differs",
			mod:         File{Dest: "/opt/blob", Source: "blob", State: "present"},
			probe:       "file 644 root root 0 0 3 " + sum("old"),
			wantCmds:    []string{`^p=`, `^cat -- /opt/blob$`, `\.rb-[0-9a-f]{12}; `},
			wantChanges: []string{"update /opt/blob"},
			wantStdin:   "bin\x00ary",
		},
		{
			name:        "empty content is managed",
			mod:         File{Dest: "/etc/x", Content: ptr(""), State: "present"},
			probe:       "file 644 root root 0 0 3 " + sum("old"),
			dryRun:      true,
			wantCmds:    []string{`^p=`, `^cat -- /etc/x$`},
			wantChanges: []string{"update /etc/x"},
		},
		{
			name:        "exists only, create",
			mod:         File{Dest: "/etc/x", State: "present", Owner: "redis"},
			probe:       "absent",
			wantCmds:    []string{`^p=`, `\.rb-[0-9a-f]{12}; .*chown redis: `},
			wantChanges: []string{"create empty /etc/x"},
		},
		{
			name:     "exists only, any content",
			mod:      File{Dest: "/etc/x", State: "present"},
			probe:    "file 600 root root 0 0 3 " + sum("old"),
			wantCmds: []string{`^p=`},
		},
		{
			name:        "exists only, owner drift",
			mod:         File{Dest: "/etc/x", State: "present", Group: "redis"},
			probe:       "file 600 root root 0 0 3 " + sum("old"),
			wantCmds:    []string{`^p=`, `^chgrp redis -- /etc/x$`},
			wantChanges: []string{"set group root -> redis on /etc/x"},
		},
		{
			name:        "absent plan",
			mod:         File{Dest: "/etc/x", State: "absent"},
			probe:       "file 600 root root 0 0 3 " + sum("old"),
			dryRun:      true,
			wantCmds:    []string{`^p=`},
			wantChanges: []string{"remove /etc/x"},
		},
		{
			name:        "absent apply",
			mod:         File{Dest: "/etc/x", State: "absent"},
			probe:       "file 600 root root 0 0 3 " + sum("old"),
			wantCmds:    []string{`^p=`, `^rm -f -- /etc/x$`},
			wantChanges: []string{"remove /etc/x"},
		},
		{
			name:     "already absent",
			mod:      File{Dest: "/etc/x", State: "absent"},
			probe:    "absent",
			wantCmds: []string{`^p=`},
		},
		{
			name:     "absent refuses a directory",
			mod:      File{Dest: "/etc/x", State: "absent"},
			probe:    "directory 755 root root 0 0 4096 -",
			wantCmds: []string{`^p=`},
			wantErr:  "is a directory",
		},
		{
			name:    "missing source",
			mod:     File{Dest: "/etc/x", Source: "nope", State: "present"},
			wantErr: "read source: open ",
		},
		{
			name:    "content and source",
			mod:     File{Dest: "/etc/x", Source: "blob", Content: ptr("x"), State: "present"},
			wantErr: "mutually exclusive",
		},
		{
			name:    "bad state",
			mod:     File{Dest: "/etc/x", State: "gone"},
			wantErr: `state: "gone" is not`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := enginetest.NewConn().
				On(`^p=`, enginetest.Reply(tt.probe+"\n", 0)).
				On(`^cat -- `, enginetest.Reply("old", 0)).
				On(`\.rb-[0-9a-f]{12}; |^ch(mod|own|grp) |^rm -f `, enginetest.Reply("", 0))
			r := moduletest.Run(&tt.mod, c, tt.dryRun, dir)
			r.CheckErr(t, tt.wantErr)
			r.CheckCalls(t, tt.wantCmds...)
			r.CheckChanges(t, tt.wantChanges...)
			if tt.wantStdin != "" && r.Calls[len(r.Calls)-1].Upload() != tt.wantStdin {
				t.Errorf("uploaded %q, want %q", r.Calls[len(r.Calls)-1].Upload(), tt.wantStdin)
			}
		})
	}
}

// TestProbeShell plans the module against real paths with the local shells running its commands:
// the probe's real output leads to the decisions the table above makes from canned outputs, and
// the first command Run sends is exactly the probe it declares (the one the engine reads ahead).
func TestProbeShell(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		return moduletest.WriteFile(t, dir, name, content, mode)
	}
	same := write("same", "hi\n", 0o644)
	changed := write("changed", "old\n", 0o644)
	drift := write("drift", "hi\n", 0o600)
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "missing"), dangling); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		mod         File
		wantChanges []string
		wantSummary string
		wantErr     string
	}{
		{name: "up to date", mod: File{Dest: same, Content: ptr("hi\n"), Mode: "0644", State: "present"}, wantSummary: same + " is up to date"},
		{name: "content differs", mod: File{Dest: changed, Content: ptr("hi\n"), State: "present"}, wantChanges: []string{"update " + changed}},
		{name: "mode drift", mod: File{Dest: drift, Content: ptr("hi\n"), Mode: "0644", State: "present"}, wantChanges: []string{"set mode 0600 -> 0644 on " + drift}},
		{name: "exists, content unmanaged", mod: File{Dest: changed, State: "present"}, wantSummary: changed + " is up to date"},
		{name: "absent", mod: File{Dest: filepath.Join(dir, "nope"), Content: ptr("hi\n"), State: "present"}, wantChanges: []string{"create " + filepath.Join(dir, "nope")}},
		{name: "directory in the way", mod: File{Dest: dir, Content: ptr("hi\n"), State: "present"}, wantErr: dir + " is a directory on the host"},
		{name: "dangling link", mod: File{Dest: dangling, Content: ptr("hi\n"), State: "present"}, wantErr: dangling + " exists on the host and is not a regular file"},
		{name: "remove", mod: File{Dest: same, State: "absent"}, wantChanges: []string{"remove " + same}},
		{name: "remove refuses a directory", mod: File{Dest: dir, State: "absent"}, wantErr: dir + " is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, sh := range []string{"sh", "bash", "dash"} {
				if _, err := exec.LookPath(sh); err != nil {
					continue
				}
				c := enginetest.NewConn().On(``, enginetest.LocalShell(sh))
				r := moduletest.Run(&tt.mod, c, true, dir)
				r.CheckErr(t, tt.wantErr)
				r.CheckChanges(t, tt.wantChanges...)
				if tt.wantSummary != "" && r.Outcome.Summary != tt.wantSummary {
					t.Errorf("%s: summary %q, want %q", sh, r.Outcome.Summary, tt.wantSummary)
				}
				if len(r.Calls) == 0 || r.Calls[0].Cmd != tt.mod.Probes()[0] {
					t.Errorf("%s: first command %v, want the declared probe %q", sh, r.Calls, tt.mod.Probes()[0])
				}
			}
		})
	}
}
