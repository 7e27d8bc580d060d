package redis_cluster

import (
	"fmt"
	"sort"
)

// Instance is one declared redis-server: an inventory host and a port.
type Instance struct {
	// Host is the inventory host name.
	Host string
	// Port is the client port.
	Port int
	// IP is the host's address as the cluster sees it (the inventory address).
	IP string
	// Zone is the failure zone of the host ("" when zones are not used).
	Zone string
}

// Name is "host:port", the way every message names an instance.
func (i Instance) Name() string { return fmt.Sprintf("%s:%d", i.Host, i.Port) }

// ShardSpec is a shard as placement sees it: its current master (-1 for a shard still to be
// created) and its current replicas, best candidates first. Members are instance indexes.
type ShardSpec struct {
	Master   int
	Replicas []int
}

// PlaceInput is everything placement needs; it is pure data.
type PlaceInput struct {
	Instances []Instance
	Shards    []ShardSpec
	// Free are the instances that belong to no shard and may be given any role.
	Free     []int
	Replicas int
	// Drain are hosts that must hold no master; their instances stay (or become) replicas.
	Drain map[string]bool
}

// Layout is the desired role of every instance: for each shard its master and replicas.
type Layout struct {
	Shards   []ShardLayout
	Warnings []string
}

// ShardLayout is one shard of a Layout.
type ShardLayout struct {
	Master   int
	Replicas []int
}

// Place computes the desired layout. Masters are spread over hosts first (each host holds its share,
// proportional to its instances; a drained host's share is zero); each master gets Replicas replicas on other hosts, siblings on
// distinct hosts and zones where possible. Existing roles are kept whenever they satisfy these
// rules, so a converged layout places to itself. The result is deterministic. Warnings say where
// the hosts cannot give perfect anti-affinity.
func Place(in PlaceInput) Layout {
	p := newPlacer(in)
	p.chooseMasters()
	p.chooseReplicas()
	return Layout{Shards: p.out, Warnings: Violations(in.Instances, p.out, p.quota, in.Replicas)}
}

type placer struct {
	in        PlaceInput
	hosts     []string
	hostIdx   map[string]int
	quota     map[string]int
	mcount    map[string]int
	out       []ShardLayout
	pool      map[int]bool // instances still to be given a role
	fresh     map[int]bool // instances that were free (not members of any shard)
	memberOf  map[int]int  // current shard of an instance
	oldMaster []int        // current master per shard, -1 when none
}

func newPlacer(in PlaceInput) *placer {
	p := &placer{in: in, hostIdx: map[string]int{}, quota: map[string]int{}, mcount: map[string]int{},
		pool: map[int]bool{}, fresh: map[int]bool{}, memberOf: map[int]int{}}
	count := map[string]int{}
	n := 0
	for _, inst := range in.Instances {
		if _, ok := p.hostIdx[inst.Host]; !ok {
			p.hostIdx[inst.Host] = len(p.hosts)
			p.hosts = append(p.hosts, inst.Host)
		}
		if !in.Drain[inst.Host] {
			count[inst.Host]++
			n++
		}
	}
	for _, f := range in.Free {
		p.pool[f] = true
		p.fresh[f] = true
	}
	current := map[string]int{}
	for s, sh := range in.Shards {
		if sh.Master >= 0 {
			p.memberOf[sh.Master] = s
			current[in.Instances[sh.Master].Host]++
		}
		for _, r := range sh.Replicas {
			p.memberOf[r] = s
		}
		p.oldMaster = append(p.oldMaster, sh.Master)
	}
	p.quota = masterQuota(p.hosts, count, n, len(in.Shards), current)
	p.out = make([]ShardLayout, len(in.Shards))
	for i := range p.out {
		p.out[i].Master = -1
	}
	return p
}

// masterQuota gives each host its share of m masters, proportional to its instances. Rounding goes
// to hosts that already hold more masters (stability), then to larger remainders, then host order.
func masterQuota(hosts []string, count map[string]int, n, m int, current map[string]int) map[string]int {
	q := map[string]int{}
	if n == 0 {
		return q
	}
	type rem struct {
		host string
		frac int
		idx  int
	}
	var rems []rem
	total := 0
	for i, h := range hosts {
		q[h] = m * count[h] / n
		total += q[h]
		if f := m * count[h] % n; f > 0 {
			rems = append(rems, rem{h, f, i})
		}
	}
	sort.SliceStable(rems, func(a, b int) bool {
		ra, rb := rems[a], rems[b]
		ca, cb := current[ra.host] > q[ra.host], current[rb.host] > q[rb.host]
		if ca != cb {
			return ca
		}
		if ra.frac != rb.frac {
			return ra.frac > rb.frac
		}
		return ra.idx < rb.idx
	})
	for i := 0; i < m-total && i < len(rems); i++ {
		q[rems[i].host]++
	}
	return q
}

func (p *placer) host(i int) string { return p.in.Instances[i].Host }

func (p *placer) setMaster(s, i int) {
	p.out[s].Master = i
	p.mcount[p.host(i)]++
	delete(p.pool, i)
}

