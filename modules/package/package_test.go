package pkg

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/modules/internal/moduletest"
)

func TestRun(t *testing.T) {
	query := "^" + regexp.QuoteMeta((&Package{Names: []string{"redis-server", "redis-tools"}}).QueryCommand()) + "$"
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
				On(`dpkg-query `, enginetest.Reply(tt.query, tt.queryExit)).
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
	got := Missing([]string{"a", "b:amd64", "c", "d", "e", "f"}, "a ii \nb ii \nc rc \ne hi \nf iiR\n")
	if strings.Join(got, ",") != "c,d,f" {
		t.Errorf("Missing = %q, want [c d f] (e is installed and held, f needs a reinstall)", got)
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
			// dpkg-query exits 1 for a package it does not know (awk does not); Run reads both
			// as missing.
			var ee *exec.ExitError
			if err != nil && (!errors.As(err, &ee) || ee.ExitCode() != 1) {
				t.Fatalf("query: %v, want exit status 0 or 1", err)
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

// fakeStatus is a dpkg status file with packages in every state the query must tell apart, a
// second architecture of one package, and field continuation lines that look like fields.
const fakeStatus = `Package: ok-pkg
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1.0
Description: installed
 Package: not-a-package
 Status: install ok installed

Package: held-pkg
Status: hold ok installed
Architecture: all
Version: 1.0

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
Conffiles:
 /etc/removed.conf 0123456789abcdef0123456789abcdef

Package: half-pkg
Status: install reinstreq half-installed
Architecture: amd64
Version: 1.0

Package: unpacked-pkg
Status: install ok unpacked
Architecture: amd64
Version: 1.0

Package: pending-pkg
Status: install ok triggers-pending
Architecture: amd64
Version: 1.0
Triggers-Pending: ldconfig

Package: multi-pkg
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 1.0

Package: multi-pkg
Status: deinstall ok config-files
Architecture: i386
Multi-Arch: same
Version: 1.0

Package: purged-pkg
Status: purge ok not-installed
Architecture: amd64

Package: removed-gone-pkg
Status: deinstall ok not-installed
Architecture: amd64

Package: wanted-pkg
Status: install ok not-installed
Architecture: amd64
`

// TestQueryMatchesDpkgQuery runs the query's quick path (awk over the status file) with the local
// shells against a crafted dpkg database, and dpkg-query itself against the same database, and
// wants the same lines; with a journal entry in updates/ (which only dpkg-query reads) the query
// must be dpkg-query's answer too.
func TestQueryMatchesDpkgQuery(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("no dpkg-query")
	}
	names := []string{"ok-pkg", "held-pkg", "removed-pkg", "half-pkg", "unpacked-pkg", "pending-pkg", "multi-pkg", "purged-pkg", "removed-gone-pkg", "wanted-pkg", "not-a-package", "unknown-pkg"}
	lines := func(b []byte) []string {
		l := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		slices.Sort(l)
		return l
	}
	for _, journal := range []bool{false, true} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "updates"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "status"), []byte(fakeStatus), 0o644); err != nil {
			t.Fatal(err)
		}
		if journal {
			// dpkg removed ok-pkg a moment ago and has not folded it into status yet
			if err := os.WriteFile(filepath.Join(dir, "updates", "0000"), []byte("Package: ok-pkg\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		args := append([]string{"--admindir=" + dir, "-W", "-f=${Package} ${db:Status-Abbrev}\n"}, names...)
		want, _ := exec.Command("dpkg-query", args...).Output() // exits 1: some names are unknown
		if journal && !strings.Contains(string(want), "ok-pkg rc") {
			t.Fatalf("dpkg-query did not read the journal: %q", want)
		}
		for _, sh := range []string{"sh", "bash", "dash"} {
			if _, err := exec.LookPath(sh); err != nil {
				continue
			}
			got, err := exec.Command(sh, "-c", queryCommand(dir, names)).Output()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if !slices.Equal(lines(got), lines(want)) {
				t.Errorf("%s, journal %v: query printed\n%s\ndpkg-query printed\n%s", sh, journal, got, want)
			}
			if m := Missing(names, string(got)); !journal && strings.Join(m, ",") != "removed-pkg,half-pkg,unpacked-pkg,pending-pkg,purged-pkg,removed-gone-pkg,wanted-pkg,not-a-package,unknown-pkg" {
				t.Errorf("%s: Missing = %q", sh, m)
			}
		}
	}
}
