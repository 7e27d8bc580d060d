package redis_cluster

import (
	"fmt"
	"sort"
	"strings"
)

// sampleSize is how many random keys are sampled from an instance before it takes a shard's slots.
const sampleSize = 32

// zeroReplID is the master_replid2 of an instance whose history continues no other.
const zeroReplID = "0000000000000000000000000000000000000000"

// Promotion is the choice of the replica that takes over the slots of a slot owner that is down.
type Promotion struct {
	// Candidates are the replicas fit to take over, best first. Empty when there is no live
	// replica or when Refusal is set.
	Candidates []string
	// Skipped says, one line per replica, why a replica of the master is not a candidate.
	Skipped []string
	// Refusal says why no replica can be chosen safely ("" when one can, or when the master has
	// no live replica at all).
	Refusal string
}

// PromotionFor chooses among the live replicas of master id, which is down. Replication offsets
// compare only within one replication history: a replica moved to this master with CLUSTER
// REPLICATE keeps its previous shard's data, master_replid and (possibly higher) offset until its
// full sync completes, and promoting it would hand this shard's slots the other shard's keys. The
// rules, in order:
//
//   - a replica in a full sync (master_sync_in_progress:1) is skipped: its data is being replaced;
//   - a replica that did not report its master_replid is skipped: its history is unknown;
//   - a replica that holds no key is skipped while a sibling holds keys;
//   - a replica whose sampled keys hash to a slot the master does not own is skipped: it holds
//     another shard's data;
//   - the others are grouped by master_replid; a history that a live master of another shard
//     reports (as master_replid or master_replid2), or that a synced replica of one reports, is
//     that shard's, and its group is skipped;
//   - the largest group left is the shard's; when two groups are as large nothing is chosen and
//     Refusal says why (a guess could lose the shard);
//   - within that group, the highest offset first, then declaration order.
//
// It is pure.
func (t *Topology) PromotionFor(id string) Promotion {
	var p Promotion
	reps := t.ReplicasOf(id)
	if len(reps) == 0 {
		return p
	}
	master := t.Members[id]
	anyKeys := false
	for _, rid := range reps {
		anyKeys = anyKeys || t.Obs[t.Members[rid].Inst].Keys > 0
	}
	owners := t.historyOwners(id)
	groups := map[string][]string{}
	var order []string
	for _, rid := range reps {
		i := t.Members[rid].Inst
		o := &t.Obs[i]
		name := t.Instances[i].Name()
		if o.SyncInProgress {
			p.Skipped = append(p.Skipped, fmt.Sprintf("%s is in a full sync (its data is being replaced)", name))
			continue
		}
		if o.ReplID == "" {
			p.Skipped = append(p.Skipped, fmt.Sprintf("%s did not report its master_replid (its replication history is unknown)", name))
			continue
		}
		if o.Keys == 0 && anyKeys {
			p.Skipped = append(p.Skipped, fmt.Sprintf("%s holds no key while a sibling holds keys", name))
			continue
		}
		if o.Sample != nil {
			if o.Sample.Err != nil {
				p.Skipped = append(p.Skipped, fmt.Sprintf("%s: its keys could not be sampled: %v", name, o.Sample.Err))
				continue
			}
			if s, bad := o.Sample.Foreign(master.Slots); bad {
				p.Skipped = append(p.Skipped, fmt.Sprintf("%s holds a key of slot %d, which %s does not own: it holds another shard's data", name, s, t.Name(id)))
				continue
			}
		}
		if other, ok := owners[o.ReplID]; ok {
			p.Skipped = append(p.Skipped, fmt.Sprintf("%s holds the replication history of %s's shard (master_replid %.8s): it was moved to %s and has not synced since",
				name, t.Name(other), o.ReplID, t.Name(id)))
			continue
		}
		if _, ok := groups[o.ReplID]; !ok {
			order = append(order, o.ReplID)
		}
		groups[o.ReplID] = append(groups[o.ReplID], rid)
	}
	if len(order) == 0 {
		p.Refusal = fmt.Sprintf("no replica of %s is fit to take its slots %s: %s", t.Name(id), FormatRanges(master.Slots), strings.Join(p.Skipped, "; "))
		return p
	}
	best := order[0]
	for _, r := range order[1:] {
		if len(groups[r]) > len(groups[best]) {
			best = r
		}
	}
	var tied []string
	for _, r := range order {
		if len(groups[r]) == len(groups[best]) {
			var names []string
			for _, rid := range groups[r] {
				names = append(names, t.Instances[t.Members[rid].Inst].Name())
			}
			tied = append(tied, fmt.Sprintf("%s (master_replid %.8s)", strings.Join(names, ", "), r))
		}
	}
	if len(tied) > 1 {
		p.Refusal = fmt.Sprintf("the replicas of %s hold different replication histories, as many replicas each: %s; offsets of different histories do not compare, so none is promoted. "+
			"Check which one holds the keys of slots %s and run CLUSTER FAILOVER FORCE on it",
			t.Name(id), strings.Join(tied, " and "), FormatRanges(master.Slots))
		return p
	}
	for _, r := range order {
		if r == best {
			continue
		}
		for _, rid := range groups[r] {
			p.Skipped = append(p.Skipped, fmt.Sprintf("%s holds another replication history (master_replid %.8s) than most replicas of %s (%.8s)",
				t.Instances[t.Members[rid].Inst].Name(), r, t.Name(id), best))
		}
	}
	p.Candidates = groups[best]
	sort.SliceStable(p.Candidates, func(a, b int) bool {
		return t.Obs[t.Members[p.Candidates[a]].Inst].Offset > t.Obs[t.Members[p.Candidates[b]].Inst].Offset
	})
	return p
}

// historyOwners maps each replication history known to belong to a shard other than master
// id's to that shard's master: the master_replid and master_replid2 of every live slot owner, and
// the master_replid of every replica whose link to such a master is up (a completed sync).
func (t *Topology) historyOwners(id string) map[string]string {
	owners := map[string]string{}
	for _, mid := range t.Masters() {
		m := t.Members[mid]
		if mid == id || !m.Live {
			continue
		}
		o := &t.Obs[m.Inst]
		for _, r := range []string{o.ReplID, o.ReplID2} {
			if r != "" && r != zeroReplID {
				owners[r] = mid
			}
		}
		for _, rid := range t.ReplicasOf(mid) {
			ro := &t.Obs[t.Members[rid].Inst]
			if ro.LinkUp && !ro.SyncInProgress && ro.ReplID != "" && joinAddr(ro.MasterHost, ro.MasterPort) == m.Addr {
				owners[ro.ReplID] = mid
			}
		}
	}
	return owners
}

// promotionSampled lists the instances whose keys PromotionFor looks at: the live replicas of
// every slot owner that is down.
func (t *Topology) promotionSampled() []int {
	var out []int
	for _, id := range t.Masters() {
		if m := t.Members[id]; m.Dead {
			for _, rid := range t.ReplicasOf(id) {
				out = append(out, t.Members[rid].Inst)
			}
		}
	}
	return out
}
