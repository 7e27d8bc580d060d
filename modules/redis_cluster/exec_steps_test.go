package redis_cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbook/runbook/engine"
)

// stepReporter records the warnings a target shows.
type stepReporter struct {
	mu    sync.Mutex
	warns []string
}

func (r *stepReporter) Log(host, task, msg string)                        {}
func (r *stepReporter) Progress(host, task, msg string)                   {}
func (r *stepReporter) Change(host, task string, c engine.Change, _ bool) {}
func (r *stepReporter) Warn(host, task, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warns = append(r.warns, msg)
}

// fakeSteps plays the work of steps: it records which steps ran and how many ran at once, and
// lets a test hold steps until a condition holds.
type fakeSteps struct {
	mu        sync.Mutex
	ran       []string
	active    map[StepKind]int
	maxOf     map[StepKind]int
	startedOf map[StepKind]int
	overlap   bool // a step of a dependent kind ran beside another step
	// hold, when set, is called with the step before it returns; the step returns hold's error.
	hold func(s Step) error
}

func newFakeSteps() *fakeSteps {
	return &fakeSteps{active: map[StepKind]int{}, maxOf: map[StepKind]int{}, startedOf: map[StepKind]int{}}
}

func (f *fakeSteps) do(ctx context.Context, s Step) error {
	f.mu.Lock()
	f.ran = append(f.ran, s.Summary)
	total := 0
	for _, n := range f.active {
		total += n
	}
	if total > 0 && !independent(s.Kind) {
		f.overlap = true
	}
	for k, n := range f.active {
		if n > 0 && k != s.Kind {
			f.overlap = true
		}
	}
	f.active[s.Kind]++
	f.startedOf[s.Kind]++
	f.maxOf[s.Kind] = max(f.maxOf[s.Kind], f.active[s.Kind])
	f.mu.Unlock()
	var err error
	if f.hold != nil {
		err = f.hold(s)
	}
	f.mu.Lock()
	f.active[s.Kind]--
	f.mu.Unlock()
	return err
}

func (f *fakeSteps) running(kind StepKind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active[kind]
}

// started returns how many steps of kind began.
func (f *fakeSteps) started(kind StepKind) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.startedOf[kind]
}

func (f *fakeSteps) ranSet() map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := map[string]bool{}
	for _, s := range f.ran {
		m[s] = true
	}
	return m
}

// waitFor waits until cond holds; a step that never comes fails the test instead of hanging.
func waitFor(cond func() bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("condition not reached in 10s: the steps did not run concurrently")
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// createSteps is the shape of a create plan: slots, epochs, meet, replicas.
func createSteps(masters, replicas int) []Step {
	var steps []Step
	for m := 0; m < masters; m++ {
		steps = append(steps, Step{Kind: StepAddSlots, Inst: m, Summary: fmt.Sprintf("add slots to m%d", m)})
	}
	steps = append(steps, Step{Kind: StepSetEpoch, Summary: "set epochs"}, Step{Kind: StepMeet, Summary: "meet"})
	for m := 0; m < masters; m++ {
		for r := 0; r < replicas; r++ {
			steps = append(steps, Step{Kind: StepReplicate, Inst: masters + m*replicas + r, Summary: fmt.Sprintf("r%d.%d replicates m%d", m, r, m)})
		}
	}
	return steps
}

func summaries(steps []Step) []string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Summary)
	}
	return out
}

func changeSummaries(cs []engine.Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Summary)
	}
	return out
}

func newStepTarget(dryRun bool) (*engine.Target, *stepReporter) {
	rep := &stepReporter{}
	return engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Task: "redis_cluster", DryRun: dryRun, Reporter: rep}), rep
}

