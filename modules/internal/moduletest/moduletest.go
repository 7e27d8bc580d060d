// Package moduletest holds helpers for the modules' table tests against enginetest.Conn.
package moduletest

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
)

// Result is what one Run did.
type Result struct {
	Outcome engine.Outcome
	Err     error
	Changes []engine.Change
	Calls   []enginetest.Call
}

// Run runs m once on c, in plan mode when dryRun, with dir as the playbook's directory.
func Run(m engine.Module, c *enginetest.Conn, dryRun bool, dir string) Result {
	before := len(c.Calls())
	tg := engine.NewTarget(engine.TargetOptions{
		Host:   engine.Host{Name: "node1", Address: "192.0.2.1"},
		Task:   "test",
		Conn:   c,
		DryRun: dryRun,
		Dir:    dir,
	})
	out, err := m.Run(context.Background(), tg)
	return Result{Outcome: out, Err: err, Changes: tg.Changes(), Calls: c.Calls()[before:]}
}

// Summaries returns the summaries of the changes.
func (r Result) Summaries() []string {
	var s []string
	for _, c := range r.Changes {
		s = append(s, c.Summary)
	}
	return s
}

// CheckCalls fails t unless the commands match the regular expressions, one for one, in order.
func (r Result) CheckCalls(t testing.TB, want ...string) {
	t.Helper()
	if len(r.Calls) != len(want) {
		var cmds []string
		for _, c := range r.Calls {
			cmds = append(cmds, c.Cmd)
		}
		t.Fatalf("got %d commands, want %d:\n%s", len(r.Calls), len(want), strings.Join(cmds, "\n"))
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(r.Calls[i].Cmd) {
			t.Errorf("command %d = %q, want a match for %s", i, r.Calls[i].Cmd, re)
		}
	}
}

// CheckChanges fails t unless the change summaries are exactly want.
func (r Result) CheckChanges(t testing.TB, want ...string) {
	t.Helper()
	got := r.Summaries()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes = %q, want %q", got, want)
	}
}

// CheckReach fails t unless every change says it alters exactly path: it removes path when
// the change's summary starts with "remove", and writes it otherwise (engine.Change), so that
// the engine keeps what it read ahead of other paths.
func (r Result) CheckReach(t testing.TB, path string) {
	t.Helper()
	for _, c := range r.Changes {
		want := engine.Change{Writes: []string{path}}
		if strings.HasPrefix(c.Summary, "remove") {
			want = engine.Change{Removes: []string{path}}
		}
		if fmt.Sprint(c.Writes, c.Removes) != fmt.Sprint(want.Writes, want.Removes) {
			t.Errorf("change %q writes %q and removes %q, want %q and %q", c.Summary, c.Writes, c.Removes, want.Writes, want.Removes)
		}
	}
}

// CheckErr fails t unless the error contains want, or is nil when want is empty.
func (r Result) CheckErr(t testing.TB, want string) {
	t.Helper()
	switch {
	case want == "" && r.Err != nil:
		t.Fatalf("Run: %v", r.Err)
	case want != "" && r.Err == nil:
		t.Fatalf("Run succeeded, want an error containing %q", want)
	case want != "" && !strings.Contains(r.Err.Error(), want):
		t.Fatalf("Run error = %q, want it to contain %q", r.Err, want)
	}
}
