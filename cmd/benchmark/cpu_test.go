package main

import (
	"strings"
	"testing"
)

func TestBusyTicks(t *testing.T) {
	tests := []struct {
		name, stat string
		want       uint64
		wantErr    string
	}{
		{
			name: "user nice system irq softirq count, idle iowait steal guest do not",
			stat: "cpu  100 2 30 5000 70 4 6 9 11 0\ncpu0 50 1 15 2500 35 2 3 4 5 0\nintr 1\n",
			want: 100 + 2 + 30 + 4 + 6,
		},
		{name: "old kernel, 7 fields", stat: "cpu 1 2 3 4 5 6 7\n", want: 1 + 2 + 3 + 6 + 7},
		{name: "too few fields", stat: "cpu 1 2 3\n", wantErr: "has 4 fields"},
		{name: "not a number", stat: "cpu 1 x 3 4 5 6 7\n", wantErr: "cpu field 2"},
		{name: "no cpu line", stat: "intr 1\n", wantErr: "no cpu line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := busyTicks(strings.NewReader(tt.stat))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("busyTicks = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
	if got := cpuSeconds(1000, 1250); got != 2.5 {
		t.Errorf("cpuSeconds(1000, 1250) = %v, want 2.5", got)
	}
	if got := cpuSeconds(10, 5); got != 0 {
		t.Errorf("a counter that went back gives %v, want 0", got)
	}
}

// TestReportCPU checks that the report gives each procedure's median CPU time and the lab's
// resting load, and leaves the cell empty for a set measured before CPU was.
func TestReportCPU(t *testing.T) {
	s := sampleSet()
	s.Machine.Cores = 2
	s.RestingLoad = 0.05
	for i := range s.Samples {
		if s.Samples[i].Tool == toolRunbook && s.Samples[i].Op == opFresh {
			s.Samples[i].CPUSeconds = []float64{4.0, 5.0}[s.Samples[i].Round-1]
		}
	}
	old := sampleSet()
	old.Hosts = 10
	md := markdown(Results{Sets: []HostSet{s, old}}, "")
	for _, want := range []string{
		"| fresh install | runbook | 1.10 | 1.00 | 1.20 | 2 | 4.50 |  |",
		"(0.05 cores busy with the cluster up and nothing running)",
		"summed over its\n2 cores",
		"  CPU seconds: 4.00, 5.00\n",
		"| re-run, nothing to change | runbook | 0.20 | 0.20 | 0.20 | 2 |  |  |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	_, ten, _ := strings.Cut(md, "\n## 10 hosts")
	ten, _, _ = strings.Cut(ten, "\n## Chart")
	if ten == "" || strings.Contains(ten, "*CPU s* is") {
		t.Errorf("the 10-host set, measured without CPU, should not explain a CPU column it does not fill")
	}
}

// TestTargetNotesCPU checks that the manual-script goal names both procedures' CPU time and the
// lab's resting load, and says nothing of CPU where none was measured.
func TestTargetNotesCPU(t *testing.T) {
	s := sampleSet()
	s.Machine.Cores = 2
	s.RestingLoad = 0.05
	for i := range s.Samples {
		if s.Samples[i].Op == opFresh && (s.Samples[i].Tool == toolRunbook || s.Samples[i].Tool == toolManual) {
			s.Samples[i].CPUSeconds = map[string]float64{toolRunbook: 3, toolManual: 1.5}[s.Samples[i].Tool]
		}
	}
	notes := map[string]string{}
	for _, tg := range targets(Results{Sets: []HostSet{s}}) {
		notes[tg.Goal] = tg.Note
	}
	want := "runbook used 3.00 CPU s of the machine's 2 cores, the manual procedure 1.50; the lab at rest keeps 0.05 cores busy"
	if n := notes["fresh install, 3 hosts: runbook no slower than the manual script"]; n != want {
		t.Errorf("note = %q, want %q", n, want)
	}
	for _, tg := range targets(Results{Sets: []HostSet{sampleSet()}}) {
		if strings.Contains(tg.Note, "CPU") {
			t.Errorf("%s: a set without CPU times got a CPU note: %q", tg.Goal, tg.Note)
		}
	}
}

// TestReportVersions checks that the machine section gives a version once when every host count
// was measured with it, and per host count when they differ.
func TestReportVersions(t *testing.T) {
	tests := []struct {
		name         string
		three, ten   string
		want, absent string
	}{
		{"same", "runbook 1 (commit a)", "runbook 1 (commit a)", "- runbook: `runbook 1 (commit a)`\n", "(3 hosts)"},
		{"different", "runbook 1 (commit b)", "runbook 1 (commit a)",
			"- runbook: `runbook 1 (commit b)` (3 hosts), `runbook 1 (commit a)` (10 hosts)\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ten := sampleSet(), sampleSet()
			ten.Hosts = 10
			s.Versions = map[string]string{"runbook": tt.three, "redis": "7"}
			ten.Versions = map[string]string{"runbook": tt.ten, "redis": "7"}
			md := markdown(Results{Sets: []HostSet{s, ten}}, "")
			if !strings.Contains(md, tt.want) {
				t.Errorf("report lacks %q", tt.want)
			}
			if !strings.Contains(md, "- redis: `7`\n") {
				t.Errorf("report lacks the redis version, the same for both sets")
			}
			if tt.absent != "" && strings.Contains(md, tt.absent) {
				t.Errorf("report has %q", tt.absent)
			}
		})
	}
}