// TestRunStepsConcurrentInPlanOrder: in apply mode the independent steps of a batch all run at
// once (each waits until its whole batch runs), the dependent ones alone; the changes are
// recorded in the plan's order although the steps finish in reverse.
func TestRunStepsConcurrentInPlanOrder(t *testing.T) {
	steps := createSteps(5, 2)
	f := newFakeSteps()
	var finished sync.Map // summary -> true
	batch := map[StepKind]int{StepAddSlots: 5, StepReplicate: 10}
	f.hold = func(s Step) error {
		if n := batch[s.Kind]; n > 0 {
			// Wait until the whole batch runs; none ends before.
			if err := waitFor(func() bool { return f.started(s.Kind) == n }); err != nil {
				return err
			}
		}
		// Finish in reverse: each independent step waits for the next one of its batch.
		for k, o := range steps {
			if o.Summary == s.Summary && k+1 < len(steps) && steps[k+1].Kind == s.Kind && independent(s.Kind) {
				if err := waitFor(func() bool { _, ok := finished.Load(steps[k+1].Summary); return ok }); err != nil {
					return err
				}
			}
		}
		finished.Store(s.Summary, true)
		return nil
	}
	target, _ := newStepTarget(false)
	replan, err := runSteps(context.Background(), target, steps, true, f.do)
	if err != nil || replan {
		t.Fatalf("runSteps: replan %v, err %v", replan, err)
	}
	if diff := cmp.Diff(summaries(steps), changeSummaries(target.Changes())); diff != "" {
		t.Errorf("changes not in plan order (-plan +recorded):\n%s", diff)
	}
	if f.maxOf[StepAddSlots] != 5 || f.maxOf[StepReplicate] != 10 {
		t.Errorf("at most %d add-slots and %d replicate steps ran at once, want 5 and 10", f.maxOf[StepAddSlots], f.maxOf[StepReplicate])
	}
	if f.overlap {
		t.Error("a step ran beside a step of another kind or of a dependent kind")
	}
}

// TestRunStepsPlanModeSequential: in plan mode nothing runs and every step is recorded in order.
func TestRunStepsPlanModeSequential(t *testing.T) {
	steps := createSteps(30, 2)
	f := newFakeSteps()
	target, _ := newStepTarget(true)
	replan, err := runSteps(context.Background(), target, steps, false, f.do)
	if err != nil || replan {
		t.Fatalf("runSteps: replan %v, err %v", replan, err)
	}
	if len(f.ran) != 0 {
		t.Errorf("plan mode ran %d steps", len(f.ran))
	}
	if diff := cmp.Diff(summaries(steps), changeSummaries(target.Changes())); diff != "" {
		t.Errorf("plan not in order (-plan +recorded):\n%s", diff)
	}
}

// TestRunStepsBound: no more than maxConcurrentSteps steps run at once, and that many do.
func TestRunStepsBound(t *testing.T) {
	steps := createSteps(2, maxConcurrentSteps) // 2*maxConcurrentSteps replicate steps
	f := newFakeSteps()
	var mu sync.Mutex
	reached := false
	f.hold = func(s Step) error {
		if s.Kind != StepReplicate {
			return nil
		}
		mu.Lock()
		done := reached
		mu.Unlock()
		if done {
			return nil
		}
		// The first maxConcurrentSteps steps wait until all of them run.
		err := waitFor(func() bool {
			mu.Lock()
			defer mu.Unlock()
			reached = reached || f.running(StepReplicate) == maxConcurrentSteps
			return reached
		})
		return err
	}
	target, _ := newStepTarget(false)
	if _, err := runSteps(context.Background(), target, steps, true, f.do); err != nil {
		t.Fatalf("runSteps: %v", err)
	}
	if got := f.maxOf[StepReplicate]; got != maxConcurrentSteps {
		t.Errorf("at most %d steps ran at once, want %d", got, maxConcurrentSteps)
	}
	if got := len(target.Changes()); got != len(steps) {
		t.Errorf("%d changes recorded, want %d", got, len(steps))
	}
}

