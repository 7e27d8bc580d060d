package redis_cluster

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Modes of the module.
const (
	ModeConverge = "converge"
	ModePrepare  = "prepare"
	ModeRestart  = "restart"
)

// Desired is the declared intent the planner converges to.
type Desired struct {
	Replicas      int
	AllowTakeover bool
	// Mode is ModeConverge, ModePrepare or ModeRestart (the planner treats restart as converge).
	Mode string
	// Drain are hosts that must hold no master (planned maintenance): their masters are moved to
	// replicas on other hosts with safe failovers; their replicas stay.
	Drain map[string]bool
}

// StepKind is the kind of one planned step.
type StepKind int

// Kinds of steps, in the order they run.
const (
	StepAddSlots StepKind = iota
	StepSetEpoch
	StepMeet
	StepPromote
	StepForget
	StepReplicate
	StepFailover
)

// Step is one administrative action on the cluster.
type Step struct {
	Kind StepKind
	// Inst is the instance the command is sent to (for AddSlots, Promote, Replicate, Failover).
	Inst int
	// Insts are the instances the command is sent to (SetEpoch, Meet, Forget).
	Insts []int
	// Epochs are the config epochs for SetEpoch, one per Insts.
	Epochs []int64
	// Peer is the instance each of Insts meets (Meet), when Peers is nil.
	Peer int
	// Peers are, for Meet, the instances each of Insts meets: Peers[k] for Insts[k].
	Peers [][]int
	// NodeID is the master to replicate (Replicate), the node to forget (Forget), the master the
	// slots are taken from (Promote, Failover).
	NodeID string
	// Slots are the slots to add (AddSlots) or to take over (Promote, Failover).
	Slots []SlotRange
	// Option is "FORCE" or "TAKEOVER" for Promote.
	Option string
	// Summary is the line shown by plan and apply.
	Summary string
}

// Plan is the planner's answer: the steps in order, and warnings.
type Plan struct {
	// Create is true when the plan creates a new cluster.
	Create   bool
	Steps    []Step
	Warnings []string
	// Skipped says why replicas of a slot owner that is down were passed over for promotion
	// (Topology.PromotionFor); the module shows them as warnings.
	Skipped []string
	// Layout is the desired layout (nil in prepare mode).
	Layout *Layout
	// Unreachable are the declared instances converge waits for: it cannot finish before they run.
	Unreachable []int
	// Blocked lists other reasons why converge cannot finish even after the steps.
	Blocked []string
}

// RefusalError is returned when the planner refuses to touch the cluster. Nothing has changed.
type RefusalError struct {
	Reasons []string
	// Transient is set when every reason is a state Redis leaves by itself within moments, such
	// as an old master back from a restart that has not yet heard that its slots moved on:
	// observing the cluster again shortly may find nothing to refuse.
	Transient bool
}

func (e *RefusalError) Error() string {
	return "refusing to change the cluster, nothing changed: " + strings.Join(e.Reasons, "; ")
}

// IsRefusal reports whether err is a RefusalError.
func IsRefusal(err error) bool {
	var r *RefusalError
	return errors.As(err, &r)
}

// IsTransient reports whether err is a RefusalError whose reasons Redis resolves by itself.
func IsTransient(err error) bool {
	var r *RefusalError
	return errors.As(err, &r) && r.Transient
}

// PlanSteps computes the steps that take the observed topology to the desired one. It is pure: the
// same topology always gives the same plan.
func PlanSteps(top *Topology, d Desired) (*Plan, error) {
	if d.Mode == "" {
		d.Mode = ModeConverge
	}
	var refuse []string
	for _, i := range top.Disabled {
		refuse = append(refuse, fmt.Sprintf("%s has cluster support disabled (cluster-enabled no)", top.Instances[i].Name()))
	}
	if !top.Exists {
		if d.Mode == ModePrepare {
			return &Plan{}, nil
		}
		return planCreate(top, d, refuse)
	}
	return planConverge(top, d, refuse)
}

