package command

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/modules/internal/moduletest"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name        string
		mod         Command
		guard       string // output of the guard command
		exit        int    // exit code of the command
		dryRun      bool
		wantCmds    []string
		wantChanges []string
		wantSummary string
		wantStdout  cty.Value
		wantErr     string
	}{
		{
			name:        "plan without guard",
			mod:         Command{Cmd: "touch /x", OkCodes: []int{0}},
			dryRun:      true,
			wantChanges: []string{"run: touch /x"},
			wantSummary: "will run: touch /x",
			wantStdout:  cty.UnknownVal(cty.String),
		},
		{
			name:        "apply without guard",
			mod:         Command{Cmd: "echo hi", OkCodes: []int{0}},
			wantCmds:    []string{`^echo hi$`},
			wantChanges: []string{"run: echo hi"},
			wantSummary: "ran: echo hi (exit 0)",
			wantStdout:  cty.StringVal("out"),
		},
		{
			name:        "creates holds",
			mod:         Command{Cmd: "make", Creates: "bin/app", Chdir: "/src", OkCodes: []int{0}},
			guard:       "creates",
			wantCmds:    []string{`^if \[ -e /src/bin/app \]; then echo creates; exit 0; fi\necho run$`},
			wantSummary: "skipped: /src/bin/app exists",
			wantStdout:  cty.StringVal(""),
		},
		{
			name:        "removes holds in plan",
			mod:         Command{Cmd: "rm /x", Removes: "/x", OkCodes: []int{0}},
			guard:       "removes",
			dryRun:      true,
			wantCmds:    []string{`^if \[ ! -e /x \]; then echo removes; exit 0; fi\necho run$`},
			wantSummary: "skipped: /x does not exist",
			wantStdout:  cty.StringVal(""),
		},
		{
			name:        "unless fails so it runs",
			mod:         Command{Cmd: "init", Unless: "test -e /done", Chdir: "/srv", OkCodes: []int{0}},
			guard:       "run",
			wantCmds:    []string{`^if \(\ncd -- /srv \|\| exit 1\ntest -e /done\n\) </dev/null >/dev/null 2>&1; then echo unless; exit 0; fi\necho run$`, `^cd -- /srv \|\| exit 1\ninit$`},
			wantChanges: []string{"run: init"},
			wantSummary: "ran: init (exit 0)",
			wantStdout:  cty.StringVal("out"),
		},
		{
			name:        "unless fails so plan says will run",
			mod:         Command{Cmd: "init", Unless: "test -e /done", OkCodes: []int{0}},
			guard:       "run",
			dryRun:      true,
			wantCmds:    []string{`echo unless`},
			wantChanges: []string{"run: init"},
			wantSummary: "will run: init",
			wantStdout:  cty.UnknownVal(cty.String),
		},
		{
			name:        "readonly runs in plan without a change",
			mod:         Command{Cmd: "redis-cli cluster info", Readonly: true, OkCodes: []int{0}},
			dryRun:      true,
			wantCmds:    []string{`^redis-cli cluster info$`},
			wantSummary: "ran: redis-cli cluster info (exit 0)",
			wantStdout:  cty.StringVal("out"),
		},
		{
			name:        "non-zero exit fails",
			mod:         Command{Cmd: "false", OkCodes: []int{0}},
			exit:        3,
			wantCmds:    []string{`^false$`},
			wantErr:     "run: false: exit status 3: oops",
			wantStdout:  cty.StringVal("out"),
			wantSummary: "",
		},
		{
			name:        "ok_codes",
			mod:         Command{Cmd: "grep -q x /f", OkCodes: []int{0, 1}},
			exit:        1,
			wantCmds:    []string{`^grep`},
			wantChanges: []string{"run: grep -q x /f"},
			wantSummary: "ran: grep -q x /f (exit 1)",
			wantStdout:  cty.StringVal("out"),
		},
		{
			name:        "multi-line command",
			mod:         Command{Cmd: "set -e\necho a\necho b", OkCodes: []int{0}},
			dryRun:      true,
			wantChanges: []string{"run: set -e ..."},
			wantSummary: "will run: set -e ...",
			wantStdout:  cty.UnknownVal(cty.String),
		},
		{name: "empty cmd", mod: Command{Cmd: " ", OkCodes: []int{0}}, wantErr: "cmd: must not be empty"},
		{name: "bad timeout", mod: Command{Cmd: "x", Timeout: "soon", OkCodes: []int{0}}, wantErr: `timeout: "soon"`},
		{name: "no ok codes", mod: Command{Cmd: "x"}, wantErr: "ok_codes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := enginetest.NewConn().
				On(`echo run$`, enginetest.Reply(tt.guard+"\n", 0)).
				On(`.`, func(enginetest.Call) (engine.ExecResult, error) {
					return engine.ExecResult{Stdout: []byte("out"), Stderr: []byte("oops\n"), ExitCode: tt.exit}, nil
				})
			r := moduletest.Run(&tt.mod, c, tt.dryRun, "")
			r.CheckErr(t, tt.wantErr)
			r.CheckCalls(t, tt.wantCmds...)
			r.CheckChanges(t, tt.wantChanges...)
			if r.Outcome.Summary != tt.wantSummary {
				t.Errorf("summary = %q, want %q", r.Outcome.Summary, tt.wantSummary)
			}
			if tt.wantStdout != cty.NilVal && !r.Outcome.Outputs["stdout"].RawEquals(tt.wantStdout) {
				t.Errorf("stdout = %#v, want %#v", r.Outcome.Outputs["stdout"], tt.wantStdout)
			}
		})
	}
}