// TestRunStepsErrors: the first error in the plan's order is returned (the step's summary and
// its cause); steps after a failed batch do not run; a changed promotion candidate asks for a
// new plan only when allowed.
func TestRunStepsErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name        string
		steps       []Step
		fail        map[string]error // step summary -> its error
		failLast    string           // this step fails only after every other of its batch ended
		allowReplan bool
		wantErr     string // "" no error
		wantReplan  bool
		wantWarn    string
		notRun      []string
		recorded    []string
	}{
		{
			name:     "a replica fails, the batch's others are recorded, nothing after runs",
			steps:    append(createSteps(2, 2), Step{Kind: StepFailover, Summary: "failover"}),
			fail:     map[string]error{"r0.1 replicates m0": boom},
			wantErr:  "r0.1 replicates m0: boom",
			notRun:   []string{"failover"},
			recorded: []string{"add slots to m0", "add slots to m1", "set epochs", "meet", "r0.0 replicates m0", "r1.0 replicates m1", "r1.1 replicates m1"},
		},
		{
			name:     "two fail: the first in plan order is returned though it failed last",
			steps:    createSteps(3, 1),
			fail:     map[string]error{"add slots to m0": errors.New("first"), "add slots to m2": errors.New("second")},
			failLast: "add slots to m0",
			wantErr:  "add slots to m0: first",
			notRun:   []string{"set epochs", "meet"},
			recorded: []string{"add slots to m1"},
		},
		{
			name:     "a dependent step fails: the rest does not run",
			steps:    createSteps(2, 1),
			fail:     map[string]error{"set epochs": boom},
			wantErr:  "set epochs: boom",
			notRun:   []string{"meet", "r0.0 replicates m0", "r1.0 replicates m1"},
			recorded: []string{"add slots to m0", "add slots to m1"},
		},
		{
			name: "changed candidate with replan allowed",
			steps: []Step{{Kind: StepPromote, Summary: "failover FORCE to a"}, {Kind: StepPromote, Summary: "failover FORCE to b"},
				{Kind: StepReplicate, Summary: "c replicates a"}},
			fail:        map[string]error{"failover FORCE to a": fmt.Errorf("%w: a holds keys", errCandidateChanged)},
			allowReplan: true,
			wantReplan:  true,
			wantWarn:    "failover FORCE to a: the replica chosen for promotion changed since it was planned: a holds keys; observing the cluster again",
			notRun:      []string{"failover FORCE to b", "c replicates a"},
		},
		{
			name:     "changed candidate without replan",
			steps:    []Step{{Kind: StepPromote, Summary: "failover FORCE to a"}, {Kind: StepReplicate, Summary: "c replicates a"}},
			fail:     map[string]error{"failover FORCE to a": fmt.Errorf("%w: a holds keys", errCandidateChanged)},
			wantErr:  "failover FORCE to a: the replica chosen for promotion changed since it was planned: a holds keys",
			notRun:   []string{"c replicates a"},
			recorded: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeSteps()
			f.hold = func(s Step) error {
				if s.Summary == tt.failLast {
					n := 0
					for _, o := range tt.steps {
						if o.Kind == s.Kind {
							n++
						}
					}
					if err := waitFor(func() bool { return len(f.ranSet()) >= n && f.running(s.Kind) == 1 }); err != nil {
						return err
					}
				}
				return tt.fail[s.Summary]
			}
			target, rep := newStepTarget(false)
			replan, err := runSteps(context.Background(), target, tt.steps, tt.allowReplan, f.do)
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr || replan != tt.wantReplan {
				t.Fatalf("runSteps = %v, %q; want %v, %q", replan, gotErr, tt.wantReplan, tt.wantErr)
			}
			if tt.wantErr != "" && !errors.Is(err, tt.fail[strings.SplitN(tt.wantErr, ": ", 2)[0]]) {
				t.Errorf("error %v does not wrap the step's error", err)
			}
			if tt.wantWarn != "" && (len(rep.warns) != 1 || rep.warns[0] != tt.wantWarn) {
				t.Errorf("warnings %q, want %q", rep.warns, tt.wantWarn)
			}
			ran := f.ranSet()
			for _, s := range tt.notRun {
				if ran[s] {
					t.Errorf("%q ran after the failure", s)
				}
			}
			if diff := cmp.Diff(tt.recorded, changeSummaries(target.Changes())); diff != "" {
				t.Errorf("recorded changes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunStepsLeavesOutUnstarted: once a step of a batch failed, the steps still waiting for a
// place do not start; the ones already running end and are recorded.
func TestRunStepsLeavesOutUnstarted(t *testing.T) {
	var steps []Step
	for k := 0; k < maxConcurrentSteps+8; k++ {
		steps = append(steps, Step{Kind: StepReplicate, Summary: fmt.Sprintf("r%d", k)})
	}
	f := newFakeSteps()
	boom := errors.New("boom")
	f.hold = func(s Step) error {
		// Every place is taken before any step ends; then r0 fails. A place frees only once
		// r0 has ended, so no further step starts.
		if err := waitFor(func() bool { return len(f.ranSet()) >= maxConcurrentSteps }); err != nil {
			return err
		}
		if s.Summary == "r0" {
			return boom
		}
		return nil
	}
	target, _ := newStepTarget(false)
	_, err := runSteps(context.Background(), target, steps, true, f.do)
	if !errors.Is(err, boom) {
		t.Fatalf("runSteps: %v, want boom", err)
	}
	if got := len(f.ranSet()); got != maxConcurrentSteps {
		t.Errorf("%d steps ran, want %d (the ones started before the failure)", got, maxConcurrentSteps)
	}
	if got := len(target.Changes()); got != maxConcurrentSteps-1 {
		t.Errorf("%d changes recorded, want %d", got, maxConcurrentSteps-1)
	}
}
