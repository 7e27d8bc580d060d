package redis_cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// observed parses one instance's CLUSTER NODES answer into its observation.
func observed(t testing.TB, text string) Observation {
	t.Helper()
	nodes, err := ParseClusterNodes(text)
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return Observation{ClusterEnabled: true, Nodes: nodes, ClusterInfo: map[string]string{"cluster_state": "ok"}}
}

// TestAnalyzeSlotOwners checks who owns which slots when the instances disagree: the claim with
// the highest config epoch wins a slot, the first instance's among equal epochs, and a claim
// repeated by several instances counts once.
func TestAnalyzeSlotOwners(t *testing.T) {
	insts := []Instance{{Host: "n1", IP: "10.0.0.1", Port: 6379}, {Host: "n2", IP: "10.0.0.2", Port: 6379}, {Host: "n3", IP: "10.0.0.3", Port: 6379}}
	a, b, c := nid("A"), nid("B"), nid("C")
	line := func(id, addr, flags string, epoch int, slots string) string {
		return fmt.Sprintf("%s %s:6379@16379 %s - 0 0 %d connected %s\n", id, addr, flags, epoch, slots)
	}
	tests := []struct {
		name  string
		views [3]string // CLUSTER NODES as each instance answers
		want  map[string][]SlotRange
	}{{
		name: "all agree",
		views: [3]string{
			line(a, "10.0.0.1", "myself,master", 1, "0-5460") + line(b, "10.0.0.2", "master", 2, "5461-10922") + line(c, "10.0.0.3", "master", 3, "10923-16383"),
			line(a, "10.0.0.1", "master", 1, "0-5460") + line(b, "10.0.0.2", "myself,master", 2, "5461-10922") + line(c, "10.0.0.3", "master", 3, "10923-16383"),
			line(a, "10.0.0.1", "master", 1, "0-5460") + line(b, "10.0.0.2", "master", 2, "5461-10922") + line(c, "10.0.0.3", "myself,master", 3, "10923-16383"),
		},
		want: map[string][]SlotRange{a: {{0, 5460}}, b: {{5461, 10922}}, c: {{10923, 16383}}},
	}, {
		name: "a newer epoch takes the slots it claims, the older claim keeps the rest",
		views: [3]string{
			line(a, "10.0.0.1", "myself,master", 1, "0-5460") + line(b, "10.0.0.2", "master", 2, "5461-16383"),
			line(a, "10.0.0.1", "master", 1, "0-5460") + line(b, "10.0.0.2", "myself,master", 2, "5461-10922") + line(c, "10.0.0.3", "master", 4, "100-200 10923-16383"),
			line(a, "10.0.0.1", "master", 1, "0-5460") + line(b, "10.0.0.2", "master", 2, "5461-10922") + line(c, "10.0.0.3", "myself,master", 4, "100-200 10923-16383"),
		},
		want: map[string][]SlotRange{a: {{0, 99}, {201, 5460}}, b: {{5461, 10922}}, c: {{100, 200}, {10923, 16383}}},
	}, {
		name: "among equal epochs the first instance's claim holds",
		views: [3]string{
			line(a, "10.0.0.1", "myself,master", 1, "0-16383"),
			line(b, "10.0.0.2", "myself,master", 1, "0-8191"),
			line(c, "10.0.0.3", "myself,master", 1, "8192-16383") + line(a, "10.0.0.1", "master", 1, "0-16383"),
		},
		want: map[string][]SlotRange{a: {{0, 16383}}},
	}, {
		name: "one node's claim differs between instances: each is weighed",
		views: [3]string{
			line(a, "10.0.0.1", "myself,master", 3, "0-99") + line(b, "10.0.0.2", "master", 2, "0-16383"),
			line(a, "10.0.0.1", "master", 3, "0-199") + line(b, "10.0.0.2", "myself,master", 2, "0-16383"),
			line(a, "10.0.0.1", "master", 3, "0-99") + line(b, "10.0.0.2", "master", 2, "0-16383") + line(c, "10.0.0.3", "myself,master", 0, ""),
		},
		want: map[string][]SlotRange{a: {{0, 199}}, b: {{200, 16383}}},
	}, {
		name: "no slots anywhere",
		views: [3]string{
			line(a, "10.0.0.1", "myself,master", 0, ""),
			line(b, "10.0.0.2", "myself,master", 0, ""),
			line(c, "10.0.0.3", "myself,master", 0, ""),
		},
		want: map[string][]SlotRange{},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := make([]Observation, len(tt.views))
			for i, v := range tt.views {
				obs[i] = observed(t, v)
			}
			top := Analyze(insts, obs)
			got := map[string][]SlotRange{}
			for id, m := range top.Members {
				if len(m.Slots) > 0 {
					got[id] = m.Slots
				}
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("members' slots (-want +got):\n%s", d)
			}
			// Owner agrees with the members' ranges, and Masters lists the owners by first slot.
			var masters []string
			for s := 0; s < NumSlots; s++ {
				id := top.Owner(s)
				if id == "" {
					continue
				}
				if !covers(top.Members[id].Slots, s) {
					t.Fatalf("Owner(%d) = %s, whose ranges %v do not hold it", s, shortID(id), top.Members[id].Slots)
				}
				if len(masters) == 0 || !strings.Contains(strings.Join(masters, " "), id) {
					masters = append(masters, id)
				}
			}
			if d := cmp.Diff(masters, top.Masters()); d != "" {
				t.Errorf("Masters (-want +got):\n%s", d)
			}
		})
	}
}

