package redis_cluster

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
)

// NumSlots is the number of hash slots of a Redis Cluster.
const NumSlots = 16384

// SlotRange is an inclusive range of hash slots.
type SlotRange struct {
	Start, End int
}

// String renders the range as CLUSTER NODES does: "5461" or "0-5460".
func (r SlotRange) String() string {
	if r.Start == r.End {
		return strconv.Itoa(r.Start)
	}
	return fmt.Sprintf("%d-%d", r.Start, r.End)
}

// Len is the number of slots in the range.
func (r SlotRange) Len() int { return r.End - r.Start + 1 }

// FormatRanges renders ranges separated by commas ("0-5460,5462").
func FormatRanges(rs []SlotRange) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Flag is one flag of a CLUSTER NODES line.
type Flag uint16

// Flags of a CLUSTER NODES line.
const (
	FlagMyself Flag = 1 << iota
	FlagMaster
	FlagReplica
	FlagPFail
	FlagFail
	FlagHandshake
	FlagNoAddr
	FlagNoFailover
)

var flagNames = []struct {
	name string
	flag Flag
}{
	{"myself", FlagMyself}, {"master", FlagMaster}, {"slave", FlagReplica}, {"fail?", FlagPFail},
	{"fail", FlagFail}, {"handshake", FlagHandshake}, {"noaddr", FlagNoAddr}, {"nofailover", FlagNoFailover},
}

// Flags is the set of flags of a node.
type Flags Flag

// Has reports whether all of f are set.
func (fs Flags) Has(f Flag) bool { return Flag(fs)&f == f }

// String renders the flags as CLUSTER NODES does.
func (fs Flags) String() string {
	var parts []string
	for _, n := range flagNames {
		if fs.Has(n.flag) {
			parts = append(parts, n.name)
		}
	}
	if len(parts) == 0 {
		return "noflags"
	}
	return strings.Join(parts, ",")
}

// Node is one line of CLUSTER NODES: a node as seen by the instance that answered.
type Node struct {
	ID string
	// IP and Port are the node's client address; IP is empty for a node without address.
	IP   string
	Port int
	// CPort is the cluster bus port (0 when the line does not say).
	CPort int
	// Hostname is the announced hostname (Redis 7), often empty.
	Hostname string
	Flags    Flags
	// MasterID is the ID of the master a replica follows, empty for a master.
	MasterID    string
	PingSent    int64
	PongRecv    int64
	ConfigEpoch int64
	Connected   bool
	Slots       []SlotRange
	// Migrating maps a slot to the node ID it is migrating to; Importing to the node it comes from.
	Migrating map[int]string
	Importing map[int]string
}

// Addr is "ip:port", or "" for a node without address.
func (n Node) Addr() string {
	if n.IP == "" {
		return ""
	}
	return net.JoinHostPort(n.IP, strconv.Itoa(n.Port))
}

// IsMaster reports whether the node has the master flag.
func (n Node) IsMaster() bool { return n.Flags.Has(FlagMaster) }

// IsReplica reports whether the node has the slave flag.
func (n Node) IsReplica() bool { return n.Flags.Has(FlagReplica) }

// Failing reports whether the node is flagged fail or fail? or has no address.
func (n Node) Failing() bool {
	return n.Flags.Has(FlagFail) || n.Flags.Has(FlagPFail) || n.Flags.Has(FlagNoAddr)
}

// SlotCount is the number of slots the node serves.
func (n Node) SlotCount() int {
	c := 0
	for _, r := range n.Slots {
		c += r.Len()
	}
	return c
}

