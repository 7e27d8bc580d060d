package template

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/modules/internal/moduletest"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

const rendered = "port 6379\nname a\n"

func TestRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "redis.conf"), []byte("port ${port}\nname ${name}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := cty.ObjectVal(map[string]cty.Value{"port": cty.NumberIntVal(6379), "name": cty.StringVal("a")})
	tests := []struct {
		name   string
		mod    Template
		probe  string // probe output
		old    string // content returned by cat
		dryRun bool
		// wantCmds are regexps of the expected commands, in order.
		wantCmds    []string
		wantChanges []string
		wantDiff    string // substring of the first change's diff
		wantSummary string
		wantStdin   string // content uploaded, when the last command is an upload
	}{
		{
			name:        "absent plan",
			mod:         Template{Source: "redis.conf", Vars: vars, Dest: "/etc/redis/a.conf"},
			probe:       "absent",
			dryRun:      true,
			wantCmds:    []string{`^p=/etc/redis/a\.conf; `},
			wantChanges: []string{"create /etc/redis/a.conf"},
			wantDiff:    "--- /dev/null\n+++ /etc/redis/a.conf\n@@ -0,0 +1,2 @@\n+port 6379\n+name a",
			wantSummary: "will create /etc/redis/a.conf",
		},
		{
			name:        "absent apply",
			mod:         Template{Source: "redis.conf", Vars: vars, Dest: "/etc/redis/a.conf", Owner: "redis", Mode: "0640"},
			probe:       "absent",
			wantCmds:    []string{`^p=/etc/redis/a\.conf; `, `umask 0137; t=/etc/redis/a\.conf\.rb-[0-9a-f]{12}; .*chown redis: `},
			wantChanges: []string{"create /etc/redis/a.conf"},
			wantSummary: "created /etc/redis/a.conf",
			wantStdin:   rendered,
		},
		{
			name:        "unchanged",
			mod:         Template{Source: "redis.conf", Vars: vars, Dest: "/etc/redis/a.conf", Owner: "redis", Group: "redis", Mode: "0640"},
			probe:       "file 640 redis redis 100 101 19 " + sum(rendered),
			wantCmds:    []string{`^p=/etc/redis/a\.conf; `},
			wantSummary: "/etc/redis/a.conf is up to date",
		},
		{
			name:        "unchanged by uid",
			mod:         Template{Source: "redis.conf", Vars: vars, Dest: "/etc/redis/a.conf", Owner: "100"},
			probe:       "file 640 redis redis 100 101 19 " + sum(rendered),
			wantCmds:    []string{`^p=/etc/redis/a\.conf; `},
			wantSummary: "/etc/redis/a.conf is up to date",
		},
		{
			name:        "mode drift plan",
			mod:         Template{Source: "redis.conf", Vars: vars, Dest: "/etc/redis/a.conf", Mode: "0640", Owner: "redis"},
			probe:       "file 644 root root 0 0 19 " + sum(rendered),
			dryRun:      true,
			wantCmds:    []string{`^p=`},
			wantChanges: []string{"set mode 0644 -> 0640, owner root -> redis on /etc/redis/a.conf"},
			wantSummary: "will fix attributes of /etc/redis/a.conf",
		},
		{
			name:        "mode drift apply",
			mod:         Template{Source: "redis.conf", Vars: vars, Dest: "/etc/redis/a.conf", Mode: "0640"},
			probe:       "file 644 root root 0 0 19 " + sum(rendered),
			wantCmds:    []string{`^p=`, `^chmod 0640 -- /etc/redis/a\.conf$`},
			wantChanges: []string{"set mode 0644 -> 0640 on /etc/redis/a.conf"},
			wantSummary: "fixed attributes of /etc/redis/a.conf",
		},
		{
			name:        "content differs plan",
			mod:         Template{Source: "redis.conf", Vars: vars, Dest: "/etc/redis/a.conf"},
			probe:       "file 644 redis redis 100 101 19 " + sum("port 1\nname a\n"),
			old:         "port 1\nname a\n",
			dryRun:      true,
			wantCmds:    []string{`^p=`, `^cat -- /etc/redis/a\.conf$`},
			wantChanges: []string{"update /etc/redis/a.conf"},
			wantDiff:    "--- /etc/redis/a.conf\n+++ /etc/redis/a.conf\n@@ -1,2 +1,2 @@\n-port 1\n+port 6379\n name a",
			wantSummary: "will update /etc/redis/a.conf",
		},
		{
			name:        "content differs apply keeps owner",
			mod:         Template{Content: "port ${port}\n", Vars: vars, Dest: "/etc/redis/a.conf"},
			probe:       "file 600 redis redis 100 101 7 " + sum("port 1\n"),
			old:         "port 1\n",
			wantCmds:    []string{`^p=`, `^cat -- `, `chmod --reference=/etc/redis/a\.conf .*chown 100:101 `},
			wantChanges: []string{"update /etc/redis/a.conf"},
			wantSummary: "updated /etc/redis/a.conf",
			wantStdin:   "port 6379\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := enginetest.NewConn()
			c.On(`^p=`, enginetest.Reply(tt.probe+"\n", 0))
			c.On(`^cat -- `, enginetest.Reply(tt.old, 0))
			c.On(`\.rb-[0-9a-f]{12}; `, enginetest.Reply("", 0))
			c.On(`^ch(mod|own|grp) `, enginetest.Reply("", 0))
			tg := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Conn: c, DryRun: tt.dryRun, Dir: dir})
			out, err := tt.mod.Run(context.Background(), tg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			calls := c.Calls()
			if len(calls) != len(tt.wantCmds) {
				t.Fatalf("got %d commands, want %d: %q", len(calls), len(tt.wantCmds), calls)
			}
			for i, re := range tt.wantCmds {
				if !regexp.MustCompile(re).MatchString(calls[i].Cmd) {
					t.Errorf("command %d = %q, want match for %s", i, calls[i].Cmd, re)
				}
			}
			if last := calls[len(calls)-1]; strings.Contains(last.Cmd, ".rb-") && last.Upload() != tt.wantStdin {
				t.Errorf("upload stdin = %q, want %q", last.Upload(), tt.wantStdin)
			}
			var got []string
			for _, ch := range tg.Changes() {
				got = append(got, ch.Summary)
				if len(ch.Writes) != 1 || ch.Writes[0] != tt.mod.Dest {
					t.Errorf("change %q writes %q, want [%s]", ch.Summary, ch.Writes, tt.mod.Dest)
				}
			}
			if strings.Join(got, "|") != strings.Join(tt.wantChanges, "|") {
				t.Errorf("changes = %q, want %q", got, tt.wantChanges)
			}
			if tt.wantDiff != "" && !strings.Contains(tg.Changes()[0].Diff, tt.wantDiff) {
				t.Errorf("diff = %q, want it to contain %q", tg.Changes()[0].Diff, tt.wantDiff)
			}
			if out.Summary != tt.wantSummary {
				t.Errorf("summary = %q, want %q", out.Summary, tt.wantSummary)
			}
		})
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.conf"), []byte("port ${port}\nname ${nmae}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := cty.ObjectVal(map[string]cty.Value{"port": cty.NumberIntVal(6379), "name": cty.StringVal("a")})
	tests := []struct {
		name    string
		mod     Template
		probe   string
		wantErr string
	}{
		{"unknown variable", Template{Source: "bad.conf", Vars: vars, Dest: "/x"}, "absent", "bad.conf:2,8-12: Unknown template variable"},
		{"missing source", Template{Source: "nope.conf", Dest: "/x"}, "absent", "read template: open "},
		{"dest is a directory", Template{Content: "x", Dest: "/x"}, "directory 755 root root 0 0 4096 -", "/x is a directory on the host"},
		{"probe fails", Template{Content: "x", Dest: "/x"}, "", "inspect /x: exit status 1"},
		{"no source nor content", Template{Dest: "/x"}, "absent", "exactly one of source and content"},
		{"relative dest", Template{Content: "x", Dest: "x"}, "absent", `dest: "x" is not an absolute path`},
		{"bad mode", Template{Content: "x", Dest: "/x", Mode: "rw"}, "absent", `mode: mode "rw" is not an octal`},
		{"vars not an object", Template{Content: "x", Dest: "/x", Vars: cty.StringVal("a")}, "absent", "vars: must be an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := enginetest.NewConn()
			exit := 0
			if tt.probe == "" {
				exit = 1
			}
			c.On(`^p=`, enginetest.Reply(tt.probe, exit))
			tg := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Conn: c, Dir: dir})
			_, err := tt.mod.Run(context.Background(), tg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if len(tg.Changes()) != 0 {
				t.Errorf("changes recorded on error: %v", tg.Changes())
			}
		})
	}
}