func TestStdin(t *testing.T) {
	c := enginetest.NewConn().On(`^cat$`, enginetest.Reply("", 0))
	r := moduletest.Run(&Command{Cmd: "cat", Stdin: "s3cret", OkCodes: []int{0}}, c, false, "")
	r.CheckErr(t, "")
	if r.Calls[0].Stdin != "s3cret" {
		t.Errorf("stdin = %q, want the secret on stdin", r.Calls[0].Stdin)
	}
}

// TestGuardCommandShell runs the guard script with the local shell.
func TestGuardCommandShell(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		mod  Command
		want string
	}{
		{Command{Creates: dir}, "creates"},
		{Command{Creates: dir + "/nope"}, "run"},
		{Command{Removes: dir + "/nope"}, "removes"},
		{Command{Removes: dir}, "run"},
		{Command{Unless: "test \"$(pwd)\" = " + dir + " # comment", Chdir: dir}, "unless"},
		{Command{Unless: "exit 1"}, "run"},
		{Command{Unless: "true", Chdir: dir + "/nope"}, "run"},
		{Command{Creates: "x", Chdir: "/"}, "run"},
	}
	for _, tt := range tests {
		out, err := exec.Command("sh", "-c", tt.mod.GuardCommand()).Output()
		if err != nil {
			t.Fatalf("%q: %v", tt.mod.GuardCommand(), err)
		}
		if got := strings.TrimSpace(string(out)); got != tt.want {
			t.Errorf("%q printed %q, want %q", tt.mod.GuardCommand(), got, tt.want)
		}
	}
}

func TestProbes(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Command
		want int
	}{
		{"plain command: nothing to read ahead", Command{Cmd: "make install"}, 0},
		{"guarded: the guard", Command{Cmd: "make install", Creates: "/opt/x"}, 1},
		{"readonly: the query", Command{Cmd: "cat /etc/os-release", Readonly: true}, 1},
		{"readonly with input: never ahead", Command{Cmd: "cat", Readonly: true, Stdin: "secret"}, 0},
		{"readonly with a timeout: never ahead", Command{Cmd: "sleep 1", Readonly: true, Timeout: "5s"}, 0},
		{"readonly and guarded: both", Command{Cmd: "cat x", Readonly: true, Unless: "false"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.m.Probes()
			if len(got) != tc.want {
				t.Fatalf("Probes() = %q, want %d", got, tc.want)
			}
			if tc.m.Readonly && tc.want > 0 && got[len(got)-1] != tc.m.cd()+tc.m.Cmd {
				t.Errorf("the query probe %q is not the command Run executes", got[len(got)-1])
			}
		})
	}
}
