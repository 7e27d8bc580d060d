package redis_cluster

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine"
)

// warnReporter logs like logReporter and keeps the warnings.
type warnReporter struct {
	*logReporter
	mu       sync.Mutex
	warnings []string
}

func (r *warnReporter) Warn(host, task, msg string) {
	r.logReporter.Warn(host, task, msg)
	r.mu.Lock()
	r.warnings = append(r.warnings, msg)
	r.mu.Unlock()
}

// warned reports whether a warning contains every one of parts.
func (r *warnReporter) warned(parts ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.warnings {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(w, p)
		}
		if all {
			return true
		}
	}
	return false
}

// TestIntegrationPromotionChecksTheShardsData sets up, on real servers, the two ways a replica can
// hold data that is not its shard's and checks that neither takes the shard's slots:
//
//   - a1, a replica of master A, also holds 20 000 keys of every slot (DEBUG POPULATE): a safe
//     CLUSTER FAILOVER to it keeps waiting, with a warning, and does not happen;
//   - b1, a replica of B, is moved to A with CLUSTER REPLICATE while A delays every full sync (a
//     diskless sync delay): b1 keeps B's keys, B's master_replid and, after a large write to B,
//     the highest offset of A's replicas.
//
// Then A dies. Ranked by offset alone b1 would be promoted, and ranked by offset within A's
// history a1 (declared first, same offset as a2); prepare must promote a2, name the two others
// in warnings, and every key written before must still be readable.
func TestIntegrationPromotionChecksTheShardsData(t *testing.T) {
	if testing.Short() {
		t.Skip("fault scenario")
	}
	l := newLab(t, 3, 3, 26900, "--enable-debug-command", "yes")
	c := l.config(2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, _, err := l.run(ctx, c, false); err != nil {
		t.Fatalf("create: %v", err)
	}
	l.keys("write", "before", 3000)
	s, err := c.open(ctx, engine.NewTarget(engine.TargetOptions{Hosts: l.ips}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.c.close()
	do := func(i int, args ...any) any {
		t.Helper()
		v, err := s.c.do(ctx, i, args...)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	info := func(i int) map[string]string {
		t.Helper()
		text, err := s.c.text(ctx, i, "INFO", "replication")
		if err != nil {
			t.Fatal(err)
		}
		return ParseInfo(text)
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s", what)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}

	top := l.observe(ctx, c)
	masters := top.Masters()
	idA, idB := masters[0], masters[1]
	a, b := top.Members[idA].Inst, top.Members[idB].Inst
	repsA := top.ReplicasOf(idA)
	a1, a2 := top.Members[repsA[0]].Inst, top.Members[repsA[1]].Inst
	b1 := top.Members[top.ReplicasOf(idB)[0]].Inst
	name := func(i int) string { return s.insts[i].Name() }
	t.Logf("A %s (replicas %s, %s), B %s (replica %s)", name(a), name(a1), name(a2), name(b), name(b1))
	// The cluster's own election would race with the module's; only the module promotes here.
	for _, i := range []int{a1, a2, b1} {
		do(i, "CONFIG", "SET", "cluster-replica-no-failover", "yes")
	}

	// a1 holds keys of every slot besides A's.
	do(a1, "DEBUG", "POPULATE", 20000, "stray")
	rep := &warnReporter{logReporter: &logReporter{t: t, start: time.Now()}}
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: l.hosts[0]}, Task: "redis_cluster", Hosts: l.ips, Reporter: rep})
	ex := &executor{t: target, c: s.c, top: top, stepTimeout: time.Second}
	err = ex.run(ctx, Step{Kind: StepFailover, Inst: a1, NodeID: idA, Slots: top.Members[idA].Slots, Summary: "failover to " + name(a1)})
	if err == nil || !strings.Contains(err.Error(), "holds another shard's keys") {
		t.Fatalf("safe failover to a replica holding other slots' keys: got %v, want it refused", err)
	}
	if !rep.warned("not failing over to "+name(a1), "sampled keys hash to slots outside") {
		t.Errorf("no warning about %s's keys: %q", name(a1), rep.warnings)
	}
	if r := info(a1)["role"]; r != "slave" {
		t.Fatalf("%s is a %s after a refused failover", name(a1), r)
	}

	// B's offset ends well above A's: one large write to a key of B's slots, seen by b1.
	key := ""
	for k := 0; key == ""; k++ {
		slot := do(b, "CLUSTER", "KEYSLOT", "big"+strconv.Itoa(k)).(int64)
		if inRanges(int(slot), top.Members[idB].Slots) {
			key = "big" + strconv.Itoa(k)
		}
	}
	do(b, "SET", key, strings.Repeat("x", 1<<20))
	offB, _ := strconv.ParseInt(info(b)["master_repl_offset"], 10, 64)
	waitFor(name(b1)+" to catch up with B", func() bool {
		o, _ := strconv.ParseInt(info(b1)["slave_repl_offset"], 10, 64)
		return o >= offB
	})
	// b1 moves to A, whose full syncs wait for a minute: b1 keeps B's data and history.
	do(a, "CONFIG", "SET", "repl-diskless-sync", "yes")
	do(a, "CONFIG", "SET", "repl-diskless-sync-delay", "60")
	do(b1, "CLUSTER", "REPLICATE", idA)
	waitFor(name(b1)+" to follow A", func() bool {
		return info(b1)["master_port"] == strconv.Itoa(s.insts[a].Port)
	})
	ib1, ia1, ia2 := info(b1), info(a1), info(a2)
	t.Logf("offsets: %s %s (replid %.8s), %s %s, %s %s (replid %.8s)", name(b1), ib1["slave_repl_offset"], ib1["master_replid"],
		name(a1), ia1["slave_repl_offset"], name(a2), ia2["slave_repl_offset"], ia2["master_replid"])
	if ib1["master_replid"] == ia2["master_replid"] {
		t.Fatalf("%s already synced with A", name(b1))
	}
	o1, _ := strconv.ParseInt(ib1["slave_repl_offset"], 10, 64)
	o2, _ := strconv.ParseInt(ia2["slave_repl_offset"], 10, 64)
	if o1 <= o2 {
		t.Fatalf("setup: %s's offset %d is not above %s's %d", name(b1), o1, name(a2), o2)
	}

	// A dies. Its replicas' histories alone (no key sample) already rule b1 out: B reports the
	// history b1 holds.
	l.kill(s.insts[a].Host, s.insts[a].Port)
	pr := l.observe(ctx, c).PromotionFor(idA)
	if len(pr.Skipped) != 1 || !strings.Contains(pr.Skipped[0], name(b1)+" holds the replication history of "+name(b)+"'s shard") {
		t.Errorf("without key samples: skipped %q, want %s for its history", pr.Skipped, name(b1))
	}
	prep := l.config(2)
	prep.Mode = ModePrepare
	rep = &warnReporter{logReporter: &logReporter{t: t, start: time.Now()}}
	changes, _, err := l.runWith(ctx, prep, false, rep)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	want := fmt.Sprintf("failover FORCE to %s ", name(a2))
	if len(changes) != 1 || !strings.HasPrefix(changes[0].Summary, want) {
		t.Fatalf("prepare changes %v, want one starting %q", changes, want)
	}
	if !rep.warned("not promoted: "+name(a1), "another shard's data") {
		t.Errorf("no warning saying why %s was not promoted: %q", name(a1), rep.warnings)
	}
	if !rep.warned("not promoted: " + name(b1)) {
		t.Errorf("no warning saying why %s was not promoted: %q", name(b1), rep.warnings)
	}
	if r := info(a2)["role"]; r != "master" {
		t.Fatalf("%s is a %s after its promotion", name(a2), r)
	}
	l.keys("check", "before", 3000)
}

// Interface guard: the recording reporter is a Reporter.
var _ engine.Reporter = (*warnReporter)(nil)

// TestIntegrationWrongPassword: a server that refuses the module's password is reported as an
// authentication failure with what to check, not as unreachable, and nothing changes.
func TestIntegrationWrongPassword(t *testing.T) {
	l := newLab(t, 1, 2, 27000, "--requirepass", "right-one")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tests := []struct {
		password string
		want     string
	}{
		{"wrong-one", "authentication failed on 2 of 2 instances: node1:27000,27001 (WRONGPASS): check the password given to redis_cluster (redis_password)"},
		{"", "authentication failed on 2 of 2 instances: node1:27000,27001 (NOAUTH): check the password given to redis_cluster (redis_password)"},
	}
	for _, tt := range tests {
		c := l.config(0)
		c.Password = tt.password
		changes, _, err := l.run(ctx, c, false)
		if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "unreachable") {
			t.Errorf("password %q: got %v, want an error saying %q", tt.password, err, tt.want)
		}
		if len(changes) != 0 {
			t.Errorf("password %q: changes %v", tt.password, changes)
		}
		if tt.password != "" && strings.Contains(err.Error(), tt.password) {
			t.Errorf("the password appears in the error: %v", err)
		}
	}
}
