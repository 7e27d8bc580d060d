package redis_cluster

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Observation is what one instance answered (or why it did not).
type Observation struct {
	// Err is why the instance could not be observed; nil when it answered.
	Err            error
	ClusterEnabled bool
	Nodes          []Node
	ClusterInfo    map[string]string
	// Role is "master" or "slave" (INFO replication).
	Role string
	// LinkUp is master_link_status:up for a replica.
	LinkUp bool
	// Offset is the replication offset (slave_repl_offset for a replica). Offsets of two
	// instances compare only when they share a replication history (the same ReplID).
	Offset int64
	// ReplID is INFO replication master_replid: the replication history the instance's data
	// belongs to. A replica adopts its master's on a completed sync; until then (CLUSTER
	// REPLICATE to another master, a full sync not finished) it keeps its previous shard's.
	ReplID string
	// ReplID2 is master_replid2, the history the current one continues after a failover (all
	// zeros when none).
	ReplID2 string
	// SyncInProgress is master_sync_in_progress:1: a full sync is replacing the replica's data.
	SyncInProgress bool
	// MasterHost and MasterPort are where a replica replicates from (master_host, master_port).
	MasterHost string
	MasterPort int
	// Keys is DBSIZE.
	Keys int64
	// Server is what INFO server says of the running process (the rolling restart reads it).
	Server ServerInfo
	// Sample holds the hash slots of some of the instance's keys. The module samples only the
	// replicas of a slot owner that is down (promotion candidates); nil when not sampled.
	Sample *KeySample
}

// ServerInfo is the part of INFO server that tells one redis-server process from the next.
type ServerInfo struct {
	// RunID changes every time redis-server starts (run_id).
	RunID string
	// PID is process_id.
	PID string
	// Uptime is uptime_in_seconds.
	Uptime int64
	// Started is when the process started, in Unix seconds by its host's clock: the server's
	// clock (server_time_usec) minus Uptime, read together. 0 when the server does not report
	// its clock.
	Started int64
	// ConfigFile is config_file ("" when started without one).
	ConfigFile string
}

// parseServer reads the ServerInfo out of INFO server's fields.
func parseServer(info map[string]string) ServerInfo {
	s := ServerInfo{RunID: info["run_id"], PID: info["process_id"], ConfigFile: info["config_file"]}
	s.Uptime, _ = strconv.ParseInt(info["uptime_in_seconds"], 10, 64)
	if us, err := strconv.ParseInt(info["server_time_usec"], 10, 64); err == nil && us > 0 {
		s.Started = us/1_000_000 - s.Uptime
	}
	return s
}

// KeySample is the hash slots of up to sampleSize random keys of one instance (RANDOMKEY, CLUSTER
// KEYSLOT), to check that an instance holds its shard's data before it takes the shard's slots.
type KeySample struct {
	// Slots are the slots of the sampled keys, one per key (duplicates kept); empty when the
	// instance holds no key.
	Slots []int
	// Err is why the sample could not be taken.
	Err error
}

// Foreign returns the first sampled slot that is not among slots, and whether there is one.
func (k *KeySample) Foreign(slots []SlotRange) (int, bool) {
	for _, s := range k.Slots {
		if !inRanges(s, slots) {
			return s, true
		}
	}
	return 0, false
}

func inRanges(slot int, rs []SlotRange) bool {
	for _, r := range rs {
		if r.Start <= slot && slot <= r.End {
			return true
		}
	}
	return false
}

// errAuthFailed marks an instance that refused the module's password (NOAUTH, WRONGPASS).
var errAuthFailed = errors.New("authentication failed")

// authHint tells the operator what to check after an authentication failure.
const authHint = "check the password given to redis_cluster (redis_password)"

// AuthFailed reports whether the instance answered but refused the module's password.
func (o *Observation) AuthFailed() bool { return errors.Is(o.Err, errAuthFailed) }

// Reachable reports whether the instance answered.
func (o *Observation) Reachable() bool { return o.Err == nil }

// Myself returns the node line flagged myself, or nil.
func (o *Observation) Myself() *Node {
	for i := range o.Nodes {
		if o.Nodes[i].Flags.Has(FlagMyself) {
			return &o.Nodes[i]
		}
	}
	return nil
}

// Member is a node of the cluster, merged from every live instance's view.
type Member struct {
	ID string
	// Inst is the declared instance that reports this node as itself, -1 when none does.
	Inst int
	// AddrInst is the declared instance at the node's address, -1 when none.
	AddrInst int
	Addr     string
	Live     bool
	// Dead is set for a node that no instance serves any more: unreachable, failed, without
	// address, or replaced at its address by another node.
	Dead     bool
	Master   bool
	MasterID string
	Flags    Flags
	Slots    []SlotRange
}

