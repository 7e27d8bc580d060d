package redis_cluster

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func grid(hosts, perHost int) []Instance {
	var out []Instance
	for h := 1; h <= hosts; h++ {
		for p := 0; p < perHost; p++ {
			out = append(out, Instance{Host: fmt.Sprintf("node%d", h), Port: 6379 + p, IP: fmt.Sprintf("127.0.0.%d", 10+h)})
		}
	}
	return out
}

func createInput(insts []Instance, replicas int) PlaceInput {
	m := len(insts) / (replicas + 1)
	in := PlaceInput{Instances: insts, Replicas: replicas}
	for i := 0; i < m; i++ {
		in.Shards = append(in.Shards, ShardSpec{Master: -1})
	}
	for i := range insts {
		in.Free = append(in.Free, i)
	}
	return in
}

// describe renders a layout as "master: replica replica" lines.
func describe(insts []Instance, l Layout) string {
	var b strings.Builder
	for _, sh := range l.Shards {
		fmt.Fprintf(&b, "%s:", insts[sh.Master].Name())
		for _, r := range sh.Replicas {
			fmt.Fprintf(&b, " %s", insts[r].Name())
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestPlaceSeedLayout(t *testing.T) {
	insts := grid(3, 3)
	got := describe(insts, Place(createInput(insts, 2)))
	want := "node1:6379: node2:6380 node3:6381\n" +
		"node2:6379: node1:6381 node3:6380\n" +
		"node3:6379: node1:6380 node2:6381\n"
	if got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
}

// TestPlaceProperties checks, for many grids of N hosts x M instances x R replicas: every instance
// gets exactly one role, masters are spread (each host within one of its share), no master shares
// a host with its replica whenever hosts > R, sibling replicas sit on distinct hosts, no warning
// is given when the layout is perfect, and the result is deterministic.
func TestPlaceProperties(t *testing.T) {
	for hosts := 1; hosts <= 7; hosts++ {
		for per := 1; per <= 5; per++ {
			for r := 0; r <= 3; r++ {
				insts := grid(hosts, per)
				m := len(insts) / (r + 1)
				if m < 1 {
					continue
				}
				name := fmt.Sprintf("%dx%d_r%d", hosts, per, r)
				t.Run(name, func(t *testing.T) {
					in := createInput(insts, r)
					l := Place(in)
					if again := Place(createInput(insts, r)); !cmp.Equal(l, again) {
						t.Fatalf("not deterministic:\n%s\n%s", describe(insts, l), describe(insts, again))
					}
					seen := map[int]int{}
					perHost := map[string]int{}
					for _, sh := range l.Shards {
						seen[sh.Master]++
						perHost[insts[sh.Master].Host]++
						if len(sh.Replicas) < r {
							t.Errorf("master %s has %d replicas", insts[sh.Master].Name(), len(sh.Replicas))
						}
						for _, rep := range sh.Replicas {
							seen[rep]++
						}
					}
					for i := range insts {
						if seen[i] != 1 {
							t.Fatalf("instance %s has %d roles:\n%s", insts[i].Name(), seen[i], describe(insts, l))
						}
					}
					lo, hi := m/hosts, (m+hosts-1)/hosts
					for h := 1; h <= hosts; h++ {
						c := perHost[fmt.Sprintf("node%d", h)]
						if c < lo || c > hi {
							t.Errorf("node%d holds %d masters, want %d-%d:\n%s", h, c, lo, hi, describe(insts, l))
						}
					}
					if hosts > r {
						for _, sh := range l.Shards {
							used := map[string]bool{insts[sh.Master].Host: true}
							for k, rep := range sh.Replicas {
								h := insts[rep].Host
								if h == insts[sh.Master].Host {
									t.Errorf("replica %s beside its master:\n%s", insts[rep].Name(), describe(insts, l))
								}
								if k < r && used[h] {
									t.Errorf("sibling replicas share %s:\n%s", h, describe(insts, l))
								}
								used[h] = true
							}
						}
						if len(l.Warnings) > 0 && len(insts)%(r+1) == 0 {
							t.Errorf("warnings for a perfect layout: %v", l.Warnings)
						}
					}
				})
			}
		}
	}
}

func TestPlaceWarnsWithoutAntiAffinity(t *testing.T) {
	insts := grid(2, 3) // 2 hosts cannot hold a master and 2 replicas on distinct hosts
	l := Place(createInput(insts, 2))
	if len(l.Warnings) == 0 {
		t.Fatalf("no warning for 2 hosts with 2 replicas:\n%s", describe(insts, l))
	}
	t.Logf("warnings: %v", l.Warnings)
}

func TestPlaceZones(t *testing.T) {
	// Four hosts in two zones, one replica: every replica must be in the other zone.
	insts := grid(4, 2)
	zone := map[string]string{"node1": "a", "node2": "a", "node3": "b", "node4": "b"}
	for i := range insts {
		insts[i].Zone = zone[insts[i].Host]
	}
	l := Place(createInput(insts, 1))
	for _, sh := range l.Shards {
		for _, r := range sh.Replicas {
			if insts[r].Zone == insts[sh.Master].Zone {
				t.Errorf("replica %s in the zone of its master %s:\n%s", insts[r].Name(), insts[sh.Master].Name(), describe(insts, l))
			}
		}
	}
	if len(l.Warnings) > 0 {
		t.Errorf("warnings: %v", l.Warnings)
	}
}

func TestPlaceKeepsConvergedLayout(t *testing.T) {
	insts := grid(3, 3)
	// A perfect layout that is not the one Place would create from scratch.
	in := PlaceInput{Instances: insts, Replicas: 2, Shards: []ShardSpec{
		{Master: 1, Replicas: []int{3, 8}},
		{Master: 5, Replicas: []int{0, 7}},
		{Master: 6, Replicas: []int{2, 4}},
	}}
	l := Place(in)
	for s, sh := range l.Shards {
		if sh.Master != in.Shards[s].Master || !cmp.Equal(sh.Replicas, in.Shards[s].Replicas) {
			t.Fatalf("moved a converged layout:\n%s", describe(insts, l))
		}
	}
}

func TestPlaceMovesMasterBack(t *testing.T) {
	insts := grid(3, 3)
	// node3 came back with its disk intact: its old master (8) rejoined as a replica of 2, which
	// now makes node1 hold two masters.
	in := PlaceInput{Instances: insts, Replicas: 2, Shards: []ShardSpec{
		{Master: 0, Replicas: []int{4, 7}},
		{Master: 3, Replicas: []int{1, 6}},
		{Master: 2, Replicas: []int{8, 5}},
	}}
	got := describe(insts, Place(in))
	want := "node1:6379: node2:6380 node3:6380\n" +
		"node2:6379: node1:6380 node3:6379\n" +
		"node3:6381: node1:6381 node2:6381\n"
	if got != want {
		t.Errorf("got\n%swant\n%s", got, want)
	}
}

// TestPlaceMovesMasterToAnotherShardsReplica: the host that lost its master holds no replica of
// the shard that took it over (with many hosts, a shard's replicas sit on few of them). One of its
// instances leaves the shard it replicates, becomes the master, and the shard it left gets a
// replica back: every host one master, every master its replicas on other hosts.
func TestPlaceMovesMasterToAnotherShardsReplica(t *testing.T) {
	insts := grid(4, 2) // node1 0 1, node2 2 3, node3 4 5, node4 6 7
	in := PlaceInput{Instances: insts, Replicas: 1, Shards: []ShardSpec{
		{Master: 0, Replicas: []int{2}}, // node1, replica on node2
		{Master: 1, Replicas: []int{5}}, // node1 too (took over from node4), replica on node3
		{Master: 4, Replicas: []int{6}}, // node3, replica on node4
		{Master: 3, Replicas: []int{7}}, // node2, replica on node4
	}}
	l := Place(in)
	if len(l.Warnings) != 0 {
		t.Errorf("warnings: %q\n%s", l.Warnings, describe(insts, l))
	}
	masters := map[string]int{}
	seen := map[int]int{}
	for _, sh := range l.Shards {
		masters[insts[sh.Master].Host]++
		seen[sh.Master]++
		for _, r := range sh.Replicas {
			seen[r]++
			if insts[r].Host == insts[sh.Master].Host {
				t.Errorf("replica %s on its master's host", insts[r].Name())
			}
		}
		if len(sh.Replicas) != 1 {
			t.Errorf("master %s has %d replicas", insts[sh.Master].Name(), len(sh.Replicas))
		}
	}
	for h := 1; h <= 4; h++ {
		if n := masters[fmt.Sprintf("node%d", h)]; n != 1 {
			t.Errorf("node%d holds %d masters\n%s", h, n, describe(insts, l))
		}
	}
	for i := range insts {
		if seen[i] != 1 {
			t.Errorf("%s has %d roles", insts[i].Name(), seen[i])
		}
	}
	if l.Shards[0].Master != 0 || l.Shards[2].Master != 4 || l.Shards[3].Master != 3 {
		t.Errorf("moved a master that had room:\n%s", describe(insts, l))
	}
}

func BenchmarkPlace100Hosts(b *testing.B) {
	insts := grid(100, 3)
	for b.Loop() {
		l := Place(createInput(insts, 2))
		if len(l.Shards) != 100 {
			b.Fatal(len(l.Shards))
		}
	}
}

// TestPlaceDrain checks that a drained host holds no master, for layouts being created and for a
// converged seed layout, that its instances keep their replica roles, and that replicas still sit
// on hosts other than their master's.
func TestPlaceDrain(t *testing.T) {
	seed := []ShardSpec{
		{Master: 0, Replicas: []int{4, 8}},
		{Master: 3, Replicas: []int{2, 7}},
		{Master: 6, Replicas: []int{1, 5}},
	}
	tests := []struct {
		name  string
		in    PlaceInput
		drain []string
	}{
		{"create, node2 drained", createInput(grid(3, 3), 2), []string{"node2"}},
		{"create 5 hosts, node1 and node4 drained", createInput(grid(5, 2), 1), []string{"node1", "node4"}},
		{"seed layout, node2 drained", PlaceInput{Instances: grid(3, 3), Replicas: 2, Shards: seed}, []string{"node2"}},
		{"seed layout, node3 drained", PlaceInput{Instances: grid(3, 3), Replicas: 2, Shards: seed}, []string{"node3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := tt.in
			in.Drain = map[string]bool{}
			for _, h := range tt.drain {
				in.Drain[h] = true
			}
			l := Place(in)
			roles := map[int]int{}
			for _, sh := range l.Shards {
				m := in.Instances[sh.Master]
				if in.Drain[m.Host] {
					t.Errorf("master %s on drained host:\n%s", m.Name(), describe(in.Instances, l))
				}
				roles[sh.Master]++
				for _, r := range sh.Replicas {
					roles[r]++
					if in.Instances[r].Host == m.Host {
						t.Errorf("replica %s shares host with master %s", in.Instances[r].Name(), m.Name())
					}
				}
			}
			if len(roles) != len(in.Instances) {
				t.Errorf("%d of %d instances got a role:\n%s", len(roles), len(in.Instances), describe(in.Instances, l))
			}
			for i, n := range roles {
				if n != 1 {
					t.Errorf("%s has %d roles", in.Instances[i].Name(), n)
				}
			}
		})
	}
}

// TestPlaceRestoresAfterFailovers: on grids of many hosts, failovers that left some hosts with two
// masters and others with none (the old master rejoined as a replica of the new one) are placed
// back to one master per host and no anti-affinity warning, whichever shards failed over.
func TestPlaceRestoresAfterFailovers(t *testing.T) {
	for _, hosts := range []int{4, 5, 10, 30} {
		insts := grid(hosts, 3)
		base := Place(createInput(insts, 2))
		for seed := 0; seed < 40; seed++ {
			rng := rand.New(rand.NewPCG(uint64(hosts), uint64(seed)))
			in := PlaceInput{Instances: insts, Replicas: 2}
			for _, sh := range base.Shards {
				in.Shards = append(in.Shards, ShardSpec{Master: sh.Master, Replicas: append([]int{}, sh.Replicas...)})
			}
			for k := 1 + rng.IntN(3); k > 0; k-- {
				sh := &in.Shards[rng.IntN(len(in.Shards))]
				j := rng.IntN(len(sh.Replicas))
				sh.Master, sh.Replicas[j] = sh.Replicas[j], sh.Master
			}
			l := Place(in)
			masters := map[string]int{}
			for _, sh := range l.Shards {
				masters[insts[sh.Master].Host]++
			}
			if len(l.Warnings) != 0 || len(masters) != hosts {
				t.Fatalf("%d hosts, seed %d: %d hosts hold masters, warnings %q\nfrom\n%s\nplaced\n%s", hosts, seed, len(masters), l.Warnings,
					describe(insts, Layout{Shards: func() []ShardLayout {
						var out []ShardLayout
						for _, s := range in.Shards {
							out = append(out, ShardLayout{Master: s.Master, Replicas: s.Replicas})
						}
						return out
					}()}), describe(insts, l))
			}
		}
	}
}
