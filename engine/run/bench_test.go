package run_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/engine/run"
)

// benchFile is a cheap module: one remote check (`test -e`), and a change when the file is missing.
type benchFile struct {
	Path string `hcl:"path,attr"`
}

func (m *benchFile) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	res, err := t.Conn().Exec(ctx, engine.Command{Cmd: "test -e " + engine.ShellQuote(m.Path)})
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("check %s: %w", m.Path, err)
	}
	out := engine.Outcome{Summary: m.Path + " present"}
	if res.ExitCode == 0 {
		return out, nil
	}
	err = t.Change(ctx, engine.Change{Summary: "create " + m.Path}, func(ctx context.Context) error {
		_, err := engine.Run(ctx, t.Conn(), "touch "+engine.ShellQuote(m.Path))
		return err
	})
	return out, err
}

// BenchmarkPlan measures a plan (connect, evaluate every instance, one fake round trip each) of
// generated playbooks of 100 and 1000 tasks on 3 fake hosts. The playbook is loaded once.
func BenchmarkPlan(b *testing.B) {
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "file_mark", New: func() engine.Module { return &benchFile{} }})
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			pb, diags := config.Load(config.Options{Playbook: enginetest.ChainPlaybook(b, b.TempDir(), n, "file_mark", "path"), Registry: reg})
			if diags.HasErrors() {
				b.Fatal(diags.Error())
			}
			connector := run.ConnectorFunc(func(ctx context.Context, h *config.Host) (engine.Conn, error) {
				return enginetest.NewConn().On(`^test -e `, enginetest.Reply("", 1)), nil
			})
			// 3 hosts x (n tasks + 2 more instances for every tenth task): all would change.
			want := 3 * (n + 2*((n+9)/10))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rc, err := run.New(pb, run.Options{Mode: run.Plan, Connector: connector}).Run(context.Background())
				if err != nil {
					b.Fatal(err)
				}
				if rc.Changed != want || rc.Failed != 0 {
					b.Fatalf("plan: changed=%d failed=%d, want %d/0", rc.Changed, rc.Failed, want)
				}
			}
		})
	}
}