// Topology is the analysed state of all declared instances.
type Topology struct {
	Instances []Instance
	Obs       []Observation
	// Exists is true when a cluster (more than one node, or slots) exists among the instances.
	Exists  bool
	Members map[string]*Member
	// IDs lists member IDs in a stable order.
	IDs []string
	// Fresh instances know only themselves and hold no slots.
	Fresh []int
	// Alone instances know only themselves but hold slots (a creation cut short).
	Alone       []int
	Foreign     []int
	Disabled    []int
	Unreachable []int
	// Strangers are live members the rest of the cluster does not know (see strangers): they
	// must meet it again.
	Strangers []int
	// slotOwner maps each slot to 1 + the index in ownerIDs of the master owning it (0: none);
	// Owner reads it.
	slotOwner []int32
	ownerIDs  []string
	// Open lists migrating or importing slots.
	Open []string
	// Undeclared lists live members at addresses that are not declared instances.
	Undeclared []string
}

// Analyze merges the observations of the declared instances into a Topology. It is pure.
func Analyze(insts []Instance, obs []Observation) *Topology {
	t := &Topology{Instances: insts, Obs: obs, Members: map[string]*Member{}}
	idInst := map[string]int{}
	uf := newUnionFind()
	for i := range obs {
		o := &obs[i]
		if !o.Reachable() {
			t.Unreachable = append(t.Unreachable, i)
			continue
		}
		if !o.ClusterEnabled {
			t.Disabled = append(t.Disabled, i)
			continue
		}
		me := o.Myself()
		if me == nil {
			continue
		}
		idInst[me.ID] = i
		uf.find(me.ID)
		for _, n := range o.Nodes {
			if !n.Flags.Has(FlagHandshake) {
				uf.union(me.ID, n.ID)
			}
		}
	}
	// Components: pick the main one (most declared instances, then most nodes, then first).
	type comp struct {
		root  string
		insts []int
		size  int
		slots bool
	}
	comps := map[string]*comp{}
	var order []string
	for i := range obs {
		me := meID(&obs[i])
		if me == "" || !obs[i].ClusterEnabled {
			continue
		}
		r := uf.find(me)
		c, ok := comps[r]
		if !ok {
			c = &comp{root: r}
			comps[r] = c
			order = append(order, r)
		}
		c.insts = append(c.insts, i)
		if len(obs[i].Myself().Slots) > 0 {
			c.slots = true
		}
	}
	for id := range uf.parent {
		if c, ok := comps[uf.find(id)]; ok {
			c.size++
		}
	}
	var main *comp
	for _, r := range order {
		c := comps[r]
		if c.size < 2 {
			continue
		}
		if main == nil || len(c.insts) > len(main.insts) || len(c.insts) == len(main.insts) && c.size > main.size {
			main = c
		}
	}
	for _, r := range order {
		c := comps[r]
		if c == main {
			continue
		}
		for _, i := range c.insts {
			switch {
			case c.size >= 2:
				t.Foreign = append(t.Foreign, i)
			case c.slots:
				t.Alone = append(t.Alone, i)
			default:
				t.Fresh = append(t.Fresh, i)
			}
		}
	}
	sort.Ints(t.Foreign)
	sort.Ints(t.Alone)
	sort.Ints(t.Fresh)
	if main == nil {
		return t
	}
	t.Exists = true
	t.merge(main.insts, idInst)
	t.Strangers = t.strangers()
	return t
}

// strangers returns the live members the cluster does not know: those outside the largest group
// of live members that all reach one another through "knows" (a node lists another in CLUSTER
// NODES, out of handshake) and that knows no member outside itself. A node that met a member which
// went down before it told the others knows the cluster, but the cluster does not know it; Redis
// never mends that by itself, as a node learns of another only from a MEET or from the gossip of a
// node it already knows.
func (t *Topology) strangers() []int {
	var ids []string // live members
	index := map[string]int{}
	for _, id := range t.IDs {
		if m := t.Members[id]; m.Live {
			index[id] = len(ids)
			ids = append(ids, id)
		}
	}
	if len(ids) < 2 {
		return nil
	}
	adj := make([][]int, len(ids))
	edges := make([]int, 0, len(ids)*len(ids)) // one backing array for every list
	for k, id := range ids {
		start := len(edges)
		for _, n := range t.Obs[t.Members[id].Inst].Nodes {
			if j, ok := index[n.ID]; ok && j != k && !n.Flags.Has(FlagHandshake) {
				edges = append(edges, j)
			}
		}
		adj[k] = edges[start:len(edges):len(edges)]
	}
	comp, count := components(adj)
	size := make([]int, count)
	sink := make([]bool, count)
	for k := range sink {
		sink[k] = true
	}
	for v, ws := range adj {
		size[comp[v]]++
		for _, w := range ws {
			if comp[w] != comp[v] {
				sink[comp[v]] = false
			}
		}
	}
	core := -1
	for v := range adj {
		if c := comp[v]; sink[c] && (core < 0 || size[c] > size[core]) {
			core = c
		}
	}
	var out []int
	for v, id := range ids {
		if comp[v] != core {
			out = append(out, t.Members[id].Inst)
		}
	}
	sort.Ints(out)
	return out
}

