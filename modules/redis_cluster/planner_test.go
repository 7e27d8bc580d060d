package redis_cluster

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fnode is a node of a fixture cluster.
type fnode struct {
	name   string // short name, turned into the node ID
	inst   int    // declared instance it runs on
	master string // name of its master; "" for a master
	slots  string
	flags  string // flags the other nodes add, e.g. "fail" or "noaddr"
	epoch  int
	gone   bool // not running any more (its instance is down or runs a new node)
}

// world describes the observed state of a fixture: nodes, plus instances that are down or run a
// fresh node knowing only itself.
type world struct {
	insts   []Instance
	nodes   []fnode
	down    []int
	fresh   []int
	keys    map[int]int64
	offset  map[string]int64
	foreign []int
	extra   map[int]string // extra CLUSTER NODES lines seen by an instance
	// INFO replication per node name. By default a node's master_replid is its shard's
	// (histID of its master, or of itself for a master), its link is up and no sync runs.
	replid   map[string]string
	replid2  map[string]string
	syncing  map[string]bool
	linkDown map[string]bool
	// sample is the slots of the keys sampled from a node (nil: not sampled).
	sample map[string][]int
	// unknown names nodes that know the others but that only one another know: an island that
	// met a member which went down before it told the rest.
	unknown map[string]bool
	// alone maps an instance that knows only itself, a master, to the slots it holds (a creation
	// cut short after its ADDSLOTS, before it met the others).
	alone map[int]string
	// self is how a node describes itself when it differs from what the others say of it, e.g.
	// an old master back from a restart that has not yet learned its slots moved on.
	self map[string]fnode
}

// histID is the master_replid of the fixture shard whose first master is named name.
func histID(name string) string { return nid("h" + name) }

func nid(name string) string {
	h := fmt.Sprintf("%x", name)
	return h + strings.Repeat("0", 40-len(h))
}

// observations renders every instance's CLUSTER NODES answer as text and parses it back, as the
// module does with a live instance.
func (w world) observations(t testing.TB) []Observation {
	t.Helper()
	obs := make([]Observation, len(w.insts))
	has := func(list []int, i int) bool {
		for _, x := range list {
			if x == i {
				return true
			}
		}
		return false
	}
	for i := range w.insts {
		o := &obs[i]
		if has(w.down, i) {
			o.Err = errors.New("connection refused")
			continue
		}
		o.ClusterEnabled = true
		o.Keys = w.keys[i]
		o.ClusterInfo = map[string]string{"cluster_state": "ok"}
		var text strings.Builder
		line := func(n fnode, myself bool) {
			if own, ok := w.self[n.name]; ok && myself {
				n = own
			}
			addr := fmt.Sprintf("%s:%d@%d", w.insts[n.inst].IP, w.insts[n.inst].Port, w.insts[n.inst].Port+10000)
			flags := "master"
			master := "-"
			if n.master != "" {
				flags, master = "slave", nid(n.master)
			}
			if myself {
				flags = "myself," + flags
			} else if n.flags != "" {
				flags += "," + n.flags
				if strings.Contains(n.flags, "noaddr") {
					addr = ":0@0"
				}
			}
			fmt.Fprintf(&text, "%s %s %s %s 0 0 %d connected %s\n", nid(n.name), addr, flags, master, n.epoch, n.slots)
		}
		if slots, ok := w.alone[i]; ok {
			line(fnode{name: fmt.Sprintf("alone%d", i), inst: i, slots: slots, epoch: i + 1}, true)
			o.Role = "master"
		} else if has(w.fresh, i) {
			line(fnode{name: fmt.Sprintf("new%d", i), inst: i}, true)
			o.Role = "master"
		} else if has(w.foreign, i) {
			line(fnode{name: fmt.Sprintf("own%d", i), inst: i, slots: "0-16383"}, true)
			fmt.Fprintf(&text, "%s 127.0.0.99:7000@17000 slave %s 0 0 1 connected\n", nid("stranger"), nid(fmt.Sprintf("own%d", i)))
			o.Role = "master"
		} else {
			island := false // this instance's node is one of w.unknown
			for _, n := range w.nodes {
				island = island || n.inst == i && !n.gone && w.unknown[n.name]
			}
			for _, n := range w.nodes {
				me := n.inst == i && !n.gone
				if !me && w.unknown[n.name] && !island {
					continue
				}
				line(n, me)
				if me {
					o.Role = map[bool]string{true: "master", false: "slave"}[n.master == ""]
					o.LinkUp = n.master != "" && !w.linkDown[n.name]
					o.Offset = w.offset[n.name]
					o.ReplID, o.ReplID2 = histID(n.name), zeroReplID
					if n.master != "" {
						o.ReplID = histID(n.master)
						for _, m := range w.nodes {
							if m.name == n.master {
								o.MasterHost, o.MasterPort = w.insts[m.inst].IP, w.insts[m.inst].Port
							}
						}
					}
					if r, ok := w.replid[n.name]; ok {
						o.ReplID = r
					}
					if r, ok := w.replid2[n.name]; ok {
						o.ReplID2 = r
					}
					o.SyncInProgress = w.syncing[n.name]
					if sl, ok := w.sample[n.name]; ok {
						o.Sample = &KeySample{Slots: sl}
					}
				}
			}
			text.WriteString(w.extra[i])
		}
		nodes, err := ParseClusterNodes(text.String())
		if err != nil {
			t.Fatalf("fixture: %v\n%s", err, text.String())
		}
		o.Nodes = nodes
	}
	return obs
}

