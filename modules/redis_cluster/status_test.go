package redis_cluster

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func TestStatusViewHealthy(t *testing.T) {
	insts := grid(3, 3)
	top := Analyze(insts, world{insts: insts, nodes: healthy3x3()}.observations(t))
	v := BuildView(top, 2)
	if len(v.Problems) > 0 {
		t.Fatalf("problems in a perfect layout: %v", v.Problems)
	}
	var b strings.Builder
	if err := v.WriteText(&b, false); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"state ok, 16384/16384 slots covered",
		"port  node1",
		"master 0-5460",
		"replica of node3:6379, synced",
		"layout: ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("ANSI colour without Color:\n%s", out)
	}
}

func TestStatusViewViolations(t *testing.T) {
	insts := grid(3, 3)
	// After node3's failover: node1 holds two masters, node3 is down.
	obs := world{insts: insts, nodes: afterNode3Failover(), down: []int{6, 7, 8}}.observations(t)
	obs[5].LinkUp = false
	v := BuildView(Analyze(insts, obs), 2)
	var plain, colour strings.Builder
	if err := v.WriteText(&plain, false); err != nil {
		t.Fatal(err)
	}
	if err := v.WriteText(&colour, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"! node3:6379 is unreachable",
		"! node2:6381 is not synced with its master node1:6380",
		"! host node1 holds 2 masters, its share is 1",
		"! master node1:6379 has 1 replicas, wants 2",
		"! master node1:6380",
	} {
		if !strings.Contains(plain.String(), want) {
			t.Errorf("missing %q in:\n%s", want, plain.String())
		}
	}
	if !strings.Contains(colour.String(), ansiRed) || !strings.Contains(colour.String(), ansiYellow) {
		t.Errorf("no colours with Color:\n%s", colour.String())
	}
	t.Logf("\n%s", plain.String())
}

func TestStatusDiagrams(t *testing.T) {
	insts := grid(3, 3)
	v := BuildView(Analyze(insts, world{insts: insts, nodes: afterNode3Failover(), down: []int{6, 7, 8}}.observations(t)), 2)
	var dot strings.Builder
	if err := v.WriteDot(&dot); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"digraph redis_cluster {", `label="node2"`, `"node2:6380" -> "node1:6379"`, "fillcolor=salmon"} {
		if !strings.Contains(dot.String(), want) {
			t.Errorf("dot lacks %q:\n%s", want, dot.String())
		}
	}
	var svg strings.Builder
	if err := v.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(strings.NewReader(svg.String()))
	rects := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("svg is not well-formed XML: %v\n%s", err, svg.String())
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "rect" {
			rects++
		}
	}
	if rects != 3+9 {
		t.Errorf("svg has %d rects, want 3 host columns + 9 instances", rects)
	}
}