func planCreate(top *Topology, d Desired, refuse []string) (*Plan, error) {
	insts := top.Instances
	if len(top.Unreachable) > 0 {
		refuse = append(refuse, DescribeUnreachable(top))
	}
	for _, i := range top.Foreign {
		refuse = append(refuse, fmt.Sprintf("%s belongs to another cluster (it knows %d nodes)", insts[i].Name(), len(top.Obs[i].Nodes)))
	}
	for i := range top.Obs {
		if o := &top.Obs[i]; o.Reachable() && o.Keys > 0 {
			refuse = append(refuse, fmt.Sprintf("%s should be empty but holds %d keys", insts[i].Name(), o.Keys))
		}
	}
	m := len(insts) / (d.Replicas + 1)
	if m < 1 {
		refuse = append(refuse, fmt.Sprintf("%d instances cannot hold a master with %d replicas", len(insts), d.Replicas))
	}
	if len(refuse) > 0 {
		return nil, &RefusalError{Reasons: refuse}
	}
	free := make([]int, len(insts))
	for i := range free {
		free[i] = i
	}
	shards := make([]ShardSpec, m)
	for i := range shards {
		shards[i].Master = -1
	}
	layout := Place(PlaceInput{Instances: insts, Shards: shards, Free: free, Replicas: d.Replicas, Drain: d.Drain})
	ranges := SplitSlots(m)
	p := &Plan{Create: true, Layout: &layout, Warnings: layout.Warnings}
	for s, sh := range layout.Shards {
		me := top.Obs[sh.Master].Myself()
		want := []SlotRange{ranges[s]}
		if len(me.Slots) > 0 {
			if FormatRanges(me.Slots) != FormatRanges(want) {
				refuse = append(refuse, fmt.Sprintf("%s holds slots %s but should get %s", insts[sh.Master].Name(), FormatRanges(me.Slots), FormatRanges(want)))
			}
			continue
		}
		p.Steps = append(p.Steps, Step{Kind: StepAddSlots, Inst: sh.Master, Slots: want,
			Summary: fmt.Sprintf("add slots %s to %s", FormatRanges(want), insts[sh.Master].Name())})
	}
	for _, i := range top.Alone {
		isMaster := false
		for _, sh := range layout.Shards {
			isMaster = isMaster || sh.Master == i
		}
		if !isMaster {
			refuse = append(refuse, fmt.Sprintf("%s holds slots %s but should be a replica", insts[i].Name(), FormatRanges(top.Obs[i].Myself().Slots)))
		}
	}
	if len(refuse) > 0 {
		return nil, &RefusalError{Reasons: refuse}
	}
	ep := Step{Kind: StepSetEpoch}
	for i := range insts {
		if top.Obs[i].Myself().ConfigEpoch == 0 {
			ep.Insts = append(ep.Insts, i)
			ep.Epochs = append(ep.Epochs, int64(i+1))
		}
	}
	if len(ep.Insts) > 0 {
		ep.Summary = fmt.Sprintf("set config epochs 1-%d on %d instances", len(insts), len(ep.Insts))
		p.Steps = append(p.Steps, ep)
	}
	if len(insts) > 1 {
		meet := Step{Kind: StepMeet, Summary: fmt.Sprintf("meet %d instances into one cluster", len(insts))}
		for i, peers := range createMeets(len(insts), layout) {
			meet.Insts = append(meet.Insts, i)
			meet.Peers = append(meet.Peers, peers)
		}
		p.Steps = append(p.Steps, meet)
	}
	for _, sh := range layout.Shards {
		mid := top.Obs[sh.Master].Myself().ID
		for _, r := range sh.Replicas {
			p.Steps = append(p.Steps, Step{Kind: StepReplicate, Inst: r, NodeID: mid,
				Summary: fmt.Sprintf("%s replicates %s", insts[r].Name(), insts[sh.Master].Name())})
		}
	}
	return p, nil
}

