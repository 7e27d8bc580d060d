package redis_cluster

import (
	"context"
	"errors"
	"sync"

	"github.com/runbook/runbook/engine"
)

// maxConcurrentSteps bounds how many independent steps of one batch run at once.
const maxConcurrentSteps = 32

// independent reports whether steps of kind k never depend on each other, so that consecutive
// steps of that kind may run at once: slots added to distinct masters (the planner gives every
// master its own ranges), and replicas attached to their masters (each step moves its own
// instance, which waits only for its master to be known).
func independent(k StepKind) bool {
	return k == StepAddSlots || k == StepReplicate
}

// runSteps runs steps in order, each inside Target.Change, and stops at the first error. A step
// whose promotion candidate changed (errCandidateChanged) ends the run with a warning and replan
// true when allowReplan, so that the caller observes and plans again; otherwise its error is
// returned like any other.
//
// In apply mode, consecutive steps of one independent kind run concurrently, at most
// maxConcurrentSteps at once (see runBatch). In plan mode every step runs in turn, so that the
// plan is shown in its order.
func (e *executor) runSteps(ctx context.Context, steps []Step, allowReplan bool) (replan bool, err error) {
	return runSteps(ctx, e.t, steps, allowReplan, e.do)
}

// runSteps is executor.runSteps with the step's work given as do.
func runSteps(ctx context.Context, t *engine.Target, steps []Step, allowReplan bool, do func(context.Context, Step) error) (bool, error) {
	for k := 0; k < len(steps); {
		n := 1
		if !t.DryRun() && independent(steps[k].Kind) {
			for k+n < len(steps) && steps[k+n].Kind == steps[k].Kind {
				n++
			}
		}
		errs := runBatch(ctx, t, steps[k:k+n], do)
		for _, err := range errs {
			if errors.Is(err, errCandidateChanged) && allowReplan {
				t.Warnf("%v; observing the cluster again", err)
				return true, nil
			}
			if err != nil {
				return false, err
			}
		}
		k += n
	}
	return false, nil
}

// runBatch runs steps concurrently, each inside Target.Change, and returns the error of each (nil
// for a step that succeeded or was left out). A step's change is recorded only once every step
// before it was recorded or failed, so that the changes keep the plan's order; a step holds one of
// maxConcurrentSteps places until then, so that steps k and k+maxConcurrentSteps never run at
// once. Once a step has failed, the steps not yet started are left out; those already started run
// to their end, so that every change made is recorded.
func runBatch(ctx context.Context, t *engine.Target, steps []Step, do func(context.Context, Step) error) []error {
	errs := make([]error, len(steps))
	// done[k] is closed once step k is recorded, failed or left out.
	done := make([]chan struct{}, len(steps))
	for k := range done {
		done[k] = make(chan struct{})
	}
	var mu sync.Mutex
	failed := false
	sem := make(chan struct{}, maxConcurrentSteps)
	var wg sync.WaitGroup
	for k := range steps {
		sem <- struct{}{}
		mu.Lock()
		stop := failed
		mu.Unlock()
		if stop {
			<-sem
			for _, d := range done[k:] {
				close(d)
			}
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer close(done[k])
			errs[k] = t.Change(ctx, engine.Change{Summary: steps[k].Summary}, func(ctx context.Context) error {
				err := do(ctx, steps[k])
				if err != nil {
					mu.Lock()
					failed = true
					mu.Unlock()
				}
				if k > 0 {
					<-done[k-1] // wait for this change's turn to be recorded
				}
				return err
			})
		}()
	}
	wg.Wait()
	return errs
}