// TestProbeShell plans the module against real files with the local shells running its commands:
// the probe's real output leads to the right decision, and the first command Run sends is exactly
// the probe it declares (the one the engine reads ahead).
func TestProbeShell(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		return moduletest.WriteFile(t, dir, name, content, mode)
	}
	vars := cty.ObjectVal(map[string]cty.Value{"port": cty.NumberIntVal(6379), "name": cty.StringVal("a")})
	const src = "port ${port}\nname ${name}\n"
	same := write("same.conf", rendered, 0o640)
	changed := write("changed.conf", "port 1\n", 0o640)
	drift := write("drift.conf", rendered, 0o644)
	tests := []struct {
		name        string
		dest        string
		wantChanges []string
		wantSummary string
		wantErr     string
	}{
		{name: "up to date", dest: same, wantSummary: same + " is up to date"},
		{name: "content differs", dest: changed, wantChanges: []string{"update " + changed}},
		{name: "mode drift", dest: drift, wantChanges: []string{"set mode 0644 -> 0640 on " + drift}},
		{name: "absent", dest: filepath.Join(dir, "new.conf"), wantChanges: []string{"create " + filepath.Join(dir, "new.conf")}},
		{name: "directory in the way", dest: dir, wantErr: dir + " is a directory on the host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := Template{Content: src, Vars: vars, Dest: tt.dest, Mode: "0640"}
			for _, sh := range []string{"sh", "bash", "dash"} {
				if _, err := exec.LookPath(sh); err != nil {
					continue
				}
				c := enginetest.NewConn().On(``, enginetest.LocalShell(sh))
				tg := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Conn: c, DryRun: true, Dir: dir})
				out, err := m.Run(context.Background(), tg)
				if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
					t.Fatalf("%s: err = %v, want %q", sh, err, tt.wantErr)
				}
				var got []string
				for _, ch := range tg.Changes() {
					got = append(got, ch.Summary)
				}
				if strings.Join(got, "\n") != strings.Join(tt.wantChanges, "\n") {
					t.Errorf("%s: changes %q, want %q", sh, got, tt.wantChanges)
				}
				if tt.wantSummary != "" && out.Summary != tt.wantSummary {
					t.Errorf("%s: summary %q, want %q", sh, out.Summary, tt.wantSummary)
				}
				if calls := c.Calls(); len(calls) == 0 || calls[0].Cmd != m.Probes()[0] {
					t.Errorf("%s: first command %v, want the declared probe %q", sh, calls, m.Probes()[0])
				}
			}
		})
	}
}
