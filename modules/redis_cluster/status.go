package redis_cluster

import (
	"context"
	"fmt"
	"html"
	"io"
	"sort"
	"strings"

	"github.com/runbook/runbook/engine"
)

// Status implements engine.StatusReporter: it observes every instance and draws the live layout.
// It only reads.
func (c *Config) Status(ctx context.Context, t *engine.Target, w io.Writer, opts engine.StatusOptions) error {
	s, err := c.open(ctx, t)
	if err != nil {
		return err
	}
	defer s.c.close()
	top := Analyze(s.insts, s.c.observeAll(ctx))
	v := BuildView(top, c.replicas())
	switch opts.Format {
	case "", "text":
		return v.WriteText(w, opts.Color)
	case "dot":
		return v.WriteDot(w)
	case "svg":
		return v.WriteSVG(w)
	}
	return fmt.Errorf("status format %q is not text, dot or svg", opts.Format)
}

// Cell is the state of one declared instance in a status view.
type Cell struct {
	Inst  Instance
	Role  string // master, replica, fresh, unreachable, disabled, foreign, alone
	Slots []SlotRange
	// Master is the name of the master a replica follows.
	Master   string
	MasterIx int
	LinkUp   bool
	Keys     int64
	Bad      bool
}

// View is the live layout of the cluster, ready to render.
type View struct {
	Hosts    []string
	Ports    []int
	Cells    map[string]*Cell // by instance name
	Order    []string
	State    string
	Covered  int
	Problems []string
}

// BuildView derives the status view and the layout violations from a topology. It is pure.
func BuildView(top *Topology, replicas int) *View {
	v := &View{Cells: map[string]*Cell{}, State: "no cluster"}
	seenHost, seenPort := map[string]bool{}, map[int]bool{}
	byInst := make([]*Cell, len(top.Instances))
	for i, inst := range top.Instances {
		if !seenHost[inst.Host] {
			seenHost[inst.Host] = true
			v.Hosts = append(v.Hosts, inst.Host)
		}
		if !seenPort[inst.Port] {
			seenPort[inst.Port] = true
			v.Ports = append(v.Ports, inst.Port)
		}
		c := &Cell{Inst: inst, MasterIx: -1}
		o := &top.Obs[i]
		c.Keys = o.Keys
		c.LinkUp = o.LinkUp
		byInst[i] = c
		v.Cells[inst.Name()] = c
		v.Order = append(v.Order, inst.Name())
	}
	sort.Ints(v.Ports)
	mark := func(i int, format string, args ...any) {
		byInst[i].Bad = true
		v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
	}
	for _, i := range top.Unreachable {
		byInst[i].Role = "unreachable"
		if top.Obs[i].AuthFailed() {
			mark(i, "%s", top.Obs[i].Err.Error())
			continue
		}
		mark(i, "%s is unreachable", top.Instances[i].Name())
	}
	for _, i := range top.Disabled {
		byInst[i].Role = "disabled"
		mark(i, "%s has cluster support disabled", top.Instances[i].Name())
	}
	for _, i := range top.Fresh {
		byInst[i].Role = "fresh"
		if top.Exists {
			mark(i, "%s is not in the cluster", top.Instances[i].Name())
		}
	}
	for _, i := range top.Foreign {
		byInst[i].Role = "foreign"
		mark(i, "%s belongs to another cluster", top.Instances[i].Name())
	}
	for _, i := range top.Alone {
		byInst[i].Role = "alone"
		byInst[i].Slots = top.Obs[i].Myself().Slots
		mark(i, "%s holds slots but is not in the cluster", top.Instances[i].Name())
	}
	if !top.Exists {
		return v
	}
	v.State = "ok"
	for _, id := range top.IDs {
		m := top.Members[id]
		if m.Live {
			if st := top.Obs[m.Inst].ClusterInfo["cluster_state"]; st != "ok" {
				v.State = st
			}
		}
	}
	for s := 0; s < NumSlots; s++ {
		if top.Owner(s) != "" {
			v.Covered++
		}
	}
	if u := top.Uncovered(); len(u) > 0 {
		v.Problems = append(v.Problems, fmt.Sprintf("slots %s are not covered", FormatRanges(u)))
	}
	var shards []ShardLayout
	shardOf := map[string]int{}
	for _, id := range top.Masters() {
		m := top.Members[id]
		if !m.Live {
			v.Problems = append(v.Problems, fmt.Sprintf("slots %s are owned by %s, which is down", FormatRanges(m.Slots), top.Name(id)))
			continue
		}
		shardOf[id] = len(shards)
		shards = append(shards, ShardLayout{Master: m.Inst})
	}
	for _, id := range top.IDs {
		m := top.Members[id]
		if !m.Live {
			if m.Dead {
				v.Problems = append(v.Problems, fmt.Sprintf("%s is still known to the cluster (%s)", top.Name(id), m.Flags))
			}
			continue
		}
		c := byInst[m.Inst]
		if m.Master {
			c.Role = "master"
			c.Slots = m.Slots
			continue
		}
		c.Role = "replica"
		if mm := top.Members[m.MasterID]; mm != nil && mm.Inst >= 0 {
			c.Master = top.Instances[mm.Inst].Name()
			c.MasterIx = mm.Inst
		} else {
			c.Master = top.Name(m.MasterID)
		}
		if !c.LinkUp {
			mark(m.Inst, "%s is not synced with its master %s", top.Instances[m.Inst].Name(), c.Master)
		}
		if s, ok := shardOf[m.MasterID]; ok {
			shards[s].Replicas = append(shards[s].Replicas, m.Inst)
		}
	}
	// Anti-affinity: replicas beside their master, siblings sharing a host, hosts with too many
	// masters.
	count := map[string]int{}
	for _, inst := range top.Instances {
		count[inst.Host]++
	}
	quota := masterQuota(v.Hosts, count, len(top.Instances), len(shards), nil)
	for _, p := range Violations(top.Instances, shards, quota, replicas) {
		v.Problems = append(v.Problems, p)
	}
	perHost := map[string][]int{}
	for _, sh := range shards {
		h := top.Instances[sh.Master].Host
		perHost[h] = append(perHost[h], sh.Master)
		for _, r := range sh.Replicas {
			if top.Instances[r].Host == h {
				byInst[r].Bad = true
				byInst[sh.Master].Bad = true
			}
		}
	}
	for h, ms := range perHost {
		if len(ms) > quota[h] {
			for _, i := range ms {
				byInst[i].Bad = true
			}
		}
	}
	return v
}