// healthy3x3 is the seed's layout: a master on every host, its replicas on the two others.
func healthy3x3() []fnode {
	return []fnode{
		{name: "A", inst: 0, slots: "0-5460", epoch: 1},
		{name: "B", inst: 3, slots: "5461-10922", epoch: 2},
		{name: "C", inst: 6, slots: "10923-16383", epoch: 3},
		{name: "a1", inst: 4, master: "A", epoch: 1}, {name: "a2", inst: 8, master: "A", epoch: 1},
		{name: "b1", inst: 2, master: "B", epoch: 2}, {name: "b2", inst: 7, master: "B", epoch: 2},
		{name: "c1", inst: 1, master: "C", epoch: 3}, {name: "c2", inst: 5, master: "C", epoch: 3},
	}
}

// edit returns nodes with the named nodes changed by fn.
func edit(nodes []fnode, fn func(n *fnode)) []fnode {
	out := append([]fnode(nil), nodes...)
	for i := range out {
		fn(&out[i])
	}
	return out
}

// afterNode3Failover: node3 died, c1 (node1:6380) was promoted; node3's nodes are failed.
func afterNode3Failover() []fnode {
	return edit(healthy3x3(), func(n *fnode) {
		switch n.name {
		case "C":
			n.slots, n.master, n.flags, n.gone = "", "c1", "fail", true
		case "c1":
			n.master, n.slots, n.epoch = "", "10923-16383", 4
		case "c2":
			n.master = "c1"
		case "a2", "b2":
			n.flags, n.gone = "fail", true
		}
	})
}

// oldMasterBack: node3 came back with its disk after the failover of afterNode3Failover; C
// (node3:6379) is, for the others, a master without slots.
func oldMasterBack() []fnode {
	return edit(afterNode3Failover(), func(n *fnode) {
		n.flags, n.gone = "", false
		if n.name == "C" {
			n.master = ""
		}
	})
}

// cutShort: the creation of healthy3x3 cut short by the loss of node3: node1's and node2's
// instances met and node1:6379 and node2:6379 got their slots; node3's instances are not members.
func cutShort() []fnode {
	return []fnode{
		{name: "A", inst: 0, slots: "0-5460", epoch: 1},
		{name: "B", inst: 3, slots: "5461-10922", epoch: 4},
		{name: "x1", inst: 1, epoch: 2}, {name: "x2", inst: 2, epoch: 3},
		{name: "x4", inst: 4, epoch: 5}, {name: "x5", inst: 5, epoch: 6},
	}
}