// components returns the strongly connected component of every vertex of the graph adj (Tarjan's
// algorithm) and how many there are.
func components(adj [][]int) (comp []int, count int) {
	n := len(adj)
	index, low, comp := make([]int, n), make([]int, n), make([]int, n)
	onStack := make([]bool, n)
	for v := range index {
		index[v] = -1
	}
	var stack []int
	next := 0
	var visit func(v int)
	visit = func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, v)
		onStack[v] = true
		for _, w := range adj[v] {
			switch {
			case index[w] < 0:
				visit(w)
				low[v] = min(low[v], low[w])
			case onStack[w]:
				low[v] = min(low[v], index[w])
			}
		}
		if low[v] == index[v] {
			for {
				w := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[w] = false
				comp[w] = count
				if w == v {
					break
				}
			}
			count++
		}
	}
	for v := range adj {
		if index[v] < 0 {
			visit(v)
		}
	}
	return comp, count
}

func meID(o *Observation) string {
	if !o.Reachable() {
		return ""
	}
	if me := o.Myself(); me != nil {
		return me.ID
	}
	return ""
}

// merge builds the members of the main cluster from the views of its live instances.
func (t *Topology) merge(live []int, idInst map[string]int) {
	addrInst := map[string]int{}
	for i, inst := range t.Instances {
		addrInst[joinAddr(inst.IP, inst.Port)] = i
	}
	// A slot belongs to the highest config epoch that claims it, the first seen among equals.
	// Every observer reports the same claims in a settled cluster: a claim already applied (same
	// node, epoch and slots) cannot change an owner again, so it is applied once.
	type claim struct {
		epoch int64
		id    string
	}
	claims := []claim{{}} // owner[s] indexes it; 0 is no owner
	owner := make([]int32, NumSlots)
	applied := map[claim][]SlotRange{}
	for _, i := range live {
		for _, n := range t.Obs[i].Nodes {
			if n.Flags.Has(FlagHandshake) {
				continue
			}
			m, ok := t.Members[n.ID]
			if !ok {
				m = &Member{ID: n.ID, Inst: -1, AddrInst: -1}
				t.Members[n.ID] = m
				t.IDs = append(t.IDs, n.ID)
			}
			self := n.Flags.Has(FlagMyself)
			if self || m.Addr == "" && n.Addr() != "" {
				m.Addr = n.Addr()
			}
			if self {
				m.Inst, m.Live = i, true
				m.Master, m.MasterID = n.IsMaster(), n.MasterID
			} else if !m.Live && m.Flags == 0 {
				m.Master, m.MasterID = n.IsMaster(), n.MasterID
			}
			if !self {
				m.Flags |= n.Flags & Flags(FlagFail|FlagPFail|FlagNoAddr)
			}
			if c := (claim{n.ConfigEpoch, n.ID}); len(n.Slots) > 0 && !slices.Equal(applied[c], n.Slots) {
				applied[c] = n.Slots
				claims = append(claims, c)
				ci := int32(len(claims) - 1)
				for _, r := range n.Slots {
					for s := r.Start; s <= r.End; s++ {
						if o := owner[s]; o == 0 || n.ConfigEpoch > claims[o].epoch {
							owner[s] = ci
						}
					}
				}
			}
			if len(n.Migrating) > 0 || len(n.Importing) > 0 {
				t.Open = append(t.Open, fmt.Sprintf("%s sees open slots on %s", t.Instances[i].Name(), shortID(n.ID)))
			}
		}
	}
	// From claims to members: owner[s] becomes 1 + the owner's index in ownerIDs, and each
	// member gets its ranges.
	idIndex := map[string]int32{}
	member := make([]int32, len(claims))
	for c := 1; c < len(claims); c++ {
		id := claims[c].id
		if _, ok := idIndex[id]; !ok {
			t.ownerIDs = append(t.ownerIDs, id)
			idIndex[id] = int32(len(t.ownerIDs))
		}
		member[c] = idIndex[id]
	}
	for s := 0; s < NumSlots; {
		m := member[owner[s]]
		e := s
		for e+1 < NumSlots && member[owner[e+1]] == m {
			e++
		}
		for k := s; k <= e; k++ {
			owner[k] = m
		}
		if m != 0 {
			id := t.ownerIDs[m-1]
			t.Members[id].Slots = append(t.Members[id].Slots, SlotRange{s, e})
		}
		s = e + 1
	}
	t.slotOwner = owner
	fresh := map[int]bool{}
	for _, i := range t.Fresh {
		fresh[i] = true
	}
	for _, id := range t.IDs {
		m := t.Members[id]
		if i, ok := addrInst[m.Addr]; ok && m.Addr != "" {
			m.AddrInst = i
		}
		if m.Live {
			continue
		}
		switch {
		case m.Flags.Has(FlagFail) || m.Flags.Has(FlagNoAddr) || m.Flags.Has(FlagPFail):
			m.Dead = true
		case m.AddrInst >= 0 && !t.Obs[m.AddrInst].Reachable():
			m.Dead = true
		case m.AddrInst >= 0 && meID(&t.Obs[m.AddrInst]) != id:
			m.Dead = true // another node answers at its address
		case m.AddrInst < 0:
			t.Undeclared = append(t.Undeclared, fmt.Sprintf("%s (%s)", shortID(id), m.Addr))
		}
	}
	sort.SliceStable(t.IDs, func(a, b int) bool {
		ma, mb := t.Members[t.IDs[a]], t.Members[t.IDs[b]]
		ka, kb := memberKey(ma), memberKey(mb)
		if ka != kb {
			return ka < kb
		}
		return ma.ID < mb.ID
	})
}