// createMeets returns, for each of n instances, the instances it meets when the cluster is
// created.
//
// Up to meshLimit instances every pair meets once: each instance then knows every other as soon
// as its handshakes end. Otherwise every master meets the masters after it, every other instance
// its master (the first master when the layout gives it none): the masters learn at once that a
// majority of masters owns slots, which starts the server's wait before it reports cluster_state
// ok, every replica knows its master as soon as it can be told to follow it, and gossip makes the
// other links, each instance telling its peers of the nodes it knows. That last part is what the
// mesh saves: at 3 hosts x 3 instances, 3 creations in 4 waited about half a second more for one
// master to hear of the last node by gossip (12 fresh installs each, alternating: median 3.03 s
// without the mesh, 2.71 s with it). A full mesh of many instances makes each handshake with all
// the others at the same moment, which keeps them busy for seconds.
func createMeets(n int, layout Layout) [][]int {
	peers := make([][]int, n)
	if n <= meshLimit {
		for i := range peers {
			for j := i + 1; j < n; j++ {
				peers[i] = append(peers[i], j)
			}
		}
		return peers
	}
	master := make([]int, n) // instance -> its master, -1 for a master
	for i := range master {
		master[i] = layout.Shards[0].Master
	}
	for a, sh := range layout.Shards {
		master[sh.Master] = -1
		for _, r := range sh.Replicas {
			master[r] = sh.Master
		}
		for _, other := range layout.Shards[a+1:] {
			peers[sh.Master] = append(peers[sh.Master], other.Master)
		}
	}
	for i, m := range master {
		if m >= 0 {
			peers[i] = append(peers[i], m)
		}
	}
	return peers
}

// meshLimit is the largest cluster createMeets meets as a full mesh (276 pairs). At 8 hosts x 3
// instances the mesh made no difference (6 fresh installs each, alternating: median 5.99 s both).
const meshLimit = 24

