package run

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/enginetest"
)

// world is the fake remote state: host -> set of marks.
type world struct {
	mu    sync.Mutex
	marks map[string]map[string]int
	fail  map[string]bool // host -> every mark fails
}

func (w *world) has(host, name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.marks[host][name] > 0
}

func (w *world) set(host, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.marks[host] == nil {
		w.marks[host] = map[string]int{}
	}
	w.marks[host][name]++
}

// markModule ensures a mark exists on the host (always: sets it again every run).
type markModule struct {
	Name   string `hcl:"name,attr"`
	Always bool   `hcl:"always,optional"`
	w      *world
}

func (m *markModule) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	host := t.Host().Name
	if m.w.fail[host] {
		return engine.Outcome{}, fmt.Errorf("disk on fire")
	}
	out := engine.Outcome{Summary: "mark " + m.Name + " present", Outputs: map[string]cty.Value{"value": cty.StringVal(m.Name)}}
	if m.w.has(host, m.Name) && !m.Always {
		return out, nil
	}
	err := t.Change(ctx, engine.Change{Summary: "set mark " + m.Name}, func(ctx context.Context) error {
		m.w.set(host, m.Name)
		return nil
	})
	return out, err
}

func load(t *testing.T, w *world) *config.Playbook {
	t.Helper()
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "mark", New: func() engine.Module { return &markModule{w: w} }})
	pb, diags := config.Load(config.Options{Playbook: "testdata/play.hcl", Registry: reg})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return pb
}

type collector struct {
	mu     sync.Mutex
	events []Event
}

func (c *collector) Event(e Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
}

func (c *collector) results() map[string]Status {
	out := map[string]Status{}
	for _, e := range c.events {
		if e.Type == EventResult {
			out[e.Host+" "+e.Task] = e.Status
		}
	}
	return out
}

func runOnce(t *testing.T, w *world, mode Mode, opts ...func(*Options)) (*Recap, *collector, error) {
	t.Helper()
	c := &collector{}
	o := Options{Mode: mode, Sink: c, Connector: ConnectorFunc(func(ctx context.Context, h *config.Host) (engine.Conn, error) {
		if h.Name == "unreachable" {
			return nil, fmt.Errorf("connection refused")
		}
		return enginetest.NewConn(), nil
	})}
	for _, f := range opts {
		f(&o)
	}
	rc, err := New(load(t, w), o).Run(context.Background())
	return rc, c, err
}

func TestPlanThenApplyThenNoop(t *testing.T) {
	w := &world{marks: map[string]map[string]int{}}
	rc, c, err := runOnce(t, w, Plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.marks) != 0 {
		t.Fatalf("plan changed the world: %v", w.marks)
	}
	// install x3, config x6, read x1 (known after apply), restart handler x3 (would run)
	if rc.Changed != 13 || rc.Failed != 0 {
		t.Errorf("plan recap changed=%d failed=%d, want 13/0; events %v", rc.Changed, rc.Failed, c.results())
	}
	if got := c.results()["node1 read"]; got != StatusChanged {
		t.Errorf("read in plan = %s, want changed (depends on outputs known after apply)", got)
	}

	rc, _, err = runOnce(t, w, Apply)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Changed != 13 {
		t.Errorf("apply changed=%d, want 13", rc.Changed)
	}
	if !w.has("node1", "read-config-a") {
		t.Errorf("output of config not passed to read: %v", w.marks["node1"])
	}
	for _, h := range []string{"node1", "node2", "node3"} {
		if n := w.marks[h]["restarted"]; n != 1 {
			t.Errorf("%s restarted %d times, want once", h, n)
		}
	}

	rc, _, err = runOnce(t, w, Apply)
	if err != nil {
		t.Fatal(err)
	}
	if rc.Changed != 0 || rc.OK != 10 {
		t.Errorf("second apply changed=%d ok=%d, want 0/10", rc.Changed, rc.OK)
	}
	if n := w.marks["node1"]["restarted"]; n != 1 {
		t.Errorf("handler ran again without a change: %d", n)
	}
}

func TestFailedHostStopsOnlyItself(t *testing.T) {
	w := &world{marks: map[string]map[string]int{}, fail: map[string]bool{"node2": true}}
	rc, c, err := runOnce(t, w, Apply)
	if err == nil {
		t.Fatal("want an error when a host failed")
	}
	res := c.results()
	want := map[string]Status{
		"node1 install": StatusChanged, "node2 install": StatusFailed, "node3 install": StatusChanged,
		"node1 config[a]": StatusChanged, "node1 config[b]": StatusChanged,
		"node3 config[a]": StatusChanged, "node3 config[b]": StatusChanged,
		"node1 read": StatusChanged, "node1 restart": StatusChanged, "node3 restart": StatusChanged,
	}
	if diff := cmp.Diff(want, res); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if rc.PerHost["node2"].Failed != 1 {
		t.Errorf("node2 failed count = %d", rc.PerHost["node2"].Failed)
	}
	for _, e := range c.events {
		if e.Status == StatusFailed && !strings.Contains(e.Summary, "disk on fire") {
			t.Errorf("failure summary %q does not say why", e.Summary)
		}
	}
}

func TestLimit(t *testing.T) {
	w := &world{marks: map[string]map[string]int{}}
	_, c, err := runOnce(t, w, Apply, func(o *Options) { o.Limit = []string{"node3"} })
	if err != nil {
		t.Fatal(err)
	}
	for k := range c.results() {
		if !strings.HasPrefix(k, "node3 ") {
			t.Errorf("result outside --limit: %s", k)
		}
	}
	if len(w.marks["node1"]) != 0 {
		t.Errorf("node1 touched despite --limit")
	}
}
