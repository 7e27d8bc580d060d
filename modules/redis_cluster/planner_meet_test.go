package redis_cluster

import (
	"fmt"
	"testing"
)

// TestPlanCreateMeets: the create plan's meet step has every pair of masters meet once and every
// replica meet its master, and reaches every instance (one cluster forms); up to meshLimit
// instances every pair meets once, above it no other pair does.
func TestPlanCreateMeets(t *testing.T) {
	tests := []struct {
		hosts, perHost, replicas int
	}{
		{3, 3, 2},
		{30, 3, 2},
		{4, 1, 1},
		{3, 1, 2},  // one master
		{5, 2, 2},  // 3 masters, one instance left over
		{10, 3, 0}, // masters only
		{8, 3, 2},  // meshLimit instances
		{5, 5, 2},  // one more
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%dx%d r=%d", tt.hosts, tt.perHost, tt.replicas), func(t *testing.T) {
			insts := grid(tt.hosts, tt.perHost)
			n := len(insts)
			w := world{insts: insts}
			for i := range insts {
				w.fresh = append(w.fresh, i)
			}
			p, err := PlanSteps(Analyze(insts, w.observations(t)), Desired{Replicas: tt.replicas})
			if err != nil {
				t.Fatal(err)
			}
			var meet *Step
			for k := range p.Steps {
				if p.Steps[k].Kind == StepMeet {
					if meet != nil {
						t.Fatal("two meet steps")
					}
					meet = &p.Steps[k]
				}
			}
			if meet == nil || len(meet.Insts) != n || len(meet.Peers) != n {
				t.Fatalf("meet step %+v: want one with %d instances and their peers", meet, n)
			}
			met := map[[2]int]int{} // unordered pair -> times met
			adj := map[int][]int{}
			for k, i := range meet.Insts {
				for _, j := range meet.Peers[k] {
					if i == j {
						t.Errorf("%s meets itself", insts[i].Name())
					}
					met[[2]int{min(i, j), max(i, j)}]++
					adj[i] = append(adj[i], j)
					adj[j] = append(adj[j], i)
				}
			}
			for pair, times := range met {
				if times > 1 {
					t.Errorf("%s and %s meet %d times", insts[pair[0]].Name(), insts[pair[1]].Name(), times)
				}
			}
			masters := map[int]bool{}
			for _, sh := range p.Layout.Shards {
				masters[sh.Master] = true
				for _, r := range sh.Replicas {
					if met[[2]int{min(r, sh.Master), max(r, sh.Master)}] != 1 {
						t.Errorf("replica %s does not meet its master %s", insts[r].Name(), insts[sh.Master].Name())
					}
				}
			}
			for a := range masters {
				for b := range masters {
					if a < b && met[[2]int{a, b}] != 1 {
						t.Errorf("masters %s and %s do not meet", insts[a].Name(), insts[b].Name())
					}
				}
			}
			seen := map[int]bool{meet.Insts[0]: true}
			queue := []int{meet.Insts[0]}
			for len(queue) > 0 {
				i := queue[0]
				queue = queue[1:]
				for _, j := range adj[i] {
					if !seen[j] {
						seen[j] = true
						queue = append(queue, j)
					}
				}
			}
			if len(seen) != n {
				t.Errorf("the meets reach %d of %d instances: more than one cluster would form", len(seen), n)
			}
			m := len(masters)
			if n <= meshLimit {
				if want := n * (n - 1) / 2; len(met) != want {
					t.Errorf("%d pairs meet, want %d (every pair)", len(met), want)
				}
			} else if want := m*(m-1)/2 + n - m; len(met) != want {
				t.Errorf("%d pairs meet, want %d (masters pairwise, every other instance once)", len(met), want)
			}
		})
	}
}

// TestPlanFreshMeets: fresh instances joining a cluster meet every live member and the fresh
// instances after them up to meshLimit instances, and beyond it the master they are to follow,
// so that their CLUSTER REPLICATE does not wait for gossip to tell them of that master.
func TestPlanFreshMeets(t *testing.T) {
	for _, hosts := range []int{3, 10} {
		t.Run(fmt.Sprintf("%dx3", hosts), func(t *testing.T) {
			insts := grid(hosts, 3)
			ranges := SplitSlots(hosts)
			// host h: instance a is master Mh, b replicates the master of the next host, c is fresh
			var nodes []fnode
			var fresh []int
			for h := 0; h < hosts; h++ {
				nodes = append(nodes, fnode{name: fmt.Sprintf("M%d", h), inst: 3 * h, slots: FormatRanges([]SlotRange{ranges[h]}), epoch: h + 1})
			}
			for h := 0; h < hosts; h++ {
				m := (h + 1) % hosts
				nodes = append(nodes, fnode{name: fmt.Sprintf("R%d", h), inst: 3*h + 1, master: fmt.Sprintf("M%d", m), epoch: m + 1})
				fresh = append(fresh, 3*h+2)
			}
			w := world{insts: insts, nodes: nodes, fresh: fresh}
			p, err := PlanSteps(Analyze(insts, w.observations(t)), Desired{Replicas: 2})
			if err != nil {
				t.Fatal(err)
			}
			meets := map[int][]int{}    // fresh instance -> whom it meets
			follows := map[int]string{} // fresh instance -> the master it replicates
			for _, s := range p.Steps {
				switch s.Kind {
				case StepMeet:
					for k, i := range s.Insts {
						meets[i] = meetPeers(s, k)
					}
				case StepReplicate:
					follows[s.Inst] = s.NodeID
				}
			}
			for _, i := range fresh {
				peers := meets[i]
				if len(peers) == 0 {
					t.Fatalf("%s meets nobody: %v", insts[i].Name(), p.Steps)
				}
				id, ok := follows[i]
				if !ok {
					t.Fatalf("%s replicates nobody", insts[i].Name())
				}
				var master int
				for _, n := range nodes {
					if nid(n.name) == id {
						master = n.inst
					}
				}
				if len(insts) <= meshLimit {
					if want := 2*hosts + countAbove(fresh, i); len(peers) != want {
						t.Errorf("%s meets %v, want every member and the fresh instances after it (%d)", insts[i].Name(), peers, want)
					}
				} else if len(peers) != 1 || peers[0] != master {
					t.Errorf("%s meets %v, want its master %s", insts[i].Name(), peers, insts[master].Name())
				}
			}
		})
	}
}

func countAbove(list []int, i int) int {
	n := 0
	for _, x := range list {
		if x > i {
			n++
		}
	}
	return n
}