func planConverge(top *Topology, d Desired, refuse []string) (*Plan, error) {
	insts := top.Instances
	for _, i := range top.Foreign {
		refuse = append(refuse, fmt.Sprintf("%s belongs to another cluster (it knows %d nodes, none of this cluster)", insts[i].Name(), len(top.Obs[i].Nodes)))
	}
	join, claimed := joinable(top)
	for _, i := range top.Alone {
		if !slices.Contains(join, i) {
			refuse = append(refuse, fmt.Sprintf("%s holds slots %s but is not part of the cluster", insts[i].Name(), FormatRanges(top.Obs[i].Myself().Slots)))
		}
	}
	refuse = append(refuse, top.Open...)
	var claim *Step // gives slots no instance holds an owner, in a cluster without keys
	// Prepare mode leaves slots without owner to converge, which runs once the instances are
	// started: one that is down now may hold them, and prepare gives no slots an owner.
	if u := subtractRanges(top.Uncovered(), claimed); len(u) > 0 && d.Mode != ModePrepare {
		if st, ok := claimUncovered(top, u); ok {
			claim = &st
		} else {
			refuse = append(refuse, fmt.Sprintf("slots %s have no owner", FormatRanges(u)))
		}
	}
	masters := top.Masters()
	alive := 0
	var noCopy, skipped []string
	promote := map[string]string{} // dead owner -> replica to promote
	for _, id := range masters {
		m := top.Members[id]
		switch {
		case m.Live:
			alive++
		case m.Dead:
			if len(top.ReplicasOf(id)) == 0 {
				noCopy = append(noCopy, fmt.Sprintf("%s (owned by %s)", FormatRanges(m.Slots), top.Name(id)))
				continue
			}
			pr := top.PromotionFor(id)
			skipped = append(skipped, pr.Skipped...)
			if pr.Refusal != "" {
				refuse = append(refuse, pr.Refusal)
				continue
			}
			promote[id] = pr.Candidates[0]
		default:
			refuse = append(refuse, fmt.Sprintf("node %s owns slots %s but is not a declared instance", top.Name(id), FormatRanges(m.Slots)))
		}
	}
	if len(noCopy) > 0 {
		refuse = append(refuse, "slots have no live copy: "+strings.Join(noCopy, ", "))
	}
	option := "FORCE"
	if len(promote) > 0 && alive*2 <= len(masters) {
		if !d.AllowTakeover {
			refuse = append(refuse, fmt.Sprintf("only %d of %d masters are alive, no majority to elect replicas (set allow_takeover = true to force it)", alive, len(masters)))
		}
		option = "TAKEOVER"
	}
	for _, i := range top.Fresh {
		if o := &top.Obs[i]; o.Keys > 0 {
			refuse = append(refuse, fmt.Sprintf("%s should be empty but holds %d keys", insts[i].Name(), o.Keys))
		}
	}
	owner := map[string]bool{}
	for _, id := range masters {
		owner[id] = true
	}
	var free []int
	var pending []string // reasons Redis resolves by itself
	for _, id := range top.IDs {
		m := top.Members[id]
		if !m.Live {
			continue
		}
		switch {
		case m.Master && !owner[id]:
			if k := top.Obs[m.Inst].Keys; k > 0 {
				if claim := staleClaim(top, m.Inst); claim != "" {
					pending = append(pending, fmt.Sprintf("%s (it holds %d keys)", claim, k))
				} else {
					refuse = append(refuse, fmt.Sprintf("%s is a master without slots but holds %d keys", insts[m.Inst].Name(), k))
				}
			}
			free = append(free, m.Inst)
		case !m.Master && !owner[m.MasterID]:
			free = append(free, m.Inst)
		}
	}
	if len(refuse)+len(pending) > 0 {
		return nil, &RefusalError{Reasons: append(refuse, pending...), Transient: len(refuse) == 0}
	}
	p := &Plan{Skipped: skipped}
	for _, id := range masters {
		c, ok := promote[id]
		if !ok {
			continue
		}
		ci := top.Members[c].Inst
		p.Steps = append(p.Steps, Step{Kind: StepPromote, Inst: ci, NodeID: id, Slots: top.Members[id].Slots, Option: option,
			Summary: fmt.Sprintf("failover %s to %s (master %s is down, slots %s)", option, insts[ci].Name(), top.Name(id), FormatRanges(top.Members[id].Slots))})
	}
	if d.Mode == ModePrepare {
		return p, nil
	}
	if len(top.Unreachable) > 0 {
		p.Unreachable = top.Unreachable
		return p, nil
	}
	var live []int
	for _, id := range top.IDs {
		if m := top.Members[id]; m.Live {
			live = append(live, m.Inst)
		}
	}
	for _, id := range top.IDs {
		if m := top.Members[id]; m.Dead {
			p.Steps = append(p.Steps, Step{Kind: StepForget, NodeID: id, Insts: live,
				Summary: fmt.Sprintf("forget %s on %d instances", top.Name(id), len(live))})
		}
	}
	if len(live) == 0 {
		return nil, &RefusalError{Reasons: []string{"no live member of the cluster"}}
	}
	peer := live[0] // a member the cluster knows, to meet it through
	for _, i := range live {
		if !slices.Contains(top.Strangers, i) {
			peer = i
			break
		}
	}
	if claim != nil {
		p.Steps = append(p.Steps, *claim)
	}
	for _, i := range top.Strangers {
		p.Steps = append(p.Steps, Step{Kind: StepMeet, Insts: []int{i}, Peer: peer,
			Summary: fmt.Sprintf("%s meets the cluster through %s (it knows the cluster, the cluster does not know it)", insts[i].Name(), insts[peer].Name())})
	}
	for _, i := range join {
		p.Steps = append(p.Steps, Step{Kind: StepMeet, Insts: []int{i}, Peer: peer,
			Summary: fmt.Sprintf("%s meets the cluster through %s with its slots %s", insts[i].Name(), insts[peer].Name(), FormatRanges(top.Obs[i].Myself().Slots))})
	}
	freshMeet := map[int]int{} // fresh instance -> index of its meet step
	for _, i := range top.Fresh {
		freshMeet[i] = len(p.Steps)
		p.Steps = append(p.Steps, Step{Kind: StepMeet, Insts: []int{i}, Peer: peer,
			Summary: fmt.Sprintf("%s meets the cluster through %s", insts[i].Name(), insts[peer].Name())})
		free = append(free, i)
	}
	if claim != nil || len(join) > 0 || len(top.Strangers) > 0 {
		// The masters change, or members are not yet known to all: place the replicas once
		// every instance is a member the others know (next round).
		return p, nil
	}
	sort.Ints(free)
	// Project the shards after promotion and place.
	shards := make([]ShardSpec, len(masters))
	masterID := make([]string, len(masters))
	follow := map[int]int{} // instance -> shard it follows after promotion
	for s, id := range masters {
		mid := id
		if c, ok := promote[id]; ok {
			mid = c
		}
		masterID[s] = mid
		shards[s].Master = top.Members[mid].Inst
		for _, rid := range top.ReplicasOf(id) {
			if rid != mid {
				shards[s].Replicas = append(shards[s].Replicas, top.Members[rid].Inst)
			}
		}
		if mid != id {
			for _, rid := range top.ReplicasOf(mid) {
				shards[s].Replicas = append(shards[s].Replicas, top.Members[rid].Inst)
			}
		}
		for _, r := range shards[s].Replicas {
			follow[r] = s
		}
	}
	layout := Place(PlaceInput{Instances: insts, Shards: shards, Free: free, Replicas: d.Replicas, Drain: d.Drain})
	p.Layout = &layout
	p.Warnings = append(p.Warnings, layout.Warnings...)
	meetFresh(p, top, layout, masterID, live, freshMeet)
	for _, u := range top.Undeclared {
		p.Warnings = append(p.Warnings, fmt.Sprintf("cluster member %s is not a declared instance; left alone", u))
	}
	var failovers []Step
	for s, sh := range layout.Shards {
		if sh.Master < 0 {
			continue
		}
		cur := shards[s].Master
		want := append([]int{}, sh.Replicas...)
		if sh.Master != cur {
			want = append([]int{sh.Master}, want...)
			failovers = append(failovers, Step{Kind: StepFailover, Inst: sh.Master, NodeID: masterID[s], Slots: top.Members[masters[s]].Slots,
				Summary: fmt.Sprintf("failover to %s (takes slots %s from %s)", insts[sh.Master].Name(), FormatRanges(top.Members[masters[s]].Slots), insts[cur].Name())})
		}
		for _, r := range want {
			if r == cur {
				continue
			}
			if f, ok := follow[r]; ok && f == s {
				continue
			}
			p.Steps = append(p.Steps, Step{Kind: StepReplicate, Inst: r, NodeID: masterID[s],
				Summary: fmt.Sprintf("%s replicates %s", insts[r].Name(), insts[cur].Name())})
		}
	}
	p.Steps = append(p.Steps, failovers...)
	for _, sh := range layout.Shards {
		if sh.Master >= 0 && d.Drain[insts[sh.Master].Host] {
			p.Blocked = append(p.Blocked, fmt.Sprintf("%s stays master on drained host %s: none of its replicas is on another host",
				insts[sh.Master].Name(), insts[sh.Master].Host))
		}
	}
	return p, nil
}