func (p *placer) chooseMasters() {
	// Keep current masters whose host has room.
	for s, sh := range p.in.Shards {
		if sh.Master >= 0 && p.mcount[p.host(sh.Master)] < p.quota[p.host(sh.Master)] {
			p.setMaster(s, sh.Master)
		}
	}
	// Move the others to a host with room: one of the shard's replicas there, else a free
	// instance, else (when no replica of the shard lives on a host with room, common with many
	// hosts) an instance there that now replicates another shard: it replicates this one, syncs
	// and takes over; its old shard gets a replica back from the members this move releases.
	for s, sh := range p.in.Shards {
		if p.out[s].Master >= 0 || sh.Master < 0 {
			continue
		}
		best, bestKey := -1, []int(nil)
		consider := func(i, pref int) {
			h := p.host(i)
			room := p.quota[h] - p.mcount[h]
			if room <= 0 || !p.available(i) {
				return
			}
			key := []int{pref, -room, p.hostIdx[h], i}
			if best < 0 || less(key, bestKey) {
				best, bestKey = i, key
			}
		}
		for _, r := range sh.Replicas {
			consider(r, 0)
		}
		for _, f := range p.sortedPool() {
			if p.fresh[f] {
				consider(f, 1)
			}
		}
		for o, other := range p.in.Shards {
			if o != s {
				for _, r := range other.Replicas {
					consider(r, 2)
				}
			}
		}
		if best < 0 {
			p.setMaster(s, sh.Master) // no better place: stays (reported as a violation)
			continue
		}
		p.setMaster(s, best)
	}
	// New shards: a free instance on the host with the most room, hosts in order.
	for s, sh := range p.in.Shards {
		if p.out[s].Master >= 0 || sh.Master >= 0 {
			continue
		}
		best, bestKey := -1, []int(nil)
		for _, f := range p.sortedPool() {
			h := p.host(f)
			key := []int{-(p.quota[h] - p.mcount[h]), p.zoneMasters(p.in.Instances[f].Zone), p.hostIdx[h], f}
			if best < 0 || less(key, bestKey) {
				best, bestKey = f, key
			}
		}
		if best >= 0 {
			p.setMaster(s, best)
		}
	}
}

// available reports whether instance i may still become a master: it is in the pool or is a
// replica that no shard has claimed as master.
func (p *placer) available(i int) bool {
	for _, o := range p.out {
		if o.Master == i {
			return false
		}
	}
	return true
}

func (p *placer) zoneMasters(zone string) int {
	if zone == "" {
		return 0
	}
	c := 0
	for _, o := range p.out {
		if o.Master >= 0 && p.in.Instances[o.Master].Zone == zone {
			c++
		}
	}
	return c
}

func (p *placer) sortedPool() []int {
	out := make([]int, 0, len(p.pool))
	for i := range p.pool {
		out = append(out, i)
	}
	sort.Ints(out)
	return out
}

func (p *placer) chooseReplicas() {
	isMaster := map[int]bool{}
	for _, o := range p.out {
		if o.Master >= 0 {
			isMaster[o.Master] = true
		}
	}
	// Keep current members (the old master first when it moves) where they fit.
	for s, sh := range p.in.Shards {
		if p.out[s].Master < 0 {
			continue
		}
		var members []int
		if sh.Master >= 0 && sh.Master != p.out[s].Master {
			members = append(members, sh.Master)
		}
		members = append(members, sh.Replicas...)
		for _, m := range members {
			if isMaster[m] {
				continue
			}
			if len(p.out[s].Replicas) < p.in.Replicas && !p.usedHosts(s)[p.host(m)] && !p.usedZone(s, p.in.Instances[m].Zone) {
				p.out[s].Replicas = append(p.out[s].Replicas, m)
				continue
			}
			p.pool[m] = true
		}
	}
	// Fill in rounds so that every shard gets its first replica before any gets its second.
	for round := 1; round <= p.in.Replicas; round++ {
		for s := range p.out {
			if p.out[s].Master < 0 || len(p.out[s].Replicas) >= round {
				continue
			}
			if c := p.pickReplica(s); c >= 0 {
				p.out[s].Replicas = append(p.out[s].Replicas, c)
				delete(p.pool, c)
			}
		}
	}
	// Leftovers: released members stay where they are; free instances become extra replicas of
	// the shards with the fewest replicas.
	for _, i := range p.sortedPool() {
		if s, ok := p.memberOf[i]; ok && p.out[s].Master >= 0 && !p.fresh[i] {
			p.out[s].Replicas = append(p.out[s].Replicas, i)
			delete(p.pool, i)
		}
	}
	for _, i := range p.sortedPool() {
		best, bestKey := -1, []int(nil)
		for s := range p.out {
			if p.out[s].Master < 0 {
				continue
			}
			key := []int{len(p.out[s].Replicas), b2i(p.usedHosts(s)[p.host(i)]), s}
			if best < 0 || less(key, bestKey) {
				best, bestKey = s, key
			}
		}
		if best >= 0 {
			p.out[best].Replicas = append(p.out[best].Replicas, i)
			delete(p.pool, i)
		}
	}
	p.swapMisplaced()
	for s := range p.out {
		sort.Ints(p.out[s].Replicas)
	}
}

