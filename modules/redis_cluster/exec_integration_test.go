package redis_cluster

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbook/runbook/engine"
)

// progressReporter signals the first progress line, the sign that a wait has begun.
type progressReporter struct {
	stepReporter
	once    sync.Once
	waiting chan struct{}
}

func (r *progressReporter) Progress(host, task, msg string) {
	if msg != "" {
		r.once.Do(func() { close(r.waiting) })
	}
}

// openExecutor observes the lab and returns an executor on it, with target as its Target.
func (l *lab) openExecutor(ctx context.Context, c *Config, target *engine.Target, stepTimeout time.Duration) *executor {
	l.t.Helper()
	s, err := c.open(ctx, target)
	if err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(s.c.close)
	return &executor{t: target, c: s.c, top: s.c.topology(ctx), stepTimeout: stepTimeout}
}

// TestIntegrationReplicateWaitsToKnowMaster: a replicate step sent before the instances met waits
// (CLUSTER REPLICATE answers "Unknown node") and succeeds once the pipelined meet made them know
// each other; a refusal for another reason (the instance owns slots) ends the step at once.
func TestIntegrationReplicateWaitsToKnowMaster(t *testing.T) {
	l := newLab(t, 3, 1, 26950)
	c := l.config(1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep := &progressReporter{waiting: make(chan struct{})}
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: l.hosts[0]}, Task: "redis_cluster", Hosts: l.ips, Reporter: rep})
	const stepTimeout = 20 * time.Second
	ex := l.openExecutor(ctx, c, target, stepTimeout)
	id := func(i int) string { return ex.top.Obs[i].Myself().ID }

	if err := ex.run(ctx, Step{Kind: StepAddSlots, Inst: 2, Slots: []SlotRange{{Start: 0, End: 99}}, Summary: "add slots 0-99 to node3"}); err != nil {
		t.Fatalf("add slots: %v", err)
	}
	replicated := make(chan error, 1)
	go func() {
		replicated <- ex.run(ctx, Step{Kind: StepReplicate, Inst: 1, NodeID: id(0), Summary: "node2 replicates node1"})
	}()
	select {
	case <-rep.waiting:
	case err := <-replicated:
		t.Fatalf("replicate before the instances met ended without waiting: %v", err)
	}
	if err := ex.run(ctx, Step{Kind: StepMeet, Insts: []int{0, 1, 2}, Peers: [][]int{{1, 2}, {2}, nil}, Summary: "meet 3 instances"}); err != nil {
		t.Fatalf("meet: %v", err)
	}
	if err := <-replicated; err != nil {
		t.Fatalf("replicate after the meet: %v", err)
	}
	me, err := ex.myself(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if me.IsMaster() || me.MasterID != id(0) {
		t.Errorf("node2 is %s of %q, want a replica of %s", me.Flags, me.MasterID, id(0))
	}
	// Every instance learns every other one (the pipelined MEETs all took effect).
	if err := target.Poll(ctx, "the instances to know each other", pollInterval, stepTimeout, func(ctx context.Context) (bool, error) {
		for i := range 3 {
			for j := range 3 {
				if n, err := ex.nodeSeenBy(ctx, i, id(j)); err != nil || n == nil {
					return false, nil
				}
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	err = ex.run(ctx, Step{Kind: StepReplicate, Inst: 2, NodeID: id(0), Summary: "node3 replicates node1"})
	if err == nil || !strings.Contains(err.Error(), "must be empty and without assigned slots") {
		t.Fatalf("replicate of an instance owning slots: %v, want the server's refusal", err)
	}
	if d := time.Since(start); d > stepTimeout/2 {
		t.Errorf("the refusal took %v: it was retried instead of ending the step", d)
	}
}

// TestIntegrationRunStepsCreate creates a 3x3 cluster with runSteps (add-slots and replicate
// steps concurrently) and checks that it converges and that the changes are the plan's, in its
// order.
func TestIntegrationRunStepsCreate(t *testing.T) {
	l := newLab(t, 3, 3, 26960)
	c := l.config(2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: l.hosts[0]}, Task: "redis_cluster", Hosts: l.ips})
	ex := l.openExecutor(ctx, c, target, 30*time.Second)
	plan, err := PlanSteps(ex.top, c.desired())
	if err != nil {
		t.Fatal(err)
	}
	replan, err := ex.runSteps(ctx, plan.Steps, true)
	if err != nil || replan {
		t.Fatalf("runSteps: replan %v, %v", replan, err)
	}
	if diff := cmp.Diff(summaries(plan.Steps), changeSummaries(target.Changes())); diff != "" {
		t.Errorf("changes are not the plan's (-plan +recorded):\n%s", diff)
	}
	var health []string
	if err := target.Poll(ctx, "the cluster to converge", pollInterval, 30*time.Second, func(ctx context.Context) (bool, error) {
		health = Health(ex.c.topology(ctx))
		return len(health) == 0, nil
	}); err != nil {
		t.Fatalf("%v: %v", err, health)
	}
	l.assertPerfect(ctx, c)
}

// TestIntegrationFailoverToReplicaOfDeadMaster: a failover step whose replica can no longer sync
// because its master died (with another master, so no automatic failover either) ends with an
// error naming the silent master soon after the replica flags it, instead of waiting out the
// step's timeout.
func TestIntegrationFailoverToReplicaOfDeadMaster(t *testing.T) {
	l := newLab(t, 3, 2, 27500)
	c := l.config(1)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l.createCluster(ctx, c)
	top := l.observe(ctx, c)

	// A replica R of master A, on another host than A; kill A and a second master, B, not on R's
	// host: one master of three is left, no majority to promote R by itself.
	r, a := -1, ""
	for i, o := range top.Obs {
		if me := o.Myself(); o.Err == nil && !me.IsMaster() {
			r, a = i, me.MasterID
			break
		}
	}
	if r < 0 {
		t.Fatal("no replica in the new cluster")
	}
	aInst := top.Members[a].Inst
	b := -1
	for _, id := range top.Masters() {
		if i := top.Members[id].Inst; id != a && top.Instances[i].Host != top.Instances[r].Host {
			b = i
			break
		}
	}
	if b < 0 {
		t.Fatalf("no second master away from %s: %s", top.Instances[r].Name(), layoutSignature(top))
	}
	for _, i := range []int{aInst, b} {
		l.kill(top.Instances[i].Host, top.Instances[i].Port)
	}

	const stepTimeout = 60 * time.Second
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: l.hosts[0]}, Task: "redis_cluster", Hosts: l.ips, Reporter: &logReporter{t: t, start: time.Now()}})
	ex := l.openExecutor(ctx, c, target, stepTimeout)
	start := time.Now()
	err := ex.run(ctx, Step{Kind: StepFailover, Inst: r, NodeID: a, Summary: "failover to " + top.Instances[r].Name()})
	t.Logf("failover step: %v after %v", err, time.Since(start).Round(time.Millisecond))
	want := fmt.Sprintf("%s cannot sync with its master %s, which has not answered it", top.Instances[r].Name(), top.Instances[aInst].Name())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("failover to a replica of a dead master: err = %v, want %q", err, want)
	}
	if d := time.Since(start); d > stepTimeout/2 {
		t.Errorf("the step gave up after %v: it waited for its timeout instead of seeing the master gone", d)
	}
	if me, err := ex.myself(ctx, r); err != nil || me.IsMaster() {
		t.Errorf("%s after the step: %+v, %v; want it still a replica (nothing forced)", top.Instances[r].Name(), me, err)
	}
}