// meetFresh chooses whom the fresh instances of plan p meet, now that the layout says whom each
// follows. Through one member, a fresh instance learns of the other nodes by gossip only: its
// CLUSTER REPLICATE then waits until it has heard of its master (about a second at 3 hosts), and
// the cluster agrees on the layout later still. Up to meshLimit instances, every fresh instance
// meets every live member and the fresh instances after it, as a creation's instances do;
// beyond, it meets the master it is to follow (its replica step then runs at once).
func meetFresh(p *Plan, top *Topology, layout Layout, masterID []string, live []int, freshMeet map[int]int) {
	if len(freshMeet) == 0 {
		return
	}
	insts := top.Instances
	if len(insts) <= meshLimit {
		for _, i := range top.Fresh {
			var peers []int
			for _, j := range live {
				if j != i {
					peers = append(peers, j)
				}
			}
			for _, j := range top.Fresh {
				if j > i {
					peers = append(peers, j)
				}
			}
			st := &p.Steps[freshMeet[i]]
			st.Peers = [][]int{peers}
			st.Summary = fmt.Sprintf("%s meets the cluster (%d members) and the new instances after it", insts[i].Name(), len(live))
		}
		return
	}
	for s, sh := range layout.Shards {
		if s >= len(masterID) || masterID[s] == "" {
			continue
		}
		m, ok := top.Members[masterID[s]]
		if !ok || !m.Live {
			continue
		}
		for _, r := range sh.Replicas {
			if k, ok := freshMeet[r]; ok {
				p.Steps[k].Peer = m.Inst
				p.Steps[k].Summary = fmt.Sprintf("%s meets the cluster through %s, its master", insts[r].Name(), insts[m.Inst].Name())
			}
		}
	}
}