const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31;1m"
	ansiGreen  = "\x1b[32;1m"
	ansiYellow = "\x1b[33m"
	ansiDim    = "\x1b[2m"
)

func (c *Cell) text() string {
	switch c.Role {
	case "master":
		return "master " + FormatRanges(c.Slots)
	case "replica":
		link := "synced"
		if !c.LinkUp {
			link = "NOT SYNCED"
		}
		return fmt.Sprintf("replica of %s, %s", c.Master, link)
	case "alone":
		return "alone " + FormatRanges(c.Slots)
	case "":
		return "?"
	}
	return c.Role
}

func (c *Cell) colour() string {
	switch {
	case c.Bad && c.Role == "replica" && !c.LinkUp:
		return ansiYellow
	case c.Bad:
		return ansiRed
	case c.Role == "master":
		return ansiGreen
	case c.Role == "fresh":
		return ansiDim
	}
	return ""
}

// WriteText renders the grid: hosts as columns, ports as rows, then the problems. Colours only
// when color is set; otherwise problems are marked with "!".
func (v *View) WriteText(w io.Writer, color bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "redis cluster: state %s, %d/%d slots covered\n\n", v.State, v.Covered, NumSlots)
	header := append([]string{"port"}, v.Hosts...)
	rows := [][]string{}
	cells := [][]*Cell{}
	for _, p := range v.Ports {
		row := []string{fmt.Sprint(p)}
		crow := []*Cell{nil}
		for _, h := range v.Hosts {
			c := v.Cells[fmt.Sprintf("%s:%d", h, p)]
			if c == nil {
				row = append(row, "")
				crow = append(crow, nil)
				continue
			}
			t := c.text()
			if c.Bad && !color {
				t = "! " + t
			}
			row = append(row, t)
			crow = append(crow, c)
		}
		rows = append(rows, row)
		cells = append(cells, crow)
	}
	width := make([]int, len(header))
	for i, h := range header {
		width[i] = len(h)
	}
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	for i, h := range header {
		fmt.Fprintf(&b, "%-*s", width[i]+2, h)
	}
	b.WriteString("\n")
	for k, r := range rows {
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]+2-len(c))
			if color && cells[k][i] != nil && cells[k][i].colour() != "" {
				b.WriteString(cells[k][i].colour() + c + ansiReset + pad)
			} else {
				b.WriteString(c + pad)
			}
		}
		b.WriteString("\n")
	}
	if len(v.Problems) == 0 {
		b.WriteString("\nlayout: ok\n")
	} else {
		b.WriteString("\nlayout problems:\n")
		for _, p := range v.Problems {
			if color {
				fmt.Fprintf(&b, "  %s!%s %s\n", ansiRed, ansiReset, p)
			} else {
				fmt.Fprintf(&b, "  ! %s\n", p)
			}
		}
	}
	lines := strings.Split(b.String(), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	_, err := io.WriteString(w, strings.Join(lines, "\n"))
	return err
}