func memberKey(m *Member) int {
	if m.Inst >= 0 {
		return m.Inst
	}
	if m.AddrInst >= 0 {
		return 100000 + m.AddrInst
	}
	return 1 << 30
}

func joinAddr(ip string, port int) string {
	if strings.Contains(ip, ":") {
		return "[" + ip + "]:" + strconv.Itoa(port)
	}
	return ip + ":" + strconv.Itoa(port)
}

// Name describes a member for messages: the declared instance it is (or was) at, and its short ID.
func (t *Topology) Name(id string) string {
	m := t.Members[id]
	if m == nil {
		return shortID(id)
	}
	if m.Inst >= 0 {
		return t.Instances[m.Inst].Name()
	}
	if m.AddrInst >= 0 {
		return fmt.Sprintf("%s (old node %s)", t.Instances[m.AddrInst].Name(), shortID(id))
	}
	if m.Addr != "" {
		return fmt.Sprintf("%s (%s)", shortID(id), m.Addr)
	}
	if m.Flags.Has(FlagNoAddr) {
		return shortID(id) + " (noaddr)"
	}
	return shortID(id)
}

// Masters returns the IDs of members that own slots, ordered by their first slot.
func (t *Topology) Masters() []string {
	var out []string
	var seen []int32
	for _, m := range t.slotOwner {
		if m != 0 && !slices.Contains(seen, m) {
			seen = append(seen, m)
			out = append(out, t.ownerIDs[m-1])
		}
	}
	return out
}

// Owner returns the ID of the master owning slot s ("" when none).
func (t *Topology) Owner(s int) string {
	if s < 0 || s >= len(t.slotOwner) || t.slotOwner[s] == 0 {
		return ""
	}
	return t.ownerIDs[t.slotOwner[s]-1]
}

// Uncovered returns the slot ranges no node owns.
func (t *Topology) Uncovered() []SlotRange {
	var out []SlotRange
	for s := 0; s < NumSlots; s++ {
		if t.Owner(s) == "" {
			e := s
			for e+1 < NumSlots && t.Owner(e+1) == "" {
				e++
			}
			out = append(out, SlotRange{s, e})
			s = e
		}
	}
	return out
}

// ReplicasOf returns the live members that follow master id, in declaration order. Their offsets
// compare only within one replication history: see Promotion for choosing among them.
func (t *Topology) ReplicasOf(id string) []string {
	var out []string
	for _, rid := range t.IDs {
		m := t.Members[rid]
		if m.Live && !m.Master && m.MasterID == id {
			out = append(out, rid)
		}
	}
	return out
}

type unionFind struct{ parent map[string]string }

func newUnionFind() *unionFind { return &unionFind{parent: map[string]string{}} }

func (u *unionFind) find(x string) string {
	p, ok := u.parent[x]
	if !ok {
		u.parent[x] = x
		return x
	}
	if p == x {
		return x
	}
	r := u.find(p)
	u.parent[x] = r
	return r
}

func (u *unionFind) union(a, b string) {
	ra, rb := u.find(a), u.find(b)
	if ra != rb {
		if rb < ra {
			ra, rb = rb, ra
		}
		u.parent[rb] = ra
	}
}