// DescribeUnreachable says in one line which declared instances did not answer and why, grouped
// by reason and host: "3 of 9 instances are unreachable: node2:6379,6380,6381 (connection refused)".
// Instances that answered but refused the password are named apart, with what to check:
// "authentication failed on 9 of 9 instances: node1:6379,... (WRONGPASS): check the password ...".
func DescribeUnreachable(top *Topology) string {
	var reasons, authReasons []string
	byReason := map[string][]int{}
	down := 0
	for _, i := range top.Unreachable {
		r := unreachableReason(top.Obs[i].Err)
		if _, ok := byReason[r]; !ok {
			if top.Obs[i].AuthFailed() {
				authReasons = append(authReasons, r)
			} else {
				reasons = append(reasons, r)
			}
		}
		byReason[r] = append(byReason[r], i)
		if !top.Obs[i].AuthFailed() {
			down++
		}
	}
	group := func(rs []string) string {
		var parts []string
		for _, r := range rs {
			parts = append(parts, fmt.Sprintf("%s (%s)", compactNames(top.Instances, byReason[r]), r))
		}
		return strings.Join(parts, ", ")
	}
	var out []string
	if down > 0 {
		verb := "are"
		if down == 1 {
			verb = "is"
		}
		out = append(out, fmt.Sprintf("%d of %d instances %s unreachable: %s", down, len(top.Instances), verb, group(reasons)))
	}
	if n := len(top.Unreachable) - down; n > 0 {
		out = append(out, fmt.Sprintf("authentication failed on %d of %d instances: %s: %s", n, len(top.Instances), group(authReasons), authHint))
	}
	return strings.Join(out, "; ")
}

// unreachableReason shortens a dial or command error to its cause.
func unreachableReason(err error) string {
	if err == nil {
		return "no answer"
	}
	msg := err.Error()
	if errors.Is(err, errAuthFailed) {
		// "node1:6379: authentication failed (WRONGPASS): check ..." -> "WRONGPASS"
		if _, rest, ok := strings.Cut(msg, errAuthFailed.Error()+" ("); ok {
			if code, _, ok := strings.Cut(rest, "): "); ok {
				return code
			}
		}
		return errAuthFailed.Error()
	}
	for _, known := range []string{"connection refused", "no route to host", "timeout", "i/o timeout", "deadline exceeded", "connection reset"} {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(known)) {
			return strings.TrimPrefix(strings.ToLower(known), "i/o ")
		}
	}
	if k := strings.LastIndex(msg, ": "); k >= 0 {
		return msg[k+2:]
	}
	return msg
}

// compactNames writes instances host by host: "node1:6379,6380 node2:6379".
func compactNames(insts []Instance, idx []int) string {
	var hosts []string
	ports := map[string][]string{}
	for _, i := range idx {
		h := insts[i].Host
		if _, ok := ports[h]; !ok {
			hosts = append(hosts, h)
		}
		ports[h] = append(ports[h], fmt.Sprint(insts[i].Port))
	}
	var out []string
	for _, h := range hosts {
		out = append(out, h+":"+strings.Join(ports[h], ","))
	}
	return strings.Join(out, " ")
}