// drainedNode2: B (node2:6379) handed its slots to b1 (node1:6381) and follows it.
func drainedNode2() []fnode {
	return edit(healthy3x3(), func(n *fnode) {
		switch n.name {
		case "B":
			n.slots, n.master, n.epoch = "", "b1", 4
		case "b1":
			n.master, n.slots, n.epoch = "", "5461-10922", 4
		case "b2":
			n.master, n.epoch = "b1", 4
		}
	})
}

func TestPlanSteps(t *testing.T) {
	insts := grid(3, 3)
	tests := []struct {
		name    string
		w       world
		d       Desired
		want    []string // step summaries, or
		refusal string   // a refusal containing this
		wait    bool     // the refusal is one Redis resolves by itself (RefusalError.Transient)
		blocked int
	}{
		{
			name: "healthy cluster: nothing to do",
			w:    world{nodes: healthy3x3()},
			d:    Desired{Replicas: 2},
		},
		{
			name: "healthy cluster: prepare is a no-op",
			w:    world{nodes: healthy3x3()},
			d:    Desired{Replicas: 2, Mode: ModePrepare},
		},
		{
			name: "no cluster: prepare is a no-op",
			w:    world{fresh: []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
			d:    Desired{Replicas: 2, Mode: ModePrepare},
		},
		{
			name: "create",
			w:    world{fresh: []int{0, 1, 2, 3, 4, 5, 6, 7, 8}},
			d:    Desired{Replicas: 2},
			want: []string{
				"add slots 0-5460 to node1:6379",
				"add slots 5461-10922 to node2:6379",
				"add slots 10923-16383 to node3:6379",
				"set config epochs 1-9 on 9 instances",
				"meet 9 instances into one cluster",
				"node2:6380 replicates node1:6379",
				"node3:6381 replicates node1:6379",
				"node1:6381 replicates node2:6379",
				"node3:6380 replicates node2:6379",
				"node1:6380 replicates node3:6379",
				"node2:6381 replicates node3:6379",
			},
		},
		{
			name:    "create refused: an instance holds keys",
			w:       world{fresh: []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, keys: map[int]int64{4: 7}},
			d:       Desired{Replicas: 2},
			refusal: "node2:6380 should be empty but holds 7 keys",
		},
		{
			name:    "create refused: an instance is down",
			w:       world{fresh: []int{0, 1, 2, 3, 4, 5, 6, 7}, down: []int{8}},
			d:       Desired{Replicas: 2},
			refusal: "1 of 9 instances is unreachable: node3:6381 (connection refused)",
		},
		{
			name: "drain node2: its master moves to a synced replica on another host",
			w:    world{nodes: healthy3x3()},
			d:    Desired{Replicas: 2, Drain: map[string]bool{"node2": true}},
			want: []string{"failover to node1:6381 (takes slots 5461-10922 from node2:6379)"},
		},
		{
			name: "node2 drained: nothing to do",
			w:    world{nodes: drainedNode2()},
			d:    Desired{Replicas: 2, Drain: map[string]bool{"node2": true}},
		},
		{
			name: "node2 drained, drain lifted: the master goes back",
			w:    world{nodes: drainedNode2()},
			d:    Desired{Replicas: 2},
			want: []string{"failover to node2:6379 (takes slots 5461-10922 from node1:6381)"},
		},
		{
			name:    "node3 down after failover: wait for it",
			w:       world{nodes: afterNode3Failover(), down: []int{6, 7, 8}},
			d:       Desired{Replicas: 2},
			blocked: 3,
		},
		{
			name: "creation cut short, node3 down: prepare leaves the slots without owner to converge",
			w:    world{nodes: cutShort(), down: []int{6, 7, 8}},
			d:    Desired{Replicas: 2, Mode: ModePrepare},
		},
		{
			name: "creation cut short, every instance up: prepare leaves the slots without owner to converge",
			w:    world{nodes: cutShort(), fresh: []int{6, 7, 8}},
			d:    Desired{Replicas: 2, Mode: ModePrepare},
		},
		{
			name:    "creation cut short, node3 down: converge refuses while nobody holds the slots",
			w:       world{nodes: cutShort(), down: []int{6, 7, 8}},
			d:       Desired{Replicas: 2},
			refusal: "slots 10923-16383 have no owner",
		},
		{
			name: "creation cut short after node3:6379 got its slots: node3's instances meet the cluster",
			w:    world{nodes: cutShort(), alone: map[int]string{6: "10923-16383"}, fresh: []int{7, 8}},
			d:    Desired{Replicas: 2},
			want: []string{
				"node3:6379 meets the cluster through node1:6379 with its slots 10923-16383",
				"node3:6380 meets the cluster through node1:6379",
				"node3:6381 meets the cluster through node1:6379",
			},
		},
		{
			name: "creation cut short before node3:6379 got its slots, no keys: a node3 instance gets them",
			w:    world{nodes: cutShort(), fresh: []int{6, 7, 8}},
			d:    Desired{Replicas: 2},
			want: []string{
				"add slots 10923-16383 to node3:6379 (no instance holds them and the cluster holds no keys: its creation was cut short)",
				"node3:6379 meets the cluster through node1:6379",
				"node3:6380 meets the cluster through node1:6379",
				"node3:6381 meets the cluster through node1:6379",
			},
		},
		{
			name:    "slots without owner in a cluster with keys: refused",
			w:       world{nodes: cutShort(), fresh: []int{6, 7, 8}, keys: map[int]int64{0: 5}},
			d:       Desired{Replicas: 2},
			refusal: "slots 10923-16383 have no owner",
		},
		{
			name:    "an instance alone with slots a member owns: refused",
			w:       world{nodes: cutShort(), alone: map[int]string{6: "0-100"}, fresh: []int{7, 8}},
			d:       Desired{Replicas: 2},
			refusal: "node3:6379 holds slots 0-100 but is not part of the cluster",
		},
		{
			name:    "two instances alone with the same slots: refused",
			w:       world{nodes: cutShort(), alone: map[int]string{6: "10923-16383", 7: "10923-16383"}, fresh: []int{8}},
			d:       Desired{Replicas: 2},
			refusal: "node3:6380 holds slots 10923-16383 but is not part of the cluster",
		},
		{
			name: "an island the cluster does not know meets it again, before anything else",
			w: world{nodes: edit(healthy3x3(), func(n *fnode) {
				if n.name == "c1" {
					n.master = "" // met the cluster, not yet told to replicate
				}
			}), unknown: map[string]bool{"c1": true, "a1": true}},
			d: Desired{Replicas: 2},
			want: []string{
				"node1:6380 meets the cluster through node1:6379 (it knows the cluster, the cluster does not know it)",
				"node2:6380 meets the cluster through node1:6379 (it knows the cluster, the cluster does not know it)",
			},
		},
		{
			name: "node3 down before failover: prepare promotes the most up-to-date replica",
			w: world{nodes: healthy3x3(), down: []int{6, 7, 8},
				offset: map[string]int64{"c1": 100, "c2": 250}},
			d:    Desired{Replicas: 2, Mode: ModePrepare},
			want: []string{"failover FORCE to node2:6381 (master node3:6379 (old node 43000000) is down, slots 10923-16383)"},
		},
		{
			name: "node3 down before failover: converge promotes, then waits",
			w: world{nodes: healthy3x3(), down: []int{6, 7, 8},
				offset: map[string]int64{"c1": 300, "c2": 250}},
			d:       Desired{Replicas: 2},
			want:    []string{"failover FORCE to node1:6380 (master node3:6379 (old node 43000000) is down, slots 10923-16383)"},
			blocked: 3,
		},
		{
			name: "node3 back wiped after failover",
			w:    world{nodes: afterNode3Failover(), fresh: []int{6, 7, 8}},
			d:    Desired{Replicas: 2},
			want: []string{
				"forget node3:6379 (old node 43000000) on 6 instances",
				"forget node3:6380 (old node 62320000) on 6 instances",
				"forget node3:6381 (old node 61320000) on 6 instances",
				"node3:6379 meets the cluster (6 members) and the new instances after it",
				"node3:6380 meets the cluster (6 members) and the new instances after it",
				"node3:6381 meets the cluster (6 members) and the new instances after it",
				"node3:6380 replicates node1:6379",
				"node3:6381 replicates node2:6379",
				"node3:6379 replicates node1:6380",
				"failover to node3:6379 (takes slots 10923-16383 from node1:6380)",
			},
		},
		{
			name: "node3 back wiped before failover: the noaddr master is replaced first",
			w: world{nodes: edit(healthy3x3(), func(n *fnode) {
				if n.inst >= 6 {
					n.flags, n.gone = "noaddr", true
				}
			}), fresh: []int{6, 7, 8}, offset: map[string]int64{"c1": 10, "c2": 20}},
			d: Desired{Replicas: 2},
			want: []string{
				"failover FORCE to node2:6381 (master 43000000 (noaddr) is down, slots 10923-16383)",
				"forget 43000000 (noaddr) on 6 instances",
				"forget 61320000 (noaddr) on 6 instances",
				"forget 62320000 (noaddr) on 6 instances",
				"node3:6379 meets the cluster (6 members) and the new instances after it",
				"node3:6380 meets the cluster (6 members) and the new instances after it",
				"node3:6381 meets the cluster (6 members) and the new instances after it",
				"node3:6380 replicates node1:6379",
				"node3:6381 replicates node2:6379",
				"node3:6379 replicates node2:6381",
				"failover to node3:6379 (takes slots 10923-16383 from node2:6381)",
			},
		},
		{
			name: "node3 back intact: its old master moves back",
			w: world{nodes: edit(afterNode3Failover(), func(n *fnode) {
				n.flags, n.gone = "", false
			})},
			d:    Desired{Replicas: 2},
			want: []string{"failover to node3:6379 (takes slots 10923-16383 from node1:6380)"},
		},
		{
			name: "refused: slots without a live copy",
			w: world{nodes: edit(healthy3x3(), func(n *fnode) {
				if n.name == "A" || n.name == "a1" || n.name == "a2" {
					n.flags, n.gone = "fail", true
				}
			}), down: []int{0, 4, 8}},
			d:       Desired{Replicas: 2},
			refusal: "slots have no live copy: 0-5460 (owned by node1:6379 (old node 41000000))",
		},
		{
			name:    "refused: no majority of masters",
			w:       world{nodes: healthy3x3(), down: []int{0, 3}},
			d:       Desired{Replicas: 2, Mode: ModePrepare},
			refusal: "only 1 of 3 masters are alive",
		},
		{
			name: "takeover allowed",
			w:    world{nodes: healthy3x3(), down: []int{0, 3}},
			d:    Desired{Replicas: 2, Mode: ModePrepare, AllowTakeover: true},
			want: []string{
				"failover TAKEOVER to node2:6380 (master node1:6379 (old node 41000000) is down, slots 0-5460)",
				"failover TAKEOVER to node1:6381 (master node2:6379 (old node 42000000) is down, slots 5461-10922)",
			},
		},
		{
			// node3 came back with its disk after c1 took its slots, and node3:6379 has not yet
			// heard of it: Redis makes it a replica of c1 at the next message it gets (UPDATE).
			name: "node3 back intact, its old master not yet told of the failover: wait",
			w: world{nodes: oldMasterBack(), keys: map[int]int64{6: 3511},
				self: map[string]fnode{"C": {name: "C", inst: 6, slots: "10923-16383", epoch: 3}}},
			d:       Desired{Replicas: 2},
			refusal: "node3:6379 still claims slots 10923-16383, which node1:6380 took over with a newer epoch (4 > 3)",
			wait:    true,
		},
		{
			name:    "refused: a master without slots holds keys",
			w:       world{nodes: oldMasterBack(), keys: map[int]int64{6: 3511}},
			d:       Desired{Replicas: 2},
			refusal: "node3:6379 is a master without slots but holds 3511 keys",
		},
		{
			name: "refused: a stale claim beside a lasting reason",
			w: world{nodes: edit(oldMasterBack(), func(n *fnode) {
				if n.name == "A" {
					n.slots += " [5461-<-" + nid("B") + "]"
				}
			}), keys: map[int]int64{6: 3511},
				self: map[string]fnode{"C": {name: "C", inst: 6, slots: "10923-16383", epoch: 3}}},
			d:       Desired{Replicas: 2},
			refusal: "node3:6379 still claims slots 10923-16383",
		},
		{
			name:    "refused: a new instance holds keys",
			w:       world{nodes: afterNode3Failover(), fresh: []int{6, 7, 8}, keys: map[int]int64{7: 3}},
			d:       Desired{Replicas: 2},
			refusal: "node3:6380 should be empty but holds 3 keys",
		},
		{
			name:    "refused: an instance belongs to another cluster",
			w:       world{nodes: afterNode3Failover(), fresh: []int{6, 7}, foreign: []int{8}},
			d:       Desired{Replicas: 2},
			refusal: "node3:6381 belongs to another cluster",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.w.insts = insts
			top := Analyze(insts, tt.w.observations(t))
			p, err := PlanSteps(top, tt.d)
			if tt.refusal != "" {
				if err == nil || !IsRefusal(err) || !strings.Contains(err.Error(), tt.refusal) {
					t.Fatalf("got %v, want a refusal with %q", err, tt.refusal)
				}
				if got := IsTransient(err); got != tt.wait {
					t.Errorf("transient %v, want %v: %v", got, tt.wait, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range p.Steps {
				got = append(got, s.Summary)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("steps (-want +got):\n%s", d)
			}
			if len(p.Unreachable)+len(p.Blocked) != tt.blocked {
				t.Errorf("blocked %v, want %d", p.Blocked, tt.blocked)
			}
			if len(tt.want) == 0 && tt.blocked == 0 && tt.d.Mode != ModePrepare && top.Exists {
				if h := Health(top); len(h) > 0 {
					t.Errorf("health: %v", h)
				}
			}
		})
	}
}

func TestPlanRefusesMigratingSlots(t *testing.T) {
	insts := grid(3, 3)
	w := world{insts: insts, nodes: edit(healthy3x3(), func(n *fnode) {
		if n.name == "A" {
			n.slots += " [5461-<-" + nid("B") + "]"
		}
	})}
	_, err := PlanSteps(Analyze(insts, w.observations(t)), Desired{Replicas: 2})
	if err == nil || !strings.Contains(err.Error(), "open slots") {
		t.Fatalf("got %v, want a refusal for open slots", err)
	}
}

func TestPlanRefusesClusterDisabled(t *testing.T) {
	insts := grid(3, 3)
	obs := world{insts: insts, fresh: []int{0, 1, 2, 3, 4, 5, 6, 7, 8}}.observations(t)
	obs[2] = Observation{Role: "master"}
	_, err := PlanSteps(Analyze(insts, obs), Desired{Replicas: 2})
	if err == nil || !strings.Contains(err.Error(), "node1:6381 has cluster support disabled") {
		t.Fatalf("got %v", err)
	}
}

func TestHealthReportsDisagreement(t *testing.T) {
	insts := grid(3, 3)
	w := world{insts: insts, nodes: healthy3x3()}
	obs := w.observations(t)
	// node2:6379 still sees a1 as a master, and a2 has its link down.
	for k := range obs[3].Nodes {
		if obs[3].Nodes[k].ID == nid("a1") {
			obs[3].Nodes[k].Flags = Flags(FlagMaster)
			obs[3].Nodes[k].MasterID = ""
		}
	}
	obs[8].LinkUp = false
	// A node in handshake is not a member, but the cluster has not settled.
	obs[0].Nodes = append(obs[0].Nodes, Node{ID: nid("Z"), IP: "127.0.0.99", Port: 1, Flags: Flags(FlagHandshake)})
	top := Analyze(insts, obs)
	if len(top.IDs) != 9 {
		t.Errorf("members %d, want 9", len(top.IDs))
	}
	h := Health(top)
	want := []string{
		"node1:6379 is still in handshake with 127.0.0.99:1",
		"node2:6379 does not yet agree on the role of node2:6380",
		"node3:6381 is not synced with its master (master_link_status down)",
	}
	if d := cmp.Diff(want, h); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
