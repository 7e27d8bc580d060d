package connect_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/connect"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules/all"
	"github.com/runbook/runbook/testenv"
)

// tenTemplates is a playbook of 10 template tasks on every host of the lab's group redis.
func tenTemplates(t testing.TB, dir string) string {
	src := ""
	for i := 0; i < 10; i++ {
		src += fmt.Sprintf(`
task "t%d" {
  on = group.redis
  template {
    content = "file %d on $${host}\n"
    vars    = { host = self.name }
    dest    = "/etc/redis/bench-%d.conf"
    mode    = "0640"
  }
}
`, i, i, i)
	}
	path := filepath.Join(dir, "bench.hcl")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func applyOnce(tb testing.TB, playbook, inventory string) *run.Recap {
	pb, diags := config.Load(config.Options{Playbook: playbook, Inventories: []string{inventory}, Registry: all.Registry()})
	if diags.HasErrors() {
		tb.Fatal(diags.Error())
	}
	rc, err := run.New(pb, run.Options{Mode: run.Apply, Connector: connect.NewSSH(pb)}).Run(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return rc
}

// BenchmarkIdempotentApply measures a whole idempotent apply (load, connect, check, recap) of 10
// template tasks on 3 lab hosts over real SSH. Target: median under 300 ms.
func BenchmarkIdempotentApply(b *testing.B) {
	lab := testenv.Start(b, testenv.Options{Nodes: 3})
	playbook := tenTemplates(b, b.TempDir())
	if rc := applyOnce(b, playbook, lab.InventoryPath()); rc.Changed != 30 {
		b.Fatalf("first apply changed %d, want 30", rc.Changed)
	}
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		rc := applyOnce(b, playbook, lab.InventoryPath())
		times = append(times, time.Since(start))
		if rc.Changed != 0 || rc.OK != 30 {
			b.Fatalf("idempotent apply: changed=%d ok=%d, want 0/30", rc.Changed, rc.OK)
		}
	}
	b.StopTimer()
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Milliseconds()), "median-ms")
}