// ParseClusterNodes parses the output of CLUSTER NODES. It accepts the formats of Redis 3 to 7
// (with or without the cluster bus port and hostname) and lines with the address field missing,
// as in outputs where addresses were removed by hand. Empty lines are skipped.
func ParseClusterNodes(text string) ([]Node, error) {
	var nodes []Node
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		n, err := parseNodeLine(line)
		if err != nil {
			return nil, fmt.Errorf("cluster nodes line %d: %w", i+1, err)
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}

func parseNodeLine(line string) (Node, error) {
	f := strings.Fields(line)
	if len(f) < 2 {
		return Node{}, fmt.Errorf("too few fields in %q", line)
	}
	var n Node
	n.ID = f[0]
	if !validID(n.ID) {
		return Node{}, fmt.Errorf("bad node id %q", n.ID)
	}
	rest := f[1:]
	// The address field is missing when the second field is already the flags.
	if _, ok := parseFlags(rest[0]); !ok || strings.ContainsAny(rest[0], ":@") {
		if err := n.parseAddr(rest[0]); err != nil {
			return Node{}, err
		}
		rest = rest[1:]
	}
	if len(rest) < 6 {
		return Node{}, fmt.Errorf("too few fields in %q", line)
	}
	flags, ok := parseFlags(rest[0])
	if !ok {
		return Node{}, fmt.Errorf("bad flags %q", rest[0])
	}
	n.Flags = flags
	if rest[1] != "-" {
		if !validID(rest[1]) {
			return Node{}, fmt.Errorf("bad master id %q", rest[1])
		}
		n.MasterID = rest[1]
	}
	var err error
	if n.PingSent, err = strconv.ParseInt(rest[2], 10, 64); err != nil {
		return Node{}, fmt.Errorf("bad ping-sent %q", rest[2])
	}
	if n.PongRecv, err = strconv.ParseInt(rest[3], 10, 64); err != nil {
		return Node{}, fmt.Errorf("bad pong-recv %q", rest[3])
	}
	if n.ConfigEpoch, err = strconv.ParseInt(rest[4], 10, 64); err != nil {
		return Node{}, fmt.Errorf("bad config-epoch %q", rest[4])
	}
	switch rest[5] {
	case "connected":
		n.Connected = true
	case "disconnected":
	default:
		return Node{}, fmt.Errorf("bad link-state %q", rest[5])
	}
	for _, s := range rest[6:] {
		if err := n.parseSlot(s); err != nil {
			return Node{}, err
		}
	}
	n.Slots = mergeRanges(n.Slots)
	return n, nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func parseFlags(s string) (Flags, bool) {
	if s == "noflags" {
		return 0, true
	}
	var fs Flag
	for _, p := range strings.Split(s, ",") {
		found := false
		for _, n := range flagNames {
			if p == n.name {
				fs |= n.flag
				found = true
				break
			}
		}
		if !found {
			return 0, false
		}
	}
	return Flags(fs), true
}

func (n *Node) parseAddr(s string) error {
	if i := strings.IndexByte(s, ','); i >= 0 {
		n.Hostname = s[i+1:]
		s = s[:i]
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		cp, err := strconv.Atoi(s[i+1:])
		if err != nil || cp < 0 || cp > 65535 {
			return fmt.Errorf("bad cluster bus port in %q", s)
		}
		n.CPort = cp
		s = s[:i]
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return fmt.Errorf("bad address %q", s)
	}
	p, err := strconv.Atoi(s[i+1:])
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("bad port in %q", s)
	}
	n.Port = p
	n.IP = strings.TrimSuffix(strings.TrimPrefix(s[:i], "["), "]")
	return nil
}

func (n *Node) parseSlot(s string) error {
	if strings.HasPrefix(s, "[") {
		body := strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
		if i := strings.Index(body, "->-"); i >= 0 {
			slot, err := parseSlotNum(body[:i])
			if err != nil {
				return err
			}
			if n.Migrating == nil {
				n.Migrating = map[int]string{}
			}
			n.Migrating[slot] = body[i+3:]
			return nil
		}
		if i := strings.Index(body, "-<-"); i >= 0 {
			slot, err := parseSlotNum(body[:i])
			if err != nil {
				return err
			}
			if n.Importing == nil {
				n.Importing = map[int]string{}
			}
			n.Importing[slot] = body[i+3:]
			return nil
		}
		return fmt.Errorf("bad slot state %q", s)
	}
	a, b, isRange := strings.Cut(s, "-")
	start, err := parseSlotNum(a)
	if err != nil {
		return err
	}
	end := start
	if isRange {
		if end, err = parseSlotNum(b); err != nil {
			return err
		}
	}
	if end < start {
		return fmt.Errorf("bad slot range %q", s)
	}
	n.Slots = append(n.Slots, SlotRange{start, end})
	return nil
}

func parseSlotNum(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v >= NumSlots {
		return 0, fmt.Errorf("bad slot %q", s)
	}
	return v, nil
}

// mergeRanges sorts ranges and joins adjacent or overlapping ones.
func mergeRanges(rs []SlotRange) []SlotRange {
	if len(rs) < 2 {
		return rs
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Start < rs[j].Start })
	out := rs[:1]
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if r.Start <= last.End+1 {
			if r.End > last.End {
				last.End = r.End
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// ParseInfo parses the "key:value" lines of INFO or CLUSTER INFO.
func ParseInfo(text string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// SplitSlots divides the 16384 slots into n contiguous ranges the way redis-cli does
// (0-5460, 5461-10922, 10923-16383 for three masters).
func SplitSlots(n int) []SlotRange {
	if n <= 0 {
		return nil
	}
	per := float64(NumSlots) / float64(n)
	out := make([]SlotRange, 0, n)
	first, cursor := 0, 0.0
	for i := 0; i < n; i++ {
		last := int(cursor + per - 1 + 0.5)
		if last > NumSlots-1 || i == n-1 {
			last = NumSlots - 1
		}
		if last < first {
			last = first
		}
		out = append(out, SlotRange{first, last})
		first = last + 1
		cursor += per
	}
	return out
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
