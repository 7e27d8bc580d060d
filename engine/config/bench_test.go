package config_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
)

// benchNote is a cheap module for loading benchmarks: one attribute, never run here.
type benchNote struct {
	Text string `hcl:"text,attr"`
}

func (m *benchNote) Run(context.Context, *engine.Target) (engine.Outcome, error) {
	return engine.Outcome{Summary: m.Text}, nil
}

// benchPlaybook writes a playbook of n tasks on 3 hosts into dir: every task depends on the one
// before, every tenth has a for_each of three keys, and every module attribute interpolates a
// variable and the host's name, as real playbooks do.
func benchPlaybook(tb testing.TB, dir string, n int) string {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`variable "prefix" {
  type    = string
  default = "bench"
}

host "node1" { address = "10.0.0.1" }
host "node2" { address = "10.0.0.2" }
host "node3" { address = "10.0.0.3" }

group "all" {
  hosts = [host.node1, host.node2, host.node3]
}
`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "\ntask \"t%04d\" {\n  on = group.all\n", i)
		if i > 0 {
			fmt.Fprintf(&b, "  depends_on = [task.t%04d]\n", i-1)
		}
		text := fmt.Sprintf(`"${var.prefix}-%d-${self.name}"`, i)
		if i%10 == 0 {
			b.WriteString("  for_each = { a = 6379, b = 6380, c = 6381 }\n")
			text = fmt.Sprintf(`"${var.prefix}-%d-${self.name}-${each.key}:${each.value}"`, i)
		}
		fmt.Fprintf(&b, "  note {\n    text = %s\n  }\n}\n", text)
	}
	path := filepath.Join(dir, "bench.hcl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkLoad measures config.Load (parse, decode, validate, order) of generated playbooks of
// 100 and 1000 tasks on 3 hosts.
func BenchmarkLoad(b *testing.B) {
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "note", New: func() engine.Module { return &benchNote{} }})
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("tasks=%d", n), func(b *testing.B) {
			path := benchPlaybook(b, b.TempDir(), n)
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
