package main

import (
	"encoding/xml"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFailoverDone(t *testing.T) {
	const dead = "10.1.0.12"
	tests := []struct {
		name  string
		nodes string
		want  bool
	}{
		{"nothing noticed yet", `
a1 10.1.0.11:6379@16379 myself,master - 0 0 1 connected 0-5460
a2 10.1.0.12:6379@16379 master - 0 0 2 connected 5461-10922
b2 10.1.0.13:6380@16380 slave a2 0 0 2 connected
`, false},
		{"dead master suspected", `
a1 10.1.0.11:6379@16379 myself,master - 0 0 1 connected 0-5460
a2 10.1.0.12:6379@16379 master,fail? - 0 0 2 disconnected 5461-10922
`, false},
		{"dead master failed, slots not yet taken over", `
a1 10.1.0.11:6379@16379 myself,master - 0 0 1 connected 0-5460
a2 10.1.0.12:6379@16379 master,fail - 0 0 2 disconnected 5461-10922
`, false},
		{"failed over, a replica on the dead host only suspected", `
a1 10.1.0.11:6379@16379 myself,master - 0 0 1 connected 0-5460
a2 10.1.0.12:6379@16379 master,fail - 0 0 2 disconnected
b2 10.1.0.13:6380@16380 master - 0 0 3 connected 5461-10922
c1 10.1.0.12:6380@16380 slave,fail? a1 0 0 1 disconnected
`, false},
		{"failed over", `
a1 10.1.0.11:6379@16379 myself,master - 0 0 1 connected 0-5460
a2 10.1.0.12:6379@16379 master,fail - 0 0 2 disconnected
b2 10.1.0.13:6380@16380 master - 0 0 3 connected 5461-10922
c1 10.1.0.12:6380@16380 slave,fail a1 0 0 1 disconnected
`, true},
		{"dead host unknown to the cluster", `
a1 10.1.0.11:6379@16379 myself,master - 0 0 1 connected 0-16383
`, false},
		{"empty output", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := failoverDone(tt.nodes, dead); got != tt.want {
				t.Errorf("failoverDone = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRecap(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    recap
		wantErr bool
	}{
		{"last line", `{"type":"start"}
{"type":"result","summary":"recap of nothing"}
{"type":"recap","ok":47,"changed":0,"failed":0,"skipped":7,"duration_ms":385}
`, recap{Type: "recap", OK: 47, DurationMS: 385}, false},
		{"failures", `{"type":"recap","ok":1,"changed":2,"failed":3,"duration_ms":9}`, recap{Type: "recap", OK: 1, Changed: 2, Failed: 3, DurationMS: 9}, false},
		{"no recap", "Error: Cannot read file\n", recap{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseRecap(tt.out)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("recap (-want +got):\n%s", diff)
			}
		})
	}
}

func TestChangedResults(t *testing.T) {
	tests := []struct {
		out, want string
	}{
		{`{"type":"result","task":"a","host":"node1","status":"ok","summary":"fine"}
{"type":"result","task":"redis_rolling_restart","host":"node1","status":"changed","summary":"restarted 2 instances"}
not json
{"type":"result","task":"redis_start[b]","host":"node7","status":"changed","summary":"started redis-cluster@b"}
{"type":"recap","changed":2}
`, "node1 redis_rolling_restart: restarted 2 instances; node7 redis_start[b]: started redis-cluster@b"},
		{`{"type":"recap","changed":0}`, "no changed result in the output"},
	}
	for _, tt := range tests {
		if got := changedResults(tt.out); got != tt.want {
			t.Errorf("changedResults(%q) = %q, want %q", tt.out, got, tt.want)
		}
	}
}

func TestAnsibleChanged(t *testing.T) {
	tests := []struct {
		out  string
		want int
	}{
		{"TASK [x] changed=9\nPLAY RECAP ***\nnode1 : ok=7 changed=3 unreachable=0\nnode2 : ok=4 changed=2\n", 5},
		{"PLAY RECAP ***\nnode1 : ok=7 changed=0\nnode2 : ok=4 changed=0\n", 0},
		{"ERROR! no play\n", -1},
	}
	for _, tt := range tests {
		if got := ansibleChanged(tt.out); got != tt.want {
			t.Errorf("ansibleChanged(%q) = %d, want %d", tt.out, got, tt.want)
		}
	}
}

func TestSummarise(t *testing.T) {
	tests := []struct {
		in   []float64
		want stat
	}{
		{nil, stat{}},
		{[]float64{3, 1, 2}, stat{Median: 2, Min: 1, Max: 3, N: 3}},
		{[]float64{4, 1, 3, 2}, stat{Median: 2.5, Min: 1, Max: 4, N: 4}},
	}
	for _, tt := range tests {
		if got := summarise(tt.in); got != tt.want {
			t.Errorf("summarise(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseHosts(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"3,10,30", []int{3, 10, 30}, false},
		{" 3 , 30 ", []int{3, 30}, false},
		{"2", nil, true},
		{"x", nil, true},
		{"", nil, true},
	}
	for _, tt := range tests {
		got, err := parseHosts(tt.in)
		if (err != nil) != tt.wantErr || !cmp.Equal(got, tt.want) {
			t.Errorf("parseHosts(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestResultsWith(t *testing.T) {
	r := Results{Sets: []HostSet{{Hosts: 3, Runs: 5}, {Hosts: 30, Runs: 1}}}
	r = r.with(HostSet{Hosts: 10, Runs: 2})
	r = r.with(HostSet{Hosts: 30, Runs: 3})
	var got [][2]int
	for _, s := range r.Sets {
		got = append(got, [2]int{s.Hosts, s.Runs})
	}
	if diff := cmp.Diff([][2]int{{3, 5}, {10, 2}, {30, 3}}, got); diff != "" {
		t.Errorf("sets (-want +got):\n%s", diff)
	}
}

// sampleSet is a 3-host set where runbook meets every 3-host target but the re-run ratio.
func sampleSet() HostSet {
	s := HostSet{Hosts: 3, Runs: 2}
	add := func(tool, op string, secs ...float64) {
		for i, x := range secs {
			s.Samples = append(s.Samples, Sample{Hosts: 3, Tool: tool, Op: op, Round: i + 1, Seconds: x, MaxRSSKiB: 20000})
		}
	}
	add(toolRunbook, opFresh, 1.0, 1.2)
	add(toolRunbook, opNoop, 0.2, 0.2)
	add(toolRunbook, opReplace, 4, 4)
	add(toolRunbook, opFloor, 0.1, 0.14)
	add(toolOpenSSH, opFloor, 0.08, 0.1)
	add(toolRedis, opFreshFloor, 0.5, 0.7)
	add(ansibleTool(5), opFresh, 10, 12)
	add(ansibleTool(5), opNoop, 5, 5)
	add(toolManual, opFresh, 2, 2)
	return s
}

func TestTargets(t *testing.T) {
	got := map[string]string{}
	for _, tg := range targets(Results{Sets: []HostSet{sampleSet()}}) {
		got[tg.Goal] = tg.Verdict
	}
	want := map[string]string{
		"fresh install, 3 hosts: runbook ≤ 0.15 × Ansible":                               "met",
		"fresh install, 3 hosts: runbook no slower than the manual script":               "met",
		"fresh install, 3 hosts: runbook's time beyond Redis's floor ≤ 0.15 × Ansible's": "met",
		"re-run, 3 hosts: runbook ≤ 0.03 × Ansible":                                      "**missed**",
		"re-run, 3 hosts: < 0.3 s":                                                       "met",
		"node replacement, 3 hosts: < 5 s":                                               "met",
		"fresh install, 30 hosts: < 10 s":                                                notMeasured,
		"re-run, 30 hosts: < 1 s":                                                        notMeasured,
		"peak RSS of runbook, 30 hosts: < 50 MB":                                         notMeasured,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("verdicts (-want +got):\n%s", diff)
	}
	notes := map[string]string{}
	for _, tg := range targets(Results{Sets: []HostSet{sampleSet()}}) {
		notes[tg.Goal] = tg.Note
	}
	if n := notes["re-run, 3 hosts: < 0.3 s"]; !strings.Contains(n, "is 0.12 s") || !strings.Contains(n, "OpenSSH's `ssh HOST true` to every host at once takes 0.09 s") {
		t.Errorf("the re-run goal's note should give the floor's median and OpenSSH's: %q", n)
	}
	if n := notes["fresh install, 3 hosts: runbook ≤ 0.15 × Ansible"]; !strings.Contains(n, "0.15 × Ansible is 1.65 s") ||
		!strings.Contains(n, "serves 0.60 s after its start") {
		t.Errorf("the fresh goal's note: %q", n)
	}
}

func TestBeyondFloor(t *testing.T) {
	with := func(tool, op string, secs ...float64) HostSet {
		s := sampleSet()
		var kept []Sample
		for _, x := range s.Samples {
			if x.Tool != tool || x.Op != op {
				kept = append(kept, x)
			}
		}
		for i, x := range secs {
			kept = append(kept, Sample{Hosts: 3, Tool: tool, Op: op, Round: i + 1, Seconds: x})
		}
		s.Samples = kept
		return s
	}
	tests := []struct {
		name              string
		set               HostSet
		measured, verdict string
	}{
		// runbook 1.1 s, Ansible 11 s, the floor 0.6 s: 0.5 / 10.4
		{"met", sampleSet(), "0.048 × (0.50 s / 10.40 s)", "met"},
		{"missed", with(toolRunbook, opFresh, 3, 3), "0.231 × (2.40 s / 10.40 s)", "**missed**"},
		{"no floor", with(toolRedis, opFreshFloor), notMeasured, notMeasured},
		{"Ansible within the floor", with(ansibleTool(5), opFresh, 0.5, 0.5), notMeasured, notMeasured},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := beyondFloor(tt.set, true)
			if got.Measured != tt.measured || got.Verdict != tt.verdict {
				t.Errorf("got %q, %q; want %q, %q", got.Measured, got.Verdict, tt.measured, tt.verdict)
			}
		})
	}
	if got := beyondFloor(HostSet{}, false); got.Verdict != notMeasured {
		t.Errorf("without a 3-host set: %q", got.Verdict)
	}
}

func TestChartIsWellFormedSVG(t *testing.T) {
	s10 := sampleSet()
	s10.Hosts = 10
	svg := chartSVG(Results{Sets: []HostSet{sampleSet(), s10}})
	dec := xml.NewDecoder(strings.NewReader(svg))
	polylines := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	// runbook fresh and re-run, Ansible forks 5 fresh and re-run (also forks = hosts at <= 5
	// hosts), manual fresh
	if polylines != 7 {
		t.Errorf("chart has %d lines, want 7", polylines)
	}
}

func TestWaits(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := &trace{progress: []progress{
		{task: "c", host: "node1", what: "waiting for sync", at: at(0)},
		{task: "s", host: "node2", what: "waiting for port", at: at(10)},
		{task: "c", host: "node1", what: "waiting for sync", at: at(25)}, // the same wait again
		{task: "c", host: "node1", what: "waiting for failover", at: at(400)},
		{task: "s", host: "node2", what: "", at: at(60)},
		{task: "c", host: "node1", what: "", at: at(1000)},
	}}
	got := tr.waits()
	want := []wait{
		{task: "c", host: "node1", what: "waiting for sync", dur: 400 * time.Millisecond},
		{task: "s", host: "node2", what: "waiting for port", dur: 50 * time.Millisecond},
		{task: "c", host: "node1", what: "waiting for failover", dur: 600 * time.Millisecond},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(wait{})); diff != "" {
		t.Errorf("waits (-want +got):\n%s", diff)
	}
	if s := elapsedRe.ReplaceAllString("waiting for node2:6379 to sync (12.3s)", ""); s != "waiting for node2:6379 to sync" {
		t.Errorf("elapsed not stripped: %q", s)
	}
}
