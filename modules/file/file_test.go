package file

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
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
			wantCmds:    []string{`^p=/etc/motd; `, `mktemp /etc/motd\.rb-.*chmod 0600 `},
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
			wantCmds:    []string{`^p=`, `^cat -- /opt/blob$`, `mktemp`},
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
			wantCmds:    []string{`^p=`, `mktemp .*chown redis: `},
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
				On(`mktemp|^ch(mod|own|grp) |^rm -f `, enginetest.Reply("", 0))
			r := moduletest.Run(&tt.mod, c, tt.dryRun, dir)
			r.CheckErr(t, tt.wantErr)
			r.CheckCalls(t, tt.wantCmds...)
			r.CheckChanges(t, tt.wantChanges...)
			if tt.wantStdin != "" && r.Calls[len(r.Calls)-1].Stdin != tt.wantStdin {
				t.Errorf("uploaded %q, want %q", r.Calls[len(r.Calls)-1].Stdin, tt.wantStdin)
			}
		})
	}
}
