package config_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/enginetest"
)

// benchNote is a cheap module for loading benchmarks: one attribute, never run here.
type benchNote struct {
	Text string `hcl:"text,attr"`
}

func (m *benchNote) Run(context.Context, *engine.Target) (engine.Outcome, error) {
	return engine.Outcome{Summary: m.Text}, nil
}

// BenchmarkLoad measures config.Load (parse, decode, validate, order) of generated playbooks of
// 100 and 1000 tasks on 3 hosts.
func BenchmarkLoad(b *testing.B) {
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "note", New: func() engine.Module { return &benchNote{} }})
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			path := enginetest.ChainPlaybook(b, b.TempDir(), n, "note", "text")
			pb, diags := config.Load(config.Options{Playbook: path, Registry: reg})
			if diags.HasErrors() {
				b.Fatal(diags.Error())
			}
			if got := len(pb.Tasks); got != n {
				b.Fatalf("loaded %d tasks, want %d", got, n)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, diags := config.Load(config.Options{Playbook: path, Registry: reg}); diags.HasErrors() {
					b.Fatal(diags.Error())
				}
			}
		})
	}
}