// WriteDot renders a Graphviz diagram: one cluster per host, an edge from each replica to its master.
func (v *View) WriteDot(w io.Writer) error {
	var b strings.Builder
	b.WriteString("digraph redis_cluster {\n  rankdir=TB;\n  node [shape=box, style=filled, fontname=\"monospace\"];\n")
	for hi, h := range v.Hosts {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%q;\n", hi, h)
		for _, name := range v.Order {
			c := v.Cells[name]
			if c.Inst.Host != h {
				continue
			}
			fill := "white"
			switch {
			case c.Bad:
				fill = "salmon"
			case c.Role == "master":
				fill = "palegreen"
			case c.Role == "replica":
				fill = "lightblue"
			}
			fmt.Fprintf(&b, "    %q [label=%q, fillcolor=%s];\n", name, name+"\n"+c.text(), fill)
		}
		b.WriteString("  }\n")
	}
	for _, name := range v.Order {
		c := v.Cells[name]
		if c.Role == "replica" && c.MasterIx >= 0 {
			style := ""
			if !c.LinkUp {
				style = ", style=dashed, color=red"
			}
			fmt.Fprintf(&b, "  %q -> %q [label=\"replicates\"%s];\n", name, c.Master, style)
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSVG renders a self-contained SVG: a column per host, a box per instance, a line from each
// replica to its master; problems in red.
func (v *View) WriteSVG(w io.Writer) error {
	const colW, boxW, boxH, gap, top = 260, 230, 44, 16, 60
	rows := 0
	pos := map[string][2]int{}
	for hi, h := range v.Hosts {
		r := 0
		for _, name := range v.Order {
			if v.Cells[name].Inst.Host != h {
				continue
			}
			pos[name] = [2]int{20 + hi*colW, top + r*(boxH+gap)}
			r++
		}
		rows = max(rows, r)
	}
	width := 40 + len(v.Hosts)*colW
	height := top + rows*(boxH+gap) + 30 + 18*len(v.Problems)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="20" y="20" font-size="14">redis cluster: state %s, %d/%d slots covered</text>`+"\n", html.EscapeString(v.State), v.Covered, NumSlots)
	for hi, h := range v.Hosts {
		x := 20 + hi*colW
		fmt.Fprintf(&b, `<rect x="%d" y="30" width="%d" height="%d" fill="#f4f4f4" stroke="#999"/>`+"\n", x-8, boxW+16, rows*(boxH+gap)+30)
		fmt.Fprintf(&b, `<text x="%d" y="48" font-weight="bold">%s</text>`+"\n", x, html.EscapeString(h))
	}
	for _, name := range v.Order {
		c := v.Cells[name]
		if c.Role != "replica" || c.MasterIx < 0 {
			continue
		}
		a, m := pos[name], pos[c.Master]
		colour := "#4a7ab5"
		dash := ""
		if !c.LinkUp {
			colour, dash = "#d33", ` stroke-dasharray="5,4"`
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-opacity="0.5"%s/>`+"\n", a[0]+boxW/2, a[1]+boxH/2, m[0]+boxW/2, m[1]+boxH/2, colour, dash)
	}
	for _, name := range v.Order {
		c := v.Cells[name]
		p := pos[name]
		fill, stroke := "#ffffff", "#666"
		switch c.Role {
		case "master":
			fill = "#c8f0c8"
		case "replica":
			fill = "#d8e6f8"
		case "unreachable", "foreign", "disabled", "alone":
			fill = "#f8d0d0"
		}
		if c.Bad {
			stroke = "#d33"
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" rx="4" fill="%s" stroke="%s" stroke-width="2"/>`+"\n", p[0], p[1], boxW, boxH, fill, stroke)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", p[0]+6, p[1]+17, html.EscapeString(name))
		fmt.Fprintf(&b, `<text x="%d" y="%d">%s</text>`+"\n", p[0]+6, p[1]+34, html.EscapeString(c.text()))
	}
	y := top + rows*(boxH+gap) + 24
	for _, p := range v.Problems {
		fmt.Fprintf(&b, `<text x="20" y="%d" fill="#d33">! %s</text>`+"\n", y, html.EscapeString(p))
		y += 18
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
