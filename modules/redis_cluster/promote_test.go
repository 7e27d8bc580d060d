package redis_cluster

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// movedReplicaWorld: node3:6379 (C) is down. Before it died, converge had moved b2 (node3:6380)
// from B to C with CLUSTER REPLICATE and c2 (node2:6381) from C to B. c2 finished its full sync
// (it holds B's history and keys); b2 did not: it still holds B's keys, B's master_replid and a
// higher offset than C's real replica c1 (node1:6380).
func movedReplicaWorld() world {
	nodes := edit(healthy3x3(), func(n *fnode) {
		switch n.name {
		case "b2":
			n.master = "C"
		case "c2":
			n.master = "B"
		}
	})
	return world{
		nodes:    nodes,
		down:     []int{6},
		keys:     map[int]int64{0: 100, 1: 100, 2: 120, 3: 120, 4: 100, 5: 120, 7: 120, 8: 100},
		offset:   map[string]int64{"c1": 100, "b2": 9000},
		replid:   map[string]string{"b2": histID("B")},
		linkDown: map[string]bool{"b2": true, "c1": true},
	}
}

// unknownHistory makes B's shard report a history other than the one b2 carries (B was replaced
// since), so that no live node tells whose history b2 holds.
func unknownHistory(w *world) {
	for _, n := range []string{"B", "b1", "c2"} {
		w.replid[n] = histID("B'")
	}
}

func TestPromotionFor(t *testing.T) {
	insts := grid(3, 3)
	tests := []struct {
		name    string
		w       world
		edit    func(w *world)
		want    []string // candidates, best first
		skipped []string // substrings, one per skipped line, in order
		refusal string
	}{
		{
			name:    "moved replica, its old shard's master alive: that history is not this shard's",
			w:       movedReplicaWorld(),
			want:    []string{"node1:6380"},
			skipped: []string{"node3:6380 holds the replication history of node2:6379's shard"},
		},
		{
			name:    "moved replica, its history unknown and its keys not sampled: a tie, refused",
			w:       movedReplicaWorld(),
			edit:    unknownHistory,
			refusal: "the replicas of node3:6379 (old node 43000000) hold different replication histories, as many replicas each: node1:6380 (master_replid 68430000) and node3:6380 (master_replid 68420000)",
		},
		{
			name: "moved replica, its history unknown, its sampled keys are another shard's",
			w:    movedReplicaWorld(),
			edit: func(w *world) {
				unknownHistory(w)
				w.sample = map[string][]int{"b2": {6000, 7000}, "c1": {11000, 16383}}
			},
			want:    []string{"node1:6380"},
			skipped: []string{"node3:6380 holds a key of slot 6000, which node3:6379 (old node 43000000) does not own"},
		},
		{
			name: "moved replica, its old shard failed over since: master_replid2 tells",
			w:    movedReplicaWorld(),
			edit: func(w *world) {
				for _, n := range []string{"B", "b1", "c2"} {
					w.replid[n] = histID("B2")
				}
				w.replid2 = map[string]string{"B": histID("B")}
			},
			want:    []string{"node1:6380"},
			skipped: []string{"node3:6380 holds the replication history of node2:6379's shard"},
		},
		{
			name: "moved replica in a full sync",
			w:    movedReplicaWorld(),
			edit: func(w *world) {
				unknownHistory(w)
				w.syncing = map[string]bool{"b2": true}
			},
			want:    []string{"node1:6380"},
			skipped: []string{"node3:6380 is in a full sync"},
		},
		{
			name: "the history most replicas share wins, then the highest offset within it",
			w:    movedReplicaWorld(),
			edit: func(w *world) {
				unknownHistory(w)
				w.nodes = edit(w.nodes, func(n *fnode) {
					if n.name == "c2" {
						n.master = "C"
					}
				})
				delete(w.replid, "c2")
				w.offset["c2"] = 200
			},
			want:    []string{"node2:6381", "node1:6380"},
			skipped: []string{"node3:6380 holds another replication history (master_replid 68420000) than most replicas"},
		},
		{
			name: "a replica without keys is passed over while a sibling holds keys",
			w: world{nodes: healthy3x3(), down: []int{6, 7, 8},
				keys:   map[int]int64{1: 0, 5: 100},
				offset: map[string]int64{"c1": 900, "c2": 200}},
			want:    []string{"node2:6381"},
			skipped: []string{"node1:6380 holds no key while a sibling holds keys"},
		},
		{
			name: "no keys anywhere: the highest offset",
			w: world{nodes: healthy3x3(), down: []int{6, 7, 8},
				offset: map[string]int64{"c1": 100, "c2": 200}},
			want: []string{"node2:6381", "node1:6380"},
		},
		{
			name: "every replica syncing: refused",
			w: world{nodes: healthy3x3(), down: []int{6, 7, 8},
				syncing: map[string]bool{"c1": true, "c2": true}},
			skipped: []string{"node1:6380 is in a full sync", "node2:6381 is in a full sync"},
			refusal: "no replica of node3:6379 (old node 43000000) is fit to take its slots 10923-16383",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.w.insts = insts
			if tt.w.replid == nil {
				tt.w.replid = map[string]string{}
			}
			if tt.edit != nil {
				tt.edit(&tt.w)
			}
			top := Analyze(insts, tt.w.observations(t))
			p := top.PromotionFor(nid("C"))
			var got []string
			for _, id := range p.Candidates {
				got = append(got, top.Name(id))
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("candidates (-want +got):\n%s", d)
			}
			if !strings.Contains(p.Refusal, tt.refusal) || (tt.refusal == "") != (p.Refusal == "") {
				t.Errorf("refusal %q, want %q", p.Refusal, tt.refusal)
			}
			if len(p.Skipped) != len(tt.skipped) {
				t.Fatalf("skipped %q, want %d lines like %q", p.Skipped, len(tt.skipped), tt.skipped)
			}
			for k, s := range tt.skipped {
				if !strings.Contains(p.Skipped[k], s) {
					t.Errorf("skipped[%d] = %q, want it to contain %q", k, p.Skipped[k], s)
				}
			}
		})
	}
}

