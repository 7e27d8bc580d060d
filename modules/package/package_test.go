package pkg

import (
	"strings"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/modules/internal/moduletest"
)

func TestRun(t *testing.T) {
	const query = `^dpkg-query -W -f='\$\{Package\} \$\{db:Status-Abbrev\}\\n' redis-server redis-tools$`
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
				On(`^dpkg-query `, enginetest.Reply(tt.query, tt.queryExit)).
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
