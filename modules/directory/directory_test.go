package directory

import (
	"testing"

	"github.com/runbook/runbook/engine/enginetest"
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
			probe:    "file 644 root root 0 0 1 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
			wantCmds: []string{`^p=`},
			wantErr:  "is not a directory",
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
			probe:    "file 644 root root 0 0 1 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881",
			wantCmds: []string{`^p=`},
			wantErr:  "is not a directory; refusing",
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
		})
	}
}