// staleClaim describes instance i, a master the cluster counts without slots, when its own view
// still claims slots that other masters took over with a newer config epoch: an old master back
// from a restart before it heard of the failover. Redis resolves that by itself (the owner's
// UPDATE message makes it give the slots up, and a replica of their owner). "" when i claims no
// slot.
func staleClaim(top *Topology, i int) string {
	me := top.Obs[i].Myself()
	if me == nil || len(me.Slots) == 0 {
		return ""
	}
	var owners []string
	seen := map[string]bool{}
	epoch := int64(-1)
	for _, r := range me.Slots {
		for s := r.Start; s <= r.End; s++ {
			id := top.Owner(s)
			if id == "" || id == me.ID || seen[id] {
				continue
			}
			seen[id] = true
			owners = append(owners, top.Name(id))
			if m := top.Members[id]; m != nil && m.Inst >= 0 {
				if o := top.Obs[m.Inst].Myself(); o != nil && o.ConfigEpoch > epoch {
					epoch = o.ConfigEpoch
				}
			}
		}
	}
	if len(owners) == 0 {
		return ""
	}
	newer := "with a newer epoch"
	if epoch > me.ConfigEpoch {
		newer = fmt.Sprintf("with a newer epoch (%d > %d)", epoch, me.ConfigEpoch)
	}
	return fmt.Sprintf("%s still claims slots %s, which %s took over %s", top.Instances[i].Name(),
		FormatRanges(me.Slots), strings.Join(owners, ", "), newer)
}

// Health lists why the cluster is not (yet) in its converged state: every declared instance a live
// member, cluster_state ok and the same layout seen by every instance, all slots covered, every
// replica's link up. An empty answer means converged.
func Health(top *Topology) []string {
	var out []string
	insts := top.Instances
	for _, i := range top.Unreachable {
		if top.Obs[i].AuthFailed() {
			out = append(out, top.Obs[i].Err.Error())
			continue
		}
		out = append(out, fmt.Sprintf("%s is unreachable", insts[i].Name()))
	}
	for _, i := range top.Fresh {
		out = append(out, fmt.Sprintf("%s is not in the cluster", insts[i].Name()))
	}
	if !top.Exists {
		if len(out) == 0 {
			out = append(out, "no cluster")
		}
		return out
	}
	if u := top.Uncovered(); len(u) > 0 {
		out = append(out, fmt.Sprintf("slots %s are not covered", FormatRanges(u)))
	}
	live := map[string]bool{}
	for _, id := range top.IDs {
		m := top.Members[id]
		if !m.Live {
			out = append(out, fmt.Sprintf("%s is still known to the cluster", top.Name(id)))
			continue
		}
		live[id] = true
	}
	for _, id := range top.IDs {
		m := top.Members[id]
		if !m.Live {
			continue
		}
		o := &top.Obs[m.Inst]
		name := insts[m.Inst].Name()
		if st := o.ClusterInfo["cluster_state"]; st != "ok" {
			out = append(out, fmt.Sprintf("%s reports cluster_state %s", name, st))
		}
		if !m.Master && !o.LinkUp {
			out = append(out, fmt.Sprintf("%s is not synced with its master (master_link_status down)", name))
		}
		seen := 0
		for _, n := range o.Nodes {
			if n.Flags.Has(FlagHandshake) {
				out = append(out, fmt.Sprintf("%s is still in handshake with %s", name, n.Addr()))
				continue
			}
			other := top.Members[n.ID]
			if other == nil || !live[n.ID] {
				continue
			}
			seen++
			if n.Failing() {
				out = append(out, fmt.Sprintf("%s sees %s as %s", name, top.Name(n.ID), n.Flags))
			}
			if n.IsMaster() != other.Master || n.MasterID != other.MasterID {
				out = append(out, fmt.Sprintf("%s does not yet agree on the role of %s", name, top.Name(n.ID)))
			} else if n.IsMaster() && FormatRanges(n.Slots) != FormatRanges(other.Slots) {
				out = append(out, fmt.Sprintf("%s does not yet agree on the slots of %s", name, top.Name(n.ID)))
			}
		}
		if seen != len(live) {
			out = append(out, fmt.Sprintf("%s knows %d of %d live nodes", name, seen, len(live)))
		}
	}
	return out
}
