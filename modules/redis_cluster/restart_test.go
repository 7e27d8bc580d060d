package redis_cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbook/runbook/engine"
)

func TestProcStale(t *testing.T) {
	tests := []struct {
		name string
		p    proc
		want bool
	}{
		{"config written before the start", proc{ConfigFile: "/etc/redis/a.conf", ConfigMtime: 1000, HostNow: 2000, Uptime: 900}, false},
		{"config written in the second of the start", proc{ConfigFile: "/etc/redis/a.conf", ConfigMtime: 1100, HostNow: 2000, Uptime: 900}, false},
		{"config written after the start", proc{ConfigFile: "/etc/redis/a.conf", ConfigMtime: 1101, HostNow: 2000, Uptime: 900}, true},
		{"config written just now", proc{ConfigFile: "/etc/redis/a.conf", ConfigMtime: 2000, HostNow: 2000, Uptime: 5}, true},
		{"start reported by the server: config written before", proc{ConfigFile: "/etc/redis/a.conf", ConfigMtime: 1099, Started: 1100, HostNow: 2000, Uptime: 0}, false},
		{"start reported by the server: config written in its second", proc{ConfigFile: "/etc/redis/a.conf", ConfigMtime: 1100, Started: 1100, HostNow: 2000, Uptime: 0}, false},
		{"start reported by the server: config written after", proc{ConfigFile: "/etc/redis/a.conf", ConfigMtime: 1101, Started: 1100, HostNow: 1101, Uptime: 900}, true},
		{"started without a config file", proc{ConfigMtime: 3000, HostNow: 2000, Uptime: 5}, false},
		{"config file unreadable", proc{ConfigFile: "/etc/redis/a.conf", ConfigMtime: -1, HostNow: 2000, Uptime: 5}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Stale(); got != tt.want {
				t.Errorf("Stale() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestExpandCommand(t *testing.T) {
	inst := Instance{Host: "node2", Port: 6380, IP: "10.0.0.12"}
	tests := []struct {
		tmpl string
		p    proc
		want string
	}{
		{"systemctl restart redis-cluster@{name}", proc{ConfigFile: "/etc/redis/b.conf"}, "systemctl restart redis-cluster@b"},
		{"kill {pid} && redis-server {config_file}", proc{PID: "4711", ConfigFile: "/etc/redis/b.conf"}, "kill 4711 && redis-server /etc/redis/b.conf"},
		{"echo {host} {address} {port}", proc{}, "echo node2 10.0.0.12 6380"},
		{"redis-server {config_file}", proc{ConfigFile: "/etc/my redis/b.conf"}, "redis-server '/etc/my redis/b.conf'"},
	}
	for _, tt := range tests {
		if got := expandCommand(tt.tmpl, inst, tt.p); got != tt.want {
			t.Errorf("expandCommand(%q) = %q, want %q", tt.tmpl, got, tt.want)
		}
	}
}

func TestRestartOrderAndFailoverTarget(t *testing.T) {
	insts := grid(3, 3)
	top := Analyze(insts, world{insts: insts, nodes: healthy3x3()}.observations(t))
	replicas, masters := RestartOrder(top, []int{0, 1, 2, 3, 4, 5, 6, 7, 8})
	if d := cmp.Diff([]int{1, 2, 4, 5, 7, 8}, replicas); d != "" {
		t.Errorf("replicas (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]int{0, 3, 6}, masters); d != "" {
		t.Errorf("masters (-want +got):\n%s", d)
	}
	// A's replicas are node2:6380 and node3:6381; both hosts hold one master: the first wins.
	if got := FailoverTarget(top, 0); got != 4 {
		t.Errorf("failover target of node1:6379 = %d, want 4 (node2:6380)", got)
	}
	// While B's master role sits on node1 (drained node2), node1 holds two masters: C's failover
	// goes to its replica on node2 rather than on node1.
	top = Analyze(insts, world{insts: insts, nodes: drainedNode2()}.observations(t))
	if got := FailoverTarget(top, 6); got != 5 {
		t.Errorf("failover target of node3:6379 = %s, want node2:6381", insts[got].Name())
	}
	// A replica whose link is down is not a target; nor is one on the master's host.
	obs := world{insts: insts, nodes: healthy3x3()}.observations(t)
	obs[4].LinkUp, obs[8].LinkUp = false, false
	if got := FailoverTarget(Analyze(insts, obs), 0); got != -1 {
		t.Errorf("failover target with no synced replica = %d, want -1", got)
	}
}

func TestSummaries(t *testing.T) {
	insts := grid(3, 3)
	healthy := Analyze(insts, world{insts: insts, nodes: healthy3x3()}.observations(t))
	empty := Analyze(insts, world{insts: insts, fresh: []int{0, 1, 2, 3, 4, 5, 6, 7, 8}}.observations(t))
	create, err := PlanSteps(empty, Desired{Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	two := &Plan{Steps: []Step{{Summary: "a"}, {Summary: "b"}}}
	one := &Plan{Steps: []Step{{Summary: "failover to node1:6381 (takes slots 5461-10922 from node2:6379)"}}}
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"plan create", planSummary(empty, create, Desired{Replicas: 2}), "will create the cluster: 3 masters, 6 replicas"},
		{"plan converge", planSummary(healthy, two, Desired{Mode: ModeConverge}), "will converge: 2 steps"},
		{"plan converge, one step", planSummary(healthy, one, Desired{Mode: ModeConverge}), "will converge: failover to node1:6381 (takes slots 5461-10922 from node2:6379)"},
		{"plan nothing", planSummary(healthy, &Plan{}, Desired{Mode: ModeConverge}), "cluster as declared: 3 masters, 6 replicas"},
		{"plan prepare", planSummary(healthy, one, Desired{Mode: ModePrepare}), "would promote replicas of 1 down master"},
		{"plan prepare, nothing", planSummary(healthy, &Plan{}, Desired{Mode: ModePrepare}), "no slot owner is down"},
		{"apply prepare", summary(healthy, &Plan{}, Desired{Mode: ModePrepare}, 2), "promoted replicas of 2 down masters"},
		{"apply create", summary(healthy, &Plan{Create: true}, Desired{Mode: ModeConverge}, 11), "cluster created: 3 masters, 6 replicas, 11 changes"},
		{"apply converge", summary(healthy, &Plan{}, Desired{Mode: ModeConverge}, 1), "cluster converged: 3 masters, 6 replicas, 1 change"},
		{"apply nothing", summary(healthy, &Plan{}, Desired{Mode: ModeConverge}, 0), "cluster as declared: 3 masters, 6 replicas, 0 changes"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestDescribeUnreachable(t *testing.T) {
	insts := grid(3, 3)
	obs := world{insts: insts, fresh: []int{0, 1, 2, 3, 4, 5, 6, 7, 8}}.observations(t)
	for _, i := range []int{3, 4, 5, 8} {
		obs[i] = Observation{Err: fmt.Errorf("%s: dial: %w", insts[i].Name(), errors.New("connect: connection refused"))}
	}
	obs[6] = Observation{Err: errors.New("node3:6379: dial tcp: i/o timeout")}
	got := DescribeUnreachable(Analyze(insts, obs))
	want := "5 of 9 instances are unreachable: node2:6379,6380,6381 node3:6381 (connection refused), node3:6379 (timeout)"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestMtimesCommand runs the command with the local shells against real files, one missing.
func TestMtimesCommand(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.conf"), filepath.Join(dir, "b c.conf")
	for _, f := range []string{a, b} {
		if err := os.WriteFile(f, []byte("port 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	when := time.Unix(1700000000, 0)
	if err := os.Chtimes(b, when, when); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.conf")
	// a configuration file that is a symbolic link: the time of the file it names
	link := filepath.Join(dir, "link.conf")
	if err := os.Symlink(b, link); err != nil {
		t.Fatal(err)
	}
	files := []string{a, missing, b, link}
	for _, shell := range []string{"sh", "bash", "dash"} {
		if _, err := exec.LookPath(shell); err != nil {
			continue
		}
		for _, clock := range []bool{false, true} {
			out, _ := exec.Command(shell, "-c", mtimesCommand(files, clock)).Output()
			now, mt, err := parseMtimes(string(out), clock)
			if err != nil {
				t.Fatalf("%s clock=%v: %v (%q)", shell, clock, err, out)
			}
			if clock && (now < time.Now().Unix()-60 || now > time.Now().Unix()+60) {
				t.Errorf("%s: clock %d", shell, now)
			}
			if _, ok := mt[missing]; ok || len(mt) != 3 {
				t.Errorf("%s: %v", shell, mt)
			}
			if mt[b] != 1700000000 || mt[link] != 1700000000 {
				t.Errorf("%s: mtime of %s = %d, of %s = %d; want 1700000000", shell, b, mt[b], link, mt[link])
			}
			if st, _ := os.Stat(a); mt[a] != st.ModTime().Unix() {
				t.Errorf("%s: mtime of %s = %d, want %d", shell, a, mt[a], st.ModTime().Unix())
			}
		}
	}
	if _, _, err := parseMtimes("x /etc/a.conf\n", false); err == nil {
		t.Error("a broken line parsed")
	}
}

// TestHostProbesMatchTheRead: with config_files, each host's probe is the very command the rolling
// restart sends when the instances run the declared files and report their clock, so the engine
// can answer it from the read-ahead; without them, or in other modes, there is none.
func TestHostProbesMatchTheRead(t *testing.T) {
	c := Config{Mode: ModeRestart, RestartCommand: "true", Instances: []InstanceConfig{
		{Host: "n1", Port: 6379}, {Host: "n2", Port: 6379}, {Host: "n1", Port: 6380}, {Host: "n2", Port: 6380}, {Host: "n3", Port: 6379},
	}, ConfigFiles: map[string]string{
		"n1:6379": "/etc/redis/a.conf", "n1:6380": "/etc/redis/b c.conf", "n2:6379": "/etc/redis/a.conf", "n2:6380": "/etc/redis/b c.conf",
	}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	got := map[string]engine.HostProbe{}
	for _, p := range c.HostProbes() {
		got[p.Host] = p
	}
	if len(got) != 2 {
		t.Fatalf("probes on %d hosts, want n1 and n2: %+v", len(got), got)
	}
	procs := make([]proc, len(c.Instances))
	byHost := map[string][]int{}
	for i, in := range c.Instances {
		procs[i] = proc{ConfigFile: c.ConfigFiles[fmt.Sprintf("%s:%d", in.Host, in.Port)], Started: 1700000000}
		byHost[in.Host] = append(byHost[in.Host], i)
	}
	for _, h := range []string{"n1", "n2"} {
		cmd, _ := mtimesRequest(byHost[h], procs)
		if got[h].Cmd != cmd {
			t.Errorf("%s: probe %q, the restart sends %q", h, got[h].Cmd, cmd)
		}
		if len(got[h].Paths) != 2 || got[h].Paths[0] != "/etc/redis/a.conf" || got[h].Paths[1] != "/etc/redis/b c.conf" {
			t.Errorf("%s: paths %q", h, got[h].Paths)
		}
		// one batch part per file, in order, each standing for the probe
		parts := got[h].Parts
		if len(parts) != 2 || parts[0].Arg != "m/etc/redis/a.conf" || parts[1].Arg != "m/etc/redis/b c.conf" {
			t.Errorf("%s: parts %+v", h, parts)
		}
		for _, part := range parts {
			if part.Probe != cmd || part.Batch == nil {
				t.Errorf("%s: part %+v does not answer %q", h, part, cmd)
			}
		}
	}
	for _, other := range []Config{{Mode: ModeRestart, Instances: c.Instances}, {Mode: ModeConverge, Instances: c.Instances}} {
		if p := other.HostProbes(); len(p) != 0 {
			t.Errorf("mode %q, config_files %v: probes %+v", other.Mode, other.ConfigFiles, p)
		}
	}
}
