package redis_cluster

import (
	"fmt"
	"sort"
)

// A creation cut short — a host lost while the cluster was being created — leaves slots that no
// member of the cluster claims: either an instance outside the cluster holds them (it got its
// slots, then went down before it met the others: Topology.Alone), or no instance does (it went
// down before it got them). The functions below find what converge may finish without losing
// anything.

// joinable returns the Alone instances whose slots no member of the cluster owns and no other
// Alone instance claims too, and the slots they hold: meeting them into the cluster only gives
// those slots an owner.
func joinable(top *Topology) (join []int, claimed []SlotRange) {
	count := make(map[int]int) // slot -> how many Alone instances claim it
	for _, i := range top.Alone {
		for _, r := range top.Obs[i].Myself().Slots {
			for s := r.Start; s <= r.End; s++ {
				count[s]++
			}
		}
	}
	for _, i := range top.Alone {
		slots := top.Obs[i].Myself().Slots
		free := true
		for _, r := range slots {
			for s := r.Start; s <= r.End && free; s++ {
				free = count[s] == 1 && top.Owner(s) == ""
			}
		}
		if free {
			join = append(join, i)
			claimed = append(claimed, slots...)
		}
	}
	return join, mergeRanges(claimed)
}

// claimUncovered returns a step that adds the slots no instance claims to one master, when that
// cannot lose data: every declared instance answers and none holds a key. It picks a live master
// without slots, or an instance that knows only itself, on a host with the fewest slot owners
// (declaration order among equals). ok is false when it may not or finds no such instance.
func claimUncovered(top *Topology, uncovered []SlotRange) (step Step, ok bool) {
	if len(top.Unreachable) > 0 {
		return Step{}, false
	}
	for i := range top.Obs {
		if top.Obs[i].Keys > 0 {
			return Step{}, false
		}
	}
	owners := map[string]int{} // host -> slot-owning masters on it
	var candidates []int
	for _, id := range top.IDs {
		m := top.Members[id]
		switch {
		case !m.Live || !m.Master:
		case len(m.Slots) > 0:
			owners[top.Instances[m.Inst].Host]++
		case len(top.ReplicasOf(id)) == 0:
			candidates = append(candidates, m.Inst)
		}
	}
	candidates = append(candidates, top.Fresh...)
	if len(candidates) == 0 {
		return Step{}, false
	}
	sort.SliceStable(candidates, func(a, b int) bool {
		ha, hb := owners[top.Instances[candidates[a]].Host], owners[top.Instances[candidates[b]].Host]
		return ha < hb || ha == hb && candidates[a] < candidates[b]
	})
	i := candidates[0]
	return Step{Kind: StepAddSlots, Inst: i, Slots: uncovered,
		Summary: fmt.Sprintf("add slots %s to %s (no instance holds them and the cluster holds no keys: its creation was cut short)",
			FormatRanges(uncovered), top.Instances[i].Name())}, true
}

// subtractRanges returns the slots of rs that are not in minus, as ranges.
func subtractRanges(rs, minus []SlotRange) []SlotRange {
	var out []SlotRange
	for _, r := range rs {
		for s := r.Start; s <= r.End; s++ {
			if !inRanges(s, minus) {
				out = append(out, SlotRange{s, s})
			}
		}
	}
	return mergeRanges(out)
}
