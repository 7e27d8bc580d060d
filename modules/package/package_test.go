package pkg

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/modules/internal/moduletest"
)

func TestRun(t *testing.T) {
	const query = `^exec dpkg-query -W -f='\$\{Package\} \$\{db:Status-Abbrev\}\\n' redis-server redis-tools$`
	const install = `^DEBIAN_FRONTEND=noninteractive apt-get install -y -q .* redis-tools$`
	const update = `^DEBIAN_FRONTEND=noninteractive apt-get update -q$`
	tests := []struct {
		name        string
		mod         Package
		query       string
		queryExit   int
		installErrs []string // stderr of successive installs; "" succeeds
		dryRun      bool
		wantCmds    []string
		wantChanges []string
		wantErr     string
	}{
		{
			name:     "all installed",
			mod:      Package{Names: []string{"redis-server", "redis-tools"}, UpdateCache: true},
			query:    "redis-server ii \nredis-tools ii \n",
			wantCmds: []string{query},
		},
		{
			name:        "plan",
			mod:         Package{Names: []string{"redis-server", "redis-tools"}},
			query:       "redis-server ii \nredis-tools rc \n",
			dryRun:      true,
			wantCmds:    []string{query},
			wantChanges: []string{"install redis-tools"},
		},
		{
			name:        "unknown to dpkg",
			mod:         Package{Names: []string{"redis-server", "redis-tools"}},
			query:       "redis-server ii \n",
			queryExit:   1,
			installErrs: []string{""},
			wantCmds:    []string{query, install},
			wantChanges: []string{"install redis-tools"},
		},
		{
			name:        "update_cache",
			mod:         Package{Names: []string{"redis-server", "redis-tools"}, UpdateCache: true},
			query:       "redis-server ii \n",
			queryExit:   1,
			installErrs: []string{""},
			wantCmds:    []string{query, update, install},
			wantChanges: []string{"install redis-tools"},
		},
		{
			name:        "missing lists",
			mod:         Package{Names: []string{"redis-server", "redis-tools"}},
			query:       "",
			queryExit:   1,
			installErrs: []string{"E: Unable to locate package redis-tools", ""},
			wantCmds:    []string{query, `apt-get install .*redis-server redis-tools$`, update, `apt-get install .*redis-server redis-tools$`},
			wantChanges: []string{"install redis-server, redis-tools"},
		},
		{
			name:        "install fails",
			mod:         Package{Names: []string{"redis-server", "redis-tools"}},
			query:       "",
			queryExit:   1,
			installErrs: []string{"E: dpkg was interrupted"},
			wantCmds:    []string{query, `apt-get install `},
			wantErr:     "install redis-server, redis-tools: apt-get install: exit status 100: E: dpkg was interrupted",
		},
		{
			name:      "query fails",
			mod:       Package{Names: []string{"redis-server", "redis-tools"}},
			queryExit: 2,
			wantCmds:  []string{query},
			wantErr:   "query packages: exit status 2",
		},
		{name: "no names", mod: Package{}, wantErr: "names: must list"},
		{name: "bad name", mod: Package{Names: []string{"-o foo"}}, wantErr: `"-o foo" is not a Debian package name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			installs := tt.installErrs
			c := enginetest.NewConn().
				On(`^exec dpkg-query `, enginetest.Reply(tt.query, tt.queryExit)).
				On(`apt-get update`, enginetest.Reply("", 0)).
				On(`apt-get install`, func(enginetest.Call) (engine.ExecResult, error) {
					if len(installs) == 0 {
						t.Fatal("unexpected install")
					}
					stderr := installs[0]
					installs = installs[1:]
					if stderr == "" {
						return engine.ExecResult{}, nil
					}
					return engine.ExecResult{Stderr: []byte(stderr), ExitCode: 100}, nil
				})
			r := moduletest.Run(&tt.mod, c, tt.dryRun, "")
			r.CheckErr(t, tt.wantErr)
			r.CheckCalls(t, tt.wantCmds...)
			r.CheckChanges(t, tt.wantChanges...)
		})
	}
}

func TestMissing(t *testing.T) {
	got := Missing([]string{"a", "b:amd64", "c", "d"}, "a ii \nb ii \nc rc \n")
	if strings.Join(got, ",") != "c,d" {
		t.Errorf("Missing = %q, want [c d]", got)
	}
}

// TestQueryShell runs the query with the local shells and dpkg-query against this machine's
// package database: one package that a Debian system always has, one that no system has.
func TestQueryShell(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("no dpkg-query")
	}
	m := Package{Names: []string{"dash", "runbook-no-such-package"}}
	for _, sh := range []string{"sh", "bash", "dash"} {
		if _, err := exec.LookPath(sh); err != nil {
			continue
		}
		t.Run(sh, func(t *testing.T) {
			out, err := exec.Command(sh, "-c", m.QueryCommand()).Output()
			// dpkg-query exits 1 for a package it does not know; Run reads that as missing.
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("query: %v, want exit status 1", err)
			}
			if string(out) != "dash ii \n" {
				t.Errorf("output %q, want %q", out, "dash ii \n")
			}
			if got := Missing(m.Names, string(out)); strings.Join(got, ",") != "runbook-no-such-package" {
				t.Errorf("Missing = %q, want [runbook-no-such-package]", got)
			}
		})
	}
}