// swapMisplaced trades replicas between shards where that puts a replica off a host (or zone)
// its shard already uses without putting the other one on such a host: what keeping members in
// order leaves behind when a master moved to another shard's replica.
func (p *placer) swapMisplaced() {
	clash := func(s, i, except int) bool {
		h, z := p.host(i), p.in.Instances[i].Zone
		if m := p.out[s].Master; m >= 0 && (p.host(m) == h || (z != "" && p.in.Instances[m].Zone == z)) {
			return true
		}
		for _, r := range p.out[s].Replicas {
			if r != except && r != i && (p.host(r) == h || (z != "" && p.in.Instances[r].Zone == z)) {
				return true
			}
		}
		return false
	}
	for s := range p.out {
		for a, r := range p.out[s].Replicas {
			if !clash(s, r, r) {
				continue
			}
		search:
			for o := range p.out {
				if o == s || p.out[o].Master < 0 {
					continue
				}
				for b, q := range p.out[o].Replicas {
					if !clash(s, q, r) && !clash(o, r, q) && !clash(o, q, q) {
						p.out[s].Replicas[a], p.out[o].Replicas[b] = q, r
						break search
					}
				}
			}
		}
	}
}

func (p *placer) usedHosts(s int) map[string]bool {
	u := map[string]bool{}
	if m := p.out[s].Master; m >= 0 {
		u[p.host(m)] = true
	}
	for _, r := range p.out[s].Replicas {
		u[p.host(r)] = true
	}
	return u
}

func (p *placer) usedZone(s int, zone string) bool {
	if zone == "" {
		return false
	}
	if m := p.out[s].Master; m >= 0 && p.in.Instances[m].Zone == zone {
		return true
	}
	for _, r := range p.out[s].Replicas {
		if p.in.Instances[r].Zone == zone {
			return true
		}
	}
	return false
}

// pickReplica chooses the best instance of the pool as the next replica of shard s.
func (p *placer) pickReplica(s int) int {
	used := p.usedHosts(s)
	master := p.out[s].Master
	mh := p.hostIdx[p.host(master)]
	left := map[string]int{}
	for i := range p.pool {
		left[p.host(i)]++
	}
	best, bestKey := -1, []int(nil)
	for _, i := range p.sortedPool() {
		h := p.host(i)
		member := 1
		if cur, ok := p.memberOf[i]; ok && cur == s && !p.fresh[i] {
			member = 0
		}
		dist := (p.hostIdx[h] - mh + len(p.hosts)) % len(p.hosts)
		key := []int{
			b2i(h == p.host(master)),
			b2i(used[h]),
			b2i(p.usedZone(s, p.in.Instances[i].Zone)),
			member,
			-left[h],
			dist,
			i,
		}
		if best < 0 || less(key, bestKey) {
			best, bestKey = i, key
		}
	}
	return best
}

// Violations lists what keeps a layout from perfect anti-affinity: a replica on its master's host,
// sibling replicas sharing a host or zone, a host holding more masters than its share.
func Violations(insts []Instance, shards []ShardLayout, quota map[string]int, replicas int) []string {
	var out []string
	mcount := map[string]int{}
	for _, sh := range shards {
		if sh.Master < 0 {
			continue
		}
		m := insts[sh.Master]
		mcount[m.Host]++
		hosts := map[string]string{m.Host: m.Name()}
		zones := map[string]string{}
		if m.Zone != "" {
			zones[m.Zone] = m.Name()
		}
		if len(sh.Replicas) < replicas {
			out = append(out, fmt.Sprintf("master %s has %d replicas, wants %d", m.Name(), len(sh.Replicas), replicas))
		}
		for _, r := range sh.Replicas {
			ri := insts[r]
			if ri.Host == m.Host {
				out = append(out, fmt.Sprintf("replica %s shares host %s with its master %s", ri.Name(), m.Host, m.Name()))
			} else if other, ok := hosts[ri.Host]; ok {
				out = append(out, fmt.Sprintf("replicas %s and %s of master %s share host %s", other, ri.Name(), m.Name(), ri.Host))
			} else if other, ok := zones[ri.Zone]; ok && ri.Zone != "" {
				out = append(out, fmt.Sprintf("%s and %s of the shard of %s share zone %s", other, ri.Name(), m.Name(), ri.Zone))
			}
			hosts[ri.Host] = ri.Name()
			if ri.Zone != "" {
				zones[ri.Zone] = ri.Name()
			}
		}
	}
	if quota != nil {
		var hs []string
		for h := range mcount {
			hs = append(hs, h)
		}
		sort.Strings(hs)
		for _, h := range hs {
			if mcount[h] > quota[h] {
				out = append(out, fmt.Sprintf("host %s holds %d masters, its share is %d", h, mcount[h], quota[h]))
			}
		}
	}
	return out
}

func less(a, b []int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