func covers(rs []SlotRange, s int) bool {
	for _, r := range rs {
		if r.Start <= s && s <= r.End {
			return true
		}
	}
	return false
}

// BenchmarkAnalyze merges what every instance of a settled cluster answers, as each redis_cluster
// task does at least once per run (and on every poll while a cluster converges).
func BenchmarkAnalyze(b *testing.B) {
	for _, n := range []int{9, 90} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			text := clusterNodesText(n)
			lines := strings.SplitAfter(strings.TrimSuffix(text, "\n"), "\n")
			insts := make([]Instance, n)
			obs := make([]Observation, n)
			for i := range n {
				addr := strings.Fields(lines[i])[1]
				ip, rest, _ := strings.Cut(addr, ":")
				var port int
				fmt.Sscanf(rest, "%d", &port)
				insts[i] = Instance{Host: fmt.Sprintf("h%d", i), IP: ip, Port: port}
				mine := strings.Replace(lines[i], " master ", " myself,master ", 1)
				mine = strings.Replace(mine, " slave ", " myself,slave ", 1)
				obs[i] = observed(b, strings.Join(lines[:i], "")+mine+strings.Join(lines[i+1:], ""))
			}
			for b.Loop() {
				top := Analyze(insts, obs)
				if got := len(top.Masters()); got != n/3 {
					b.Fatalf("%d masters, want %d", got, n/3)
				}
			}
		})
	}
}

func TestStrangers(t *testing.T) {
	insts := grid(3, 3)
	tests := []struct {
		name    string
		unknown map[string]bool
		want    []int
	}{
		{name: "healthy cluster: none"},
		{name: "one replica nobody knows", unknown: map[string]bool{"b2": true}, want: []int{7}},
		{name: "an island of two that know each other", unknown: map[string]bool{"c1": true, "a1": true}, want: []int{1, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := world{insts: insts, nodes: healthy3x3(), unknown: tt.unknown}
			top := Analyze(insts, w.observations(t))
			if !top.Exists {
				t.Fatal("no cluster")
			}
			if !slices.Equal(top.Strangers, tt.want) {
				t.Errorf("strangers %v, want %v", top.Strangers, tt.want)
			}
		})
	}
}
