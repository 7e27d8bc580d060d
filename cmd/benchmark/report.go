package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// Machine describes the computer the numbers come from.
type Machine struct {
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryMB int64  `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kb); err == nil {
				m.MemoryMB = kb / 1024
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// versions records the first line of the version of each program measured or used.
func versions(cfg options) map[string]string {
	v := map[string]string{}
	probe := func(key string, argv ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			return
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		v[key] = line
	}
	if cfg.tools[toolAnsible] {
		probe("ansible", "ansible-playbook", "--version")
	}
	probe("runbook", cfg.runbook, "version")
	if cfg.commit != "" {
		v["runbook"] += " (commit " + cfg.commit + ")"
	} else {
		probe("commit", "git", "rev-parse", "--short", "HEAD")
		if c := v["commit"]; c != "" {
			v["runbook"] += " (commit " + c + ")"
			delete(v, "commit")
		}
	}
	probe("redis", "redis-server", "--version")
	probe("openssh", "ssh", "-V")
	return v
}

// stat summarises the samples of one procedure.
type stat struct {
	Median, Min, Max float64
	N                int
}

func summarise(xs []float64) stat {
	if len(xs) == 0 {
		return stat{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	st := stat{Min: s[0], Max: s[len(s)-1], N: len(s)}
	if len(s)%2 == 1 {
		st.Median = s[len(s)/2]
	} else {
		st.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return st
}

// key names one procedure's operation.
type key struct{ Tool, Op string }

// seconds groups a set's samples by procedure, in round order.
func (s HostSet) seconds() map[key][]float64 {
	out := map[key][]float64{}
	for _, x := range s.Samples {
		k := key{x.Tool, x.Op}
		out[k] = append(out[k], x.Seconds)
	}
	return out
}

// cpu groups a set's measured CPU times (Sample.CPUSeconds) by procedure, in round order.
func (s HostSet) cpu() map[key][]float64 {
	out := map[key][]float64{}
	for _, x := range s.Samples {
		if x.CPUSeconds > 0 {
			k := key{x.Tool, x.Op}
			out[k] = append(out[k], x.CPUSeconds)
		}
	}
	return out
}

// cpuCell is the median CPU time of a procedure for a table cell, or "" when not measured.
func (s HostSet) cpuCell(k key) string {
	xs := s.cpu()[k]
	if len(xs) == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f", summarise(xs).Median)
}

// keys lists the set's procedures in report order.
func (s HostSet) keys() []key {
	seen := map[key]bool{}
	var ks []key
	for _, x := range s.Samples {
		k := key{x.Tool, x.Op}
		if !seen[k] {
			seen[k] = true
			ks = append(ks, k)
		}
	}
	opOrder := map[string]int{opFresh: 0, opNoop: 1, opKeeperStart: 2, opKept: 3, opFloor: 4, opFreshFloor: 5, opReplace: 6}
	toolOrder := func(t string) int {
		switch {
		case t == toolRunbook:
			return 0
		case t == ansibleTool(5):
			return 1
		case strings.HasPrefix(t, toolAnsible):
			return 2
		default:
			return 3
		}
	}
	sort.SliceStable(ks, func(i, j int) bool {
		if opOrder[ks[i].Op] != opOrder[ks[j].Op] {
			return opOrder[ks[i].Op] < opOrder[ks[j].Op]
		}
		return toolOrder(ks[i].Tool) < toolOrder(ks[j].Tool)
	})
	return ks
}

// median returns the median of a procedure at the set's host count, and whether it was measured.
func (s HostSet) median(tool, op string) (float64, bool) {
	xs := s.seconds()[key{tool, op}]
	if len(xs) == 0 {
		return 0, false
	}
	return summarise(xs).Median, true
}

// peakRSS is the largest peak RSS of runbook over the set, in KiB.
func (s HostSet) peakRSS() int64 {
	var m int64
	for _, x := range s.Samples {
		if x.Tool == toolRunbook && x.MaxRSSKiB > m {
			m = x.MaxRSSKiB
		}
	}
	return m
}

func (r Results) set(hosts int) (HostSet, bool) {
	for _, s := range r.Sets {
		if s.Hosts == hosts {
			return s, true
		}
	}
	return HostSet{}, false
}

var opNames = map[string]string{
	opFresh:   "fresh install",
	opNoop:    "re-run, nothing to change",
	opReplace: "replace a wiped host",
	opFloor:   "floor: one `true` on every host",
	// Redis's own
	opFreshFloor: "floor of a fresh install: a new master's start to cluster_state:ok",
	// the keeper's runs
	opKeeperStart: "re-run with --persist 60s, starting the keeper",
	opKept:        "re-run over kept connections (--persist 60s)",
}

func printSummary(w io.Writer, s HostSet) {
	fmt.Fprintf(w, "== %d hosts: medians of %d runs\n", s.Hosts, s.Runs)
	for _, k := range s.keys() {
		st := summarise(s.seconds()[k])
		ratio := ""
		if k.Tool != toolRunbook {
			if rb, ok := s.median(toolRunbook, k.Op); ok && st.Median > 0 {
				ratio = fmt.Sprintf("  runbook/this = %.3f", rb/st.Median)
			}
		}
		cpu := ""
		if c := s.cpuCell(k); c != "" {
			cpu = ", CPU " + c + " s"
		}
		fmt.Fprintf(w, "   %-32s %-18s %7.2f s (min %.2f, max %.2f, n %d%s)%s\n", opNames[k.Op], k.Tool, st.Median, st.Min, st.Max, st.N, cpu, ratio)
	}
	if s.RestingLoad > 0 {
		fmt.Fprintf(w, "   the lab at rest keeps %.2f cores busy\n", s.RestingLoad)
	}
	if rss := s.peakRSS(); rss > 0 {
		fmt.Fprintf(w, "   runbook peak RSS %.1f MiB\n", float64(rss)/1024)
	}
}

// target is one of the goals and how the measurements compare to it.
type target struct {
	Goal, Measured, Verdict string
	// Note is what else the measurements say about the goal (the lab's floor), or "".
	Note string
}

const notMeasured = "not measured"

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// targets evaluates the goals against the results.
func targets(r Results) []target {
	var ts []target
	s3, ok3 := r.set(3)
	ratioTarget := func(goal, op string, max float64) target {
		t := target{Goal: goal, Measured: notMeasured, Verdict: notMeasured}
		if !ok3 {
			return t
		}
		rb, ok1 := s3.median(toolRunbook, op)
		an, ok2 := s3.median(ansibleTool(5), op)
		if ok1 && ok2 && an > 0 {
			t.Measured = fmt.Sprintf("%.3f × (%.2f s / %.2f s)", rb/an, rb, an)
			t.Verdict = verdict(rb/an <= max)
		}
		return t
	}
	absTarget := func(goal string, s HostSet, ok bool, op string, max float64) target {
		t := target{Goal: goal, Measured: notMeasured, Verdict: notMeasured}
		if !ok {
			return t
		}
		if rb, ok := s.median(toolRunbook, op); ok {
			t.Measured = fmt.Sprintf("%.2f s", rb)
			t.Verdict = verdict(rb < max)
		}
		return t
	}
	fresh := ratioTarget("fresh install, 3 hosts: runbook ≤ 0.15 × Ansible", opFresh, 0.15)
	if an, ok := s3.median(ansibleTool(5), opFresh); ok3 && ok {
		fresh.Note = fmt.Sprintf("0.15 × Ansible is %.2f s; Redis keeps every new master at cluster_state:fail for 2 s after it starts (CLUSTER_WRITABLE_DELAY; and, when it ran that long without slots, for cluster-node-timeout after it got them), so no procedure that waits for cluster_state:ok ends sooner than 2 s after its first redis-server started; the rest is the work on the hosts before the first start (checks, folders, configuration files), bound on this lab by how fast the hosts' shared cores start processes", 0.15*an)
		if fl, ok := s3.median(toolRedis, opFreshFloor); ok {
			fresh.addNote(fmt.Sprintf("measured: a new redis-server given every slot serves %.2f s after its start", fl))
		}
	}
	ts = append(ts, fresh, beyondFloor(s3, ok3))
	manual := target{Goal: "fresh install, 3 hosts: runbook no slower than the manual script", Measured: notMeasured, Verdict: notMeasured}
	if ok3 {
		rb, ok1 := s3.median(toolRunbook, opFresh)
		mn, ok2 := s3.median(toolManual, opFresh)
		if ok1 && ok2 {
			manual.Measured = fmt.Sprintf("%.2f s vs %.2f s (%.2f ×; the script does not wait for replica sync)", rb, mn, rb/mn)
			manual.Verdict = verdict(rb <= mn)
		}
	}
	ts = append(ts, withCPU(manual, s3, ok3, opFresh, toolManual))
	ts = append(ts, withKept(ratioTarget("re-run, 3 hosts: runbook ≤ 0.03 × Ansible", opNoop, 0.03), s3, ok3))
	ts = append(ts, withFloor(absTarget("re-run, 3 hosts: < 0.3 s", s3, ok3, opNoop, 0.3), s3, ok3))
	ts = append(ts, absTarget("node replacement, 3 hosts: < 5 s", s3, ok3, opReplace, 5))
	s30, ok30 := r.set(30)
	ts = append(ts, withCPU(absTarget("fresh install, 30 hosts: < 10 s", s30, ok30, opFresh, 10), s30, ok30, opFresh, toolManual))
	ts = append(ts, withCPU(withKept(withFloor(absTarget("re-run, 30 hosts: < 1 s", s30, ok30, opNoop, 1), s30, ok30), s30, ok30), s30, ok30, opNoop, ""))
	rss := target{Goal: "peak RSS of runbook, 30 hosts: < 50 MB", Measured: notMeasured, Verdict: notMeasured}
	if ok30 && s30.peakRSS() > 0 {
		b := float64(s30.peakRSS()) * 1024
		rss.Measured = fmt.Sprintf("%.1f MB", b/1e6)
		rss.Verdict = verdict(b < 50e6)
	}
	ts = append(ts, rss)
	return ts
}

// beyondFloor is the fresh-install goal measured beyond Redis's floor (opFreshFloor), which every
// procedure waits out: where the floor is above 0.15 × Ansible's time, as on a machine that runs
// Ansible fast, no procedure meets the goal as written, and what tells the tools apart is the
// time each takes beyond the floor.
func beyondFloor(s HostSet, ok bool) target {
	t := target{Goal: "fresh install, 3 hosts: runbook's time beyond Redis's floor ≤ 0.15 × Ansible's", Measured: notMeasured, Verdict: notMeasured}
	if !ok {
		return t
	}
	rb, ok1 := s.median(toolRunbook, opFresh)
	an, ok2 := s.median(ansibleTool(5), opFresh)
	fl, ok3 := s.median(toolRedis, opFreshFloor)
	if !ok1 || !ok2 || !ok3 || an <= fl {
		return t
	}
	t.Measured = fmt.Sprintf("%.3f × (%.2f s / %.2f s)", (rb-fl)/(an-fl), rb-fl, an-fl)
	t.Verdict = verdict((rb-fl)/(an-fl) <= 0.15)
	t.Note = fmt.Sprintf("the floor: a new master's start to cluster_state:ok, %.2f s (Redis's CLUSTER_WRITABLE_DELAY); runbook's %.2f s beyond it are its start, connections, checks and writes before the first master starts, and the wait for every replica's sync", fl, rb-fl)
	return t
}

// withCPU notes beside a goal the machine's CPU time runbook's procedure op took, a peer's when
// peer is not "", and how busy the lab keeps the machine at rest: on this lab the hosts share the
// machine's cores, so CPU time is what the wall time is made of.
func withCPU(t target, s HostSet, ok bool, op, peer string) target {
	if !ok {
		return t
	}
	cpu := s.cpu()
	rb := cpu[key{toolRunbook, op}]
	if len(rb) == 0 {
		return t
	}
	note := fmt.Sprintf("runbook used %.2f CPU s of the machine's %d cores", summarise(rb).Median, s.Machine.Cores)
	if xs := cpu[key{peer, op}]; peer != "" && len(xs) > 0 {
		note += fmt.Sprintf(", the %s procedure %.2f", peer, summarise(xs).Median)
	}
	if s.RestingLoad > 0 {
		note += fmt.Sprintf("; the lab at rest keeps %.2f cores busy", s.RestingLoad)
	}
	t.addNote(note)
	return t
}

// addNote appends note to what the target's note already says.
func (t *target) addNote(note string) {
	if t.Note != "" {
		note = t.Note + "; " + note
	}
	t.Note = note
}

// withKept notes runbook's re-run over kept connections (opKept) beside a re-run goal, which is
// measured without them.
func withKept(t target, s HostSet, ok bool) target {
	if !ok {
		return t
	}
	if k, ok := s.median(toolRunbook, opKept); ok {
		note := fmt.Sprintf("over kept connections (--persist, as Ansible's ssh does by default) %.2f s", k)
		if an, ok := s.median(ansibleTool(5), opNoop); ok && an > 0 {
			note += fmt.Sprintf(" (%.3f × Ansible)", k/an)
		}
		t.addNote(note)
	}
	return t
}

// withFloor notes runbook's floor on the lab (opFloor) beside a re-run goal.
func withFloor(t target, s HostSet, ok bool) target {
	if !ok {
		return t
	}
	if f, ok := s.median(toolRunbook, opFloor); ok {
		t.Note = fmt.Sprintf("the floor on this lab (connect, lock, one `true` per host) is %.2f s", f)
	}
	if o, ok := s.median(toolOpenSSH, opFloor); ok {
		note := fmt.Sprintf("OpenSSH's `ssh HOST true` to every host at once takes %.2f s", o)
		t.addNote(note)
	}
	return t
}

// writeReport writes the report, the chart and results.json next to it.
func writeReport(out string, r Results) error {
	dir := filepath.Join(filepath.Dir(out), "benchmarks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wall-time.svg"), []byte(chartSVG(r)), 0o644); err != nil {
		return fmt.Errorf("write chart: %w", err)
	}
	profile := ""
	if _, err := os.Stat(filepath.Join(dir, "profile.md")); err == nil {
		profile = "benchmarks/profile.md"
	}
	if err := os.WriteFile(out, []byte(markdown(r, profile)), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func markdown(r Results, profile string) string {
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Benchmarks\n\n")
	p("<!-- Generated by `go run ./cmd/benchmark`; edit cmd/benchmark, not this file. -->\n\n")
	p("runbook side by side with what users run instead of it, on the project's lab (hosts are network\n")
	p("namespaces with a real sshd; see `testenv`): the seed's Redis Cluster, 3 redis-server per host\n")
	p("(ports 6379-6381), 2 replicas per master.\n\n")
	p("- **runbook**: `runbook apply -i inventory.hcl playbooks/site.hcl`. Its fresh install ends when\n")
	p("  every replica has synced; it also runs the package, directory and systemd checks of the playbook.\n")
	p("- **ansible**: the peer playbook (template, command, wait_for, `redis-cli --cluster create`) with\n")
	p("  Debian's ansible-core, `PIPELINING=True`, `FORKS=5` and `FORKS=<hosts>` (at 5 hosts or fewer\n")
	p("  both are the same run: Ansible never starts more workers than hosts, so it is measured once).\n")
	p("  It returns at `cluster_state:ok`, **before the replicas have synced**.\n")
	p("- **manual**: the seed's procedure as an operator scripts it with ssh and redis-cli (`create.sh`,\n")
	p("  and at 3 hosts `replace.sh`, which is written for the seed's 3 hosts). `create.sh` also returns at\n")
	p("  `cluster_state:ok`, **before the replicas have synced** (Redis delays a replica's first sync).\n\n")
	p("Operations, each timed as the wall clock of the procedure's process:\n\n")
	p("- *fresh install*: every host was killed and booted again with empty redis folders (sshd only).\n")
	p("- *re-run*: the same command again right after, nothing to change.\n")
	p("- *re-run with --persist 60s*: the same re-run with runbook's connection keeper, first starting it\n")
	p("  (it makes the hosts' connections), then over the connections it kept. Ansible's ssh connections\n")
	p("  work that way by default (ControlMaster with ControlPersist=60s), so its re-run above is already\n")
	p("  over kept connections.\n")
	p("- *floor*: runbook applying a playbook of one task, a readonly `true` on every host: the process,\n")
	p("  the SSH connections, the run lock and one round trip per host, nothing else. What the re-run costs\n")
	p("  beyond it is the reading of the playbook's state. It is a reference, not a target. Beside it,\n")
	p("  **openssh**: OpenSSH's client running `ssh HOST true` to every host at once, each over a new\n")
	p("  connection (no ControlMaster): what any tool that connects afresh pays on this lab.\n")
	p("- *floor of a fresh install* (**redis-server**): one new redis-server in cluster mode on node1,\n")
	p("  given every slot, timed on the host from its start until it says `cluster_state:ok`. Redis keeps\n")
	p("  a new master from serving for 2 s after it started (CLUSTER_WRITABLE_DELAY), so no fresh install\n")
	p("  that waits for the cluster to serve, by any tool, takes less than this plus the time it needs to\n")
	p("  start its first master. A reference, not a target.\n")
	p("- *replace a wiped host*: on the cluster the procedure built, node2 is killed; once CLUSTER NODES\n")
	p("  shows node2's instances failed and no failed master owning slots, node2 boots again with an empty\n")
	p("  disk; then the procedure runs until the layout is restored (runbook: and every replica synced).\n\n")
	p("Every round runs each procedure once, rotating their order from round to round, so machine noise\n")
	p("hits all of them alike. Before the first round, one fresh runbook apply (not counted) warms the new\n")
	p("lab up: the first procedure after the hosts boot ran 20-30 %% slower at 30 hosts, whichever it was.\n")
	p("Each result is checked (runbook: no failed task and a re-run that changes\n")
	p("nothing; Ansible: a re-run with `changed=0`; all: `cluster_state:ok` afterwards).\n\n")
	p("Reproduce: `go run ./cmd/benchmark --peers DIR --hosts 3,10,30 --runs 5` (DIR holds the peers'\n")
	p("`ansible/` and `manual/` folders). A run replaces the host counts it measures and keeps the others.\n\n")

	p("## Machine\n\n")
	seenMachine := map[string]bool{}
	for _, s := range r.Sets {
		m := s.Machine
		line := fmt.Sprintf("%s, %d cores, %d MiB memory, Linux %s, %s", m.CPU, m.Cores, m.MemoryMB, m.Kernel, m.Go)
		if !seenMachine[line] {
			seenMachine[line] = true
			p("- %s\n", line)
		}
	}
	// A version (runbook's commit, most often) that differs between the host counts, which
	// separate runs measured, is given for each of them.
	names := map[string]bool{}
	for _, s := range r.Sets {
		for k := range s.Versions {
			names[k] = true
		}
	}
	for _, k := range slices.Sorted(maps.Keys(names)) {
		var vals []string
		perSet := make([]string, 0, len(r.Sets))
		for _, s := range r.Sets {
			v, ok := s.Versions[k]
			if !ok {
				continue
			}
			if !slices.Contains(vals, v) {
				vals = append(vals, v)
			}
			perSet = append(perSet, fmt.Sprintf("`%s` (%d hosts)", v, s.Hosts))
		}
		if len(vals) == 1 {
			p("- %s: `%s`\n", k, vals[0])
		} else {
			p("- %s: %s\n", k, strings.Join(perSet, ", "))
		}
	}
	runs := map[int]bool{}
	for _, s := range r.Sets {
		runs[s.Runs] = true
	}
	if len(runs) > 1 {
		p("\nThe host counts were measured with different numbers of rounds (see each section): the slower\n")
		p("ones were run fewer times to fit the time available. No number is extrapolated.\n")
	}
	p("\n## Targets (issue 7)\n\n")
	p("| goal | measured (medians) | verdict | note |\n|---|---|---|---|\n")
	for _, t := range targets(r) {
		p("| %s | %s | %s | %s |\n", t.Goal, t.Measured, t.Verdict, t.Note)
	}
	p("\n")

	for _, s := range r.Sets {
		p("## %d hosts × 3 instances\n\n", s.Hosts)
		rounds := "rounds"
		if s.Runs == 1 {
			rounds = "round"
		}
		p("Measured %s, %d %s. Seconds; the last column is runbook's median divided by this one's.\n", s.Date, s.Runs, rounds)
		if len(s.cpu()) > 0 {
			p("*CPU s* is the median of the machine's busy CPU time while the procedure ran, summed over its\n")
			p("%d cores (from `/proc/stat`): the hosts' sshd, shells and redis-server, the procedure's own\n", s.Machine.Cores)
			p("process, and the lab's resting load")
			if s.RestingLoad > 0 {
				p(" (%.2f cores busy with the cluster up and nothing running)", s.RestingLoad)
			}
			p(". The lab's hosts\nshare the machine's cores, so a procedure that needs less CPU ends sooner.\n")
		}
		p("\n| operation | procedure | median | min | max | n | CPU s | runbook ÷ this |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
		for _, k := range s.keys() {
			st := summarise(s.seconds()[k])
			ratio := ""
			if rb, ok := s.median(toolRunbook, k.Op); ok && k.Tool != toolRunbook && st.Median > 0 {
				ratio = fmt.Sprintf("%.3f", rb/st.Median)
			}
			note := ""
			if k.Op == opFresh && k.Tool != toolRunbook {
				note = " †"
			}
			p("| %s | %s%s | %.2f | %.2f | %.2f | %d | %s | %s |\n", opNames[k.Op], k.Tool, note, st.Median, st.Min, st.Max, st.N, s.cpuCell(k), ratio)
		}
		p("\n† returns before the replicas have synced; runbook's fresh install waits for them.\n\n")
		if rss := s.peakRSS(); rss > 0 {
			p("Peak RSS of the runbook process (largest over all its runs): %.1f MiB.\n\n", float64(rss)/1024)
		}
	}
	p("## Chart\n\n")
	p("Median wall time against host count (log scales).\n\n![wall time against host count](benchmarks/wall-time.svg)\n\n")
	if profile != "" {
		p("## Profile\n\nWhere runbook's time goes, from `go run ./cmd/benchmark --profile`: [%s](%s).\n\n", profile, profile)
	}
	p("## Raw numbers\n\n")
	p("Seconds, in round order (with the machine's CPU seconds where measured); runbook's peak RSS in MiB.\nAll samples are in `benchmarks/results.json`.\n\n")
	for _, s := range r.Sets {
		p("### %d hosts\n\n", s.Hosts)
		for _, k := range s.keys() {
			xs := s.seconds()[k]
			strs := make([]string, len(xs))
			for i, x := range xs {
				strs[i] = fmt.Sprintf("%.2f", x)
			}
			p("- %s, %s: %s\n", k.Tool, opNames[k.Op], strings.Join(strs, ", "))
			if cs := s.cpu()[k]; len(cs) > 0 {
				strs := make([]string, len(cs))
				for i, x := range cs {
					strs[i] = fmt.Sprintf("%.2f", x)
				}
				p("  CPU seconds: %s\n", strings.Join(strs, ", "))
			}
		}
		var rss []string
		for _, x := range s.Samples {
			if x.Tool == toolRunbook && x.MaxRSSKiB > 0 {
				rss = append(rss, fmt.Sprintf("%.1f", float64(x.MaxRSSKiB)/1024))
			}
		}
		if len(rss) > 0 {
			p("- runbook peak RSS (fresh, re-run, replace per round): %s\n", strings.Join(rss, ", "))
		}
		p("\n")
	}
	return b.String()
}

// series is one line of the chart.
type series struct {
	name, color string
	dashed      bool
	points      [][2]float64 // hosts, seconds
}

// chartSeries picks the chart's lines: runbook and Ansible (and the manual script's fresh
// install), medians at each host count.
func chartSeries(r Results) []series {
	defs := []struct {
		name, color string
		dashed      bool
		tool        func(hosts int) string
		op          string
	}{
		{"runbook, fresh", "#1b6ac9", false, func(int) string { return toolRunbook }, opFresh},
		{"runbook, re-run", "#1b6ac9", true, func(int) string { return toolRunbook }, opNoop},
		{"runbook, re-run, kept connections", "#74a9e8", true, func(int) string { return toolRunbook }, opKept},
		{"Ansible forks 5, fresh", "#d9480f", false, func(int) string { return ansibleTool(5) }, opFresh},
		{"Ansible forks 5, re-run", "#d9480f", true, func(int) string { return ansibleTool(5) }, opNoop},
		{"Ansible forks = hosts, fresh", "#8f3bb8", false, func(n int) string { return ansibleTool(forksValues(n)[len(forksValues(n))-1]) }, opFresh},
		{"Ansible forks = hosts, re-run", "#8f3bb8", true, func(n int) string { return ansibleTool(forksValues(n)[len(forksValues(n))-1]) }, opNoop},
		{"manual script, fresh", "#2b8a3e", false, func(int) string { return toolManual }, opFresh},
	}
	var out []series
	for _, d := range defs {
		s := series{name: d.name, color: d.color, dashed: d.dashed}
		for _, set := range r.Sets {
			if m, ok := set.median(d.tool(set.Hosts), d.op); ok {
				s.points = append(s.points, [2]float64{float64(set.Hosts), m})
			}
		}
		if len(s.points) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// chartSVG draws median wall time against host count, both on log scales.
func chartSVG(r Results) string {
	const (
		width, height          = 720, 420
		left, right, top, bot  = 70, 230, 30, 50
		plotW, plotH           = width - left - right, height - top - bot
		minSeconds, maxSeconds = 0.1, 1000.0
	)
	ss := chartSeries(r)
	lo, hi := minSeconds, 1.0
	var hosts []float64
	seenHosts := map[float64]bool{}
	for _, s := range ss {
		for _, pt := range s.points {
			lo = math.Min(lo, pt[1])
			hi = math.Max(hi, pt[1])
			if !seenHosts[pt[0]] {
				seenHosts[pt[0]] = true
				hosts = append(hosts, pt[0])
			}
		}
	}
	sort.Float64s(hosts)
	yLo := math.Pow(10, math.Floor(math.Log10(lo)))
	yHi := math.Min(maxSeconds, math.Pow(10, math.Ceil(math.Log10(hi))))
	xLo, xHi := 2.0, 40.0
	if len(hosts) > 0 {
		xLo, xHi = hosts[0]/1.4, hosts[len(hosts)-1]*1.4
	}
	x := func(h float64) float64 {
		return left + plotW*(math.Log(h)-math.Log(xLo))/(math.Log(xHi)-math.Log(xLo))
	}
	y := func(s float64) float64 {
		s = math.Max(s, yLo)
		return top + plotH*(1-(math.Log(s)-math.Log(yLo))/(math.Log(yHi)-math.Log(yLo)))
	}
	var b bytes.Buffer
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	p(`<text x="%d" y="18" font-size="14">Redis Cluster deploy: median wall time (s) against hosts</text>`+"\n", left)
	for d := yLo; d <= yHi*1.0001; d *= 10 {
		for _, m := range []float64{1, 3} {
			v := d * m
			if v > yHi*1.0001 {
				break
			}
			p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), left+plotW, y(v))
			p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, fmtTick(v))
		}
	}
	for _, h := range hosts {
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(h), top, x(h), top+plotH)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%g</text>`+"\n", x(h), top+plotH+16, h)
	}
	p(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", left, top, plotW, plotH)
	p(`<text x="%d" y="%d" text-anchor="middle">hosts (3 redis-server each)</text>`+"\n", left+plotW/2, height-12)
	p(`<text x="16" y="%d" transform="rotate(-90 16 %d)" text-anchor="middle">seconds</text>`+"\n", top+plotH/2, top+plotH/2)
	for i, s := range ss {
		dash := ""
		if s.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		var pts []string
		for _, pt := range s.points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(pt[0]), y(pt[1])))
		}
		p(`<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"/>`+"\n", s.color, dash, strings.Join(pts, " "))
		for _, pt := range s.points {
			p(`<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s, %g hosts: %.2f s</title></circle>`+"\n", x(pt[0]), y(pt[1]), s.color, s.name, pt[0], pt[1])
		}
		ly := top + 10 + i*20
		p(`<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/>`+"\n", left+plotW+12, ly, left+plotW+40, ly, s.color, dash)
		p(`<text x="%d" y="%d">%s</text>`+"\n", left+plotW+46, ly+4, s.name)
	}
	p("</svg>\n")
	return b.String()
}

func fmtTick(v float64) string {
	if v < 1 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%g", v)
}
