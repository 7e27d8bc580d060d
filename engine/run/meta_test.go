package run

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/enginetest"
)

// flaky fails until it has been called `succeed_after` times on a host; it records concurrency.
type flaky struct {
	SucceedAfter int `hcl:"succeed_after,optional"`
	state        *flakyState
}

type flakyState struct {
	mu      sync.Mutex
	calls   map[string]int
	running int32
	peak    int32
	order   []string
}

func (f *flaky) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	n := atomic.AddInt32(&f.state.running, 1)
	defer atomic.AddInt32(&f.state.running, -1)
	for {
		p := atomic.LoadInt32(&f.state.peak)
		if n <= p || atomic.CompareAndSwapInt32(&f.state.peak, p, n) {
			break
		}
	}
	time.Sleep(5 * time.Millisecond)
	f.state.mu.Lock()
	f.state.calls[t.Host().Name]++
	c := f.state.calls[t.Host().Name]
	f.state.order = append(f.state.order, t.Host().Name)
	f.state.mu.Unlock()
	out := engine.Outcome{Summary: fmt.Sprintf("call %d", c), Outputs: map[string]cty.Value{"calls": cty.NumberIntVal(int64(c))}}
	if c <= f.SucceedAfter {
		return out, fmt.Errorf("not yet (call %d)", c)
	}
	return out, nil
}

func runPlaybook(t *testing.T, src string, opts Options) (*Recap, *collector, *flakyState, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "play.hcl")
	hosts := `
host "a" { address = "192.0.2.1" }
host "b" { address = "192.0.2.2" }
host "c" { address = "192.0.2.3" }
host "d" { address = "192.0.2.4" }
`
	if err := os.WriteFile(path, []byte(hosts+src), 0o644); err != nil {
		t.Fatal(err)
	}
	st := &flakyState{calls: map[string]int{}}
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "flaky", New: func() engine.Module { return &flaky{state: st} }})
	pb, diags := config.Load(config.Options{Playbook: path, Registry: reg})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	c := &collector{}
	opts.Sink = c
	if opts.Mode == "" {
		opts.Mode = Apply
	}
	opts.Connector = ConnectorFunc(func(ctx context.Context, h *config.Host) (engine.Conn, error) { return enginetest.NewConn(), nil })
	rc, err := New(pb, opts).Run(context.Background())
	return rc, c, st, err
}

func TestRetriesUntil(t *testing.T) {
	rc, c, st, err := runPlaybook(t, `
task "wait" {
  on      = host.a
  retries = 5
  delay   = "1ms"
  until   = result.calls >= 3
  flaky {
    succeed_after = 1
  }
}
`, Options{})
	if err != nil {
		t.Fatalf("err = %v; results %v", err, c.results())
	}
	if st.calls["a"] != 3 || rc.OK != 1 {
		t.Errorf("calls = %d ok = %d, want 3 calls (fail, until false, until true) and ok", st.calls["a"], rc.OK)
	}
	_, _, st, err = runPlaybook(t, `
task "wait" {
  on      = host.a
  retries = 2
  flaky {
    succeed_after = 10
  }
}
`, Options{})
	if err == nil || st.calls["a"] != 3 {
		t.Errorf("err = %v calls = %d, want a failure after 3 attempts", err, st.calls["a"])
	}
}

func TestSerialRunOnceFailFast(t *testing.T) {
	_, _, st, err := runPlaybook(t, `
task "roll" {
  serial = 1
  flaky {}
}
`, Options{Forks: 10})
	if err != nil {
		t.Fatal(err)
	}
	if st.peak != 1 || len(st.order) != 4 {
		t.Errorf("serial = 1: peak concurrency %d over %d hosts, want 1 over 4", st.peak, len(st.order))
	}

	_, _, st, err = runPlaybook(t, `
task "wide" {
  flaky {}
}
`, Options{Forks: 2})
	if err != nil {
		t.Fatal(err)
	}
	if st.peak > 2 {
		t.Errorf("--forks 2: peak concurrency %d", st.peak)
	}

	_, _, st, err = runPlaybook(t, `
task "once" {
  run_once = true
  flaky {}
}
`, Options{})
	if err != nil || len(st.order) != 1 || st.order[0] != "a" {
		t.Errorf("run_once ran on %v (err %v), want only a", st.order, err)
	}

	_, c, st, err := runPlaybook(t, `
task "boom" {
  on = host.a
  flaky {
    succeed_after = 1
  }
}
task "later" {
  depends_on = [task.boom]
  flaky {}
}
`, Options{FailFast: true})
	if err == nil {
		t.Fatal("want failure")
	}
	if len(st.order) != 1 {
		t.Errorf("--fail-fast: %d module runs after the first failure (%v), want none", len(st.order)-1, c.results())
	}
}

func TestWhenSkips(t *testing.T) {
	rc, c, _, err := runPlaybook(t, `
task "some" {
  when = self.name != "b"
  flaky {}
}
`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rc.Skipped != 1 || rc.OK != 3 || c.results()["b some"] != StatusSkipped {
		t.Errorf("recap %+v results %v, want b skipped", rc, c.results())
	}
}

func TestRunOnceFailureSkipsDependentsEverywhere(t *testing.T) {
	_, c, st, err := runPlaybook(t, `
task "cluster" {
  run_once = true
  flaky {
    succeed_after = 1
  }
}
task "after" {
  run_once   = true
  depends_on = [task.cluster]
  flaky {}
}
task "independent" {
  on = host.b
  flaky {}
}
`, Options{})
	if err == nil {
		t.Fatal("want a failure")
	}
	res := c.results()
	if res["a cluster"] != StatusFailed || res["b after"] != StatusSkipped || st.calls["a"] != 1 {
		t.Errorf("results %v calls %v: want cluster failed on a, after skipped (not run on another host)", res, st.calls)
	}
	if st.calls["b"] != 1 || res["b independent"] != StatusOK {
		t.Errorf("independent task on b: calls=%d result=%s, want it run", st.calls["b"], res["b independent"])
	}
}