// TestPlanPromotesTheShardsReplica checks the plan itself in the moved-replica case: prepare
// promotes C's real replica, not the moved one with the higher offset, and says why; without
// anything to tell the histories apart it refuses and changes nothing.
func TestPlanPromotesTheShardsReplica(t *testing.T) {
	insts := grid(3, 3)
	w := movedReplicaWorld()
	w.insts = insts
	p, err := PlanSteps(Analyze(insts, w.observations(t)), Desired{Replicas: 2, Mode: ModePrepare})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Steps {
		got = append(got, s.Summary)
	}
	want := []string{"failover FORCE to node1:6380 (master node3:6379 (old node 43000000) is down, slots 10923-16383)"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("steps (-want +got):\n%s", d)
	}
	if len(p.Skipped) != 1 || !strings.Contains(p.Skipped[0], "node3:6380") {
		t.Errorf("skipped %q, want node3:6380 named", p.Skipped)
	}

	unknownHistory(&w)
	_, err = PlanSteps(Analyze(insts, w.observations(t)), Desired{Replicas: 2, Mode: ModePrepare})
	if !IsRefusal(err) || !strings.Contains(err.Error(), "offsets of different histories do not compare") {
		t.Fatalf("got %v, want a refusal", err)
	}
}

func TestKeySampleForeign(t *testing.T) {
	slots := []SlotRange{{0, 100}, {200, 300}}
	tests := []struct {
		sample []int
		want   int
		bad    bool
	}{
		{nil, 0, false},
		{[]int{0, 100, 200, 300}, 0, false},
		{[]int{5, 150, 250}, 150, true},
		{[]int{301}, 301, true},
	}
	for _, tt := range tests {
		got, bad := (&KeySample{Slots: tt.sample}).Foreign(slots)
		if got != tt.want || bad != tt.bad {
			t.Errorf("Foreign(%v) = %d, %v; want %d, %v", tt.sample, got, bad, tt.want, tt.bad)
		}
	}
}
