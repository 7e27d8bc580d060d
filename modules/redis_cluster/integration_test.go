package redis_cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
)

// fakeHosts serves inventory lookups for hosts simulated by loopback addresses; connections go
// direct, so Conn is never used.
type fakeHosts map[string]string

func (h fakeHosts) Conn(ctx context.Context, host string) (engine.Conn, error) {
	return nil, errors.New("fake hosts: no ssh in this test")
}

func (h fakeHosts) Lookup(host string) (engine.Host, bool) {
	a, ok := h[host]
	return engine.Host{Name: host, Address: a}, ok
}

// lab runs real redis-server processes on loopback addresses, one address per simulated host.
type lab struct {
	t     testing.TB
	hosts []string
	ips   fakeHosts
	ports []int
	mu    sync.Mutex
	procs map[string]*exec.Cmd
	dirs  map[string]string
	extra []string
	// configFiles starts every instance with a configuration file of its own (INFO server
	// config_file), as the rolling restart compares against.
	configFiles bool
}

func newLab(t testing.TB, nHosts, perHost, basePort int, extraArgs ...string) *lab {
	t.Helper()
	return startLab(&lab{t: t, extra: extraArgs}, nHosts, perHost, basePort)
}

// newLabWithConfigFiles is newLab with a configuration file for every instance.
func newLabWithConfigFiles(t testing.TB, nHosts, perHost, basePort int) *lab {
	t.Helper()
	return startLab(&lab{t: t, configFiles: true}, nHosts, perHost, basePort)
}

func startLab(l *lab, nHosts, perHost, basePort int) *lab {
	t := l.t
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	l.ips, l.procs, l.dirs = fakeHosts{}, map[string]*exec.Cmd{}, map[string]string{}
	for h := 1; h <= nHosts; h++ {
		name := fmt.Sprintf("node%d", h)
		l.hosts = append(l.hosts, name)
		l.ips[name] = fmt.Sprintf("127.0.0.%d", 10+h)
	}
	for p := 0; p < perHost; p++ {
		l.ports = append(l.ports, basePort+p)
	}
	t.Cleanup(l.stopAll)
	for _, h := range l.hosts {
		l.startHost(h, true)
	}
	return l
}

func (l *lab) key(host string, port int) string { return fmt.Sprintf("%s:%d", host, port) }

func (l *lab) start(host string, port int, fresh bool) {
	l.t.Helper()
	k := l.key(host, port)
	l.mu.Lock()
	dir := l.dirs[k]
	l.mu.Unlock()
	if fresh || dir == "" {
		dir = l.t.TempDir()
	}
	ip := l.ips[host]
	args := append([]string{"--bind", ip, "--bind-source-addr", ip, "--port", strconv.Itoa(port), "--protected-mode", "no",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
		"--cluster-slave-validity-factor", "0", "--save", "", "--appendonly", "no",
		"--repl-diskless-sync-delay", "0", "--dir", dir, "--daemonize", "no",
		"--logfile", filepath.Join(dir, "redis.log")}, l.extra...)
	if l.configFiles {
		conf := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(conf, []byte("# settings come from the command line\n"), 0o644); err != nil {
			l.t.Fatal(err)
		}
		args = append([]string{conf}, args...)
	}
	cmd := exec.Command("redis-server", args...)
	if err := cmd.Start(); err != nil {
		l.t.Fatalf("start redis-server %s: %v", k, err)
	}
	l.mu.Lock()
	l.procs[k], l.dirs[k] = cmd, dir
	l.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			l.t.Fatalf("redis-server %s did not start: %v\n%s", k, err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (l *lab) startHost(host string, fresh bool) {
	for _, p := range l.ports {
		l.start(host, p, fresh)
	}
}

// killHost SIGKILLs every instance of host and waits for the processes to end.
func (l *lab) killHost(host string) {
	for _, p := range l.ports {
		l.kill(host, p)
	}
}

func (l *lab) kill(host string, port int) {
	l.mu.Lock()
	cmd := l.procs[l.key(host, port)]
	delete(l.procs, l.key(host, port))
	l.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
}

func (l *lab) stopAll() {
	l.mu.Lock()
	procs := l.procs
	l.procs = map[string]*exec.Cmd{}
	l.mu.Unlock()
	for _, cmd := range procs {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
}

func (l *lab) config(replicas int) *Config {
	c := &Config{Replicas: &replicas, Connect: "direct", Timeout: "60s"}
	for _, h := range l.hosts {
		for _, p := range l.ports {
			c.Instances = append(c.Instances, InstanceConfig{Host: h, Port: p})
		}
	}
	return c
}

// logReporter logs what the module reports, with the time since the run started.
type logReporter struct {
	t     testing.TB
	start time.Time
	mu    sync.Mutex
	last  string
}

func (r *logReporter) Log(host, task, msg string) {
	r.t.Logf("%6.3fs log: %s", time.Since(r.start).Seconds(), msg)
}

func (r *logReporter) Warn(host, task, msg string) {
	r.t.Logf("%6.3fs warning: %s", time.Since(r.start).Seconds(), msg)
}

func (r *logReporter) Progress(host, task, msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// Log only when what is waited for changes, not every tick.
	if i := strings.LastIndex(msg, " ("); i >= 0 {
		msg = msg[:i]
	}
	if msg != r.last && msg != "" {
		r.t.Logf("%6.3fs %s", time.Since(r.start).Seconds(), msg)
	}
	r.last = msg
}

func (r *logReporter) Change(host, task string, c engine.Change, dryRun bool) {
	verb := "did"
	if dryRun {
		verb = "would"
	}
	r.t.Logf("%6.3fs %s: %s", time.Since(r.start).Seconds(), verb, c.Summary)
}

// run runs the module once and returns the changes it recorded.
func (l *lab) run(ctx context.Context, c *Config, dryRun bool) ([]engine.Change, engine.Outcome, error) {
	return l.runWith(ctx, c, dryRun, &logReporter{t: l.t, start: time.Now()})
}

// runWith runs the module once with rep as its reporter.
func (l *lab) runWith(ctx context.Context, c *Config, dryRun bool, rep engine.Reporter) ([]engine.Change, engine.Outcome, error) {
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: l.hosts[0]}, Task: "redis_cluster", Hosts: l.ips, DryRun: dryRun, Reporter: rep})
	out, err := c.Run(ctx, target)
	return target.Changes(), out, err
}

// observe returns the analysed live topology.
func (l *lab) observe(ctx context.Context, c *Config) *Topology {
	l.t.Helper()
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: l.hosts[0]}, Hosts: l.ips})
	s, err := c.open(ctx, target)
	if err != nil {
		l.t.Fatal(err)
	}
	defer s.c.close()
	return Analyze(s.insts, s.c.observeAll(ctx))
}

// layoutSignature renders who follows whom, to compare states before and after a refusal.
func layoutSignature(top *Topology) string {
	var b strings.Builder
	for i, o := range top.Obs {
		fmt.Fprintf(&b, "%s ", top.Instances[i].Name())
		if !o.Reachable() {
			b.WriteString("down\n")
			continue
		}
		me := o.Myself()
		if me == nil {
			b.WriteString("?\n")
			continue
		}
		fmt.Fprintf(&b, "%s %s %s %s %d nodes\n", me.ID, me.Flags, me.MasterID, FormatRanges(me.Slots), len(o.Nodes))
	}
	return b.String()
}

// assertPerfect checks the converged state: healthy and with perfect anti-affinity.
func (l *lab) assertPerfect(ctx context.Context, c *Config) {
	l.t.Helper()
	top := l.observe(ctx, c)
	if h := Health(top); len(h) > 0 {
		l.t.Fatalf("not healthy: %v", h)
	}
	v := BuildView(top, c.replicas())
	if len(v.Problems) > 0 {
		var b strings.Builder
		_ = v.WriteText(&b, false)
		l.t.Fatalf("layout problems:\n%s", b.String())
	}
	perHost := map[string]int{}
	for _, id := range top.Masters() {
		perHost[top.Instances[top.Members[id].Inst].Host]++
	}
	for _, h := range l.hosts {
		if perHost[h] != 1 {
			l.t.Fatalf("host %s holds %d masters, want 1", h, perHost[h])
		}
	}
}

const pythonRedis = "/usr/bin/python3"

// keys writes or checks n keys through redis-py's RedisCluster client.
func (l *lab) keys(mode, prefix string, n int) {
	l.t.Helper()
	if _, err := os.Stat(pythonRedis); err != nil {
		l.t.Skip("python3 with redis-py not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Any live instance will do as the entry point.
	for _, h := range l.hosts {
		for _, p := range l.ports {
			l.mu.Lock()
			_, up := l.procs[l.key(h, p)]
			l.mu.Unlock()
			if !up {
				continue
			}
			out, err := exec.CommandContext(ctx, pythonRedis, "testdata/keys.py", mode, l.ips[h], strconv.Itoa(p), strconv.Itoa(n), prefix).CombinedOutput()
			if err != nil {
				l.t.Fatalf("keys %s %s: %v\n%s", mode, prefix, err, out)
			}
			return
		}
	}
	l.t.Fatal("no live instance")
}

func TestIntegrationCreate(t *testing.T) {
	l := newLab(t, 3, 3, 26100)
	c := l.config(2)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Plan shows the steps and changes nothing.
	changes, _, err := l.run(ctx, c, true)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	if len(changes) == 0 {
		t.Fatal("plan recorded no changes for an empty cluster")
	}
	if top := l.observe(ctx, c); top.Exists || len(top.Fresh) != 9 {
		t.Fatalf("plan changed something: %s", layoutSignature(top))
	}

	start := time.Now()
	changes, out, err := l.run(ctx, c, false)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	t.Logf("create 3x3 r=2: %v, %d changes, %s", time.Since(start), len(changes), out.Summary)
	l.assertPerfect(ctx, c)
	l.keys("write", "create", 10000)

	// Re-running makes no change.
	changes, out, err = l.run(ctx, c, false)
	if err != nil || len(changes) != 0 {
		t.Fatalf("second apply: %v, changes %v", err, changes)
	}
	t.Logf("second run: %s", out.Summary)
	l.keys("check", "create", 10000)
}

// createCluster creates the 3x3 r=2 cluster and writes the first batch of keys.
func (l *lab) createCluster(ctx context.Context, c *Config) {
	l.t.Helper()
	if _, _, err := l.run(ctx, c, false); err != nil {
		l.t.Fatalf("create: %v", err)
	}
	l.keys("write", "before", 10000)
}

// waitFailover waits until no slot is owned by an instance of host any more, as seen from a live
// instance.
func (l *lab) waitFailover(ctx context.Context, c *Config, host string) {
	l.t.Helper()
	start := time.Now()
	for {
		top := l.observe(ctx, c)
		moved := top.Exists && len(top.Uncovered()) == 0
		for _, id := range top.Masters() {
			m := top.Members[id]
			if !m.Live {
				moved = false
			}
		}
		if moved {
			l.t.Logf("automatic failover after %v", time.Since(start))
			return
		}
		select {
		case <-ctx.Done():
			l.t.Fatalf("no failover of %s's masters: %s", host, layoutSignature(top))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestIntegrationWipedHostAfterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("fault scenario")
	}
	l := newLab(t, 3, 3, 26200)
	c := l.config(2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l.createCluster(ctx, c)

	l.killHost("node3")
	l.waitFailover(ctx, c, "node3")
	l.keys("write", "during", 10000)

	// The playbook: prepare (nothing left to promote), start the wiped host, converge.
	prep := l.config(2)
	prep.Mode = ModePrepare
	changes, _, err := l.run(ctx, prep, false)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if len(changes) != 0 {
		t.Fatalf("prepare after failover changed %v", changes)
	}
	l.startHost("node3", true)
	start := time.Now()
	changes, out, err := l.run(ctx, c, false)
	if err != nil {
		t.Fatalf("converge: %v", err)
	}
	t.Logf("converge after wiped host: %v, %s", time.Since(start), out.Summary)
	l.assertPerfect(ctx, c)
	l.keys("check", "before", 10000)
	l.keys("check", "during", 10000)
	if changes, _, err := l.run(ctx, c, false); err != nil || len(changes) != 0 {
		t.Fatalf("re-run: %v %v", err, changes)
	}
}

func TestIntegrationWipedHostBeforeFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("fault scenario")
	}
	l := newLab(t, 3, 3, 26300)
	c := l.config(2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l.createCluster(ctx, c)

	// Kill and restart at once: prepare promotes before the empty instances start.
	l.killHost("node1")
	prep := l.config(2)
	prep.Mode = ModePrepare
	changes, _, err := l.run(ctx, prep, false)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	if len(changes) != 1 {
		t.Fatalf("prepare made %d changes, want 1 promotion", len(changes))
	}
	l.startHost("node1", true)
	start := time.Now()
	changes, _, err = l.run(ctx, c, false)
	if err != nil {
		t.Fatalf("converge: %v", err)
	}
	t.Logf("converge after wiped host: %v", time.Since(start))
	l.assertPerfect(ctx, c)
	l.keys("check", "before", 10000)
}

func TestIntegrationIntactHostRejoins(t *testing.T) {
	if testing.Short() {
		t.Skip("fault scenario")
	}
	l := newLab(t, 3, 3, 26400)
	c := l.config(2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l.createCluster(ctx, c)

	l.killHost("node2")
	l.waitFailover(ctx, c, "node2")
	l.keys("write", "during", 10000)
	l.startHost("node2", false)
	changes, _, err := l.run(ctx, c, false)
	if err != nil {
		t.Fatalf("converge: %v", err)
	}
	failovers := 0
	for _, ch := range changes {
		if strings.HasPrefix(ch.Summary, "failover to node2:") {
			failovers++
		}
	}
	if failovers != 1 {
		t.Fatalf("want one master moved back to node2, changes: %v", changes)
	}
	l.assertPerfect(ctx, c)
	l.keys("check", "before", 10000)
	l.keys("check", "during", 10000)
}

// masterOn returns the port of the master on host.
func masterOn(t *testing.T, top *Topology, host string) int {
	t.Helper()
	for _, id := range top.Masters() {
		if m := top.Members[id]; m.Live && top.Instances[m.Inst].Host == host {
			return top.Instances[m.Inst].Port
		}
	}
	t.Fatalf("no master on %s", host)
	return 0
}

// expectRefusal runs converge and checks it refused with want in the message and changed nothing.
func (l *lab) expectRefusal(ctx context.Context, c *Config, want string) {
	l.t.Helper()
	before := layoutSignature(l.observe(ctx, c))
	changes, _, err := l.run(ctx, c, false)
	if err == nil || !IsRefusal(err) || !strings.Contains(err.Error(), want) {
		l.t.Fatalf("want a refusal saying %q, got %v", want, err)
	}
	l.t.Logf("refused: %v", err)
	if len(changes) != 0 {
		l.t.Fatalf("refusal recorded changes: %v", changes)
	}
	if after := layoutSignature(l.observe(ctx, c)); after != before {
		l.t.Fatalf("refusal changed the cluster:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestIntegrationRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("fault scenario")
	}
	l := newLab(t, 3, 3, 26500, "--enable-debug-command", "yes")
	c := l.config(2)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	s, err := c.open(ctx, engine.NewTarget(engine.TargetOptions{Hosts: l.ips}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.c.close()

	// An instance that should be empty holds keys.
	if _, err := s.c.do(ctx, 4, "DEBUG", "POPULATE", 5); err != nil {
		t.Fatal(err)
	}
	l.expectRefusal(ctx, c, "node2:26501 should be empty but holds 5 keys")
	if _, err := s.c.do(ctx, 4, "FLUSHALL"); err != nil {
		t.Fatal(err)
	}
	l.createCluster(ctx, c)

	// An instance that belongs to another cluster.
	l.ips["node4"] = "127.0.0.14"
	l.start("node4", 26500, true)
	l.start("node4", 26501, true)
	other := l.config(0)
	other.Instances = []InstanceConfig{{Host: "node4", Port: 26500}, {Host: "node4", Port: 26501}}
	o, err := other.open(ctx, engine.NewTarget(engine.TargetOptions{Hosts: l.ips}))
	if err != nil {
		t.Fatal(err)
	}
	defer o.c.close()
	if _, err := o.c.do(ctx, 0, "CLUSTER", "MEET", "127.0.0.14", 26501); err != nil {
		t.Fatal(err)
	}
	withForeign := l.config(2)
	withForeign.Instances = append(withForeign.Instances, InstanceConfig{Host: "node4", Port: 26500})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if top := l.observe(ctx, withForeign); len(top.Foreign) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.expectRefusal(ctx, withForeign, "node4:26500 belongs to another cluster")

	// Fewer than a majority of masters alive: refused, unless allow_takeover.
	top := l.observe(ctx, c)
	m1, m2 := masterOn(t, top, "node1"), masterOn(t, top, "node2")
	l.kill("node1", m1)
	l.kill("node2", m2)
	l.expectRefusal(ctx, c, "only 1 of 3 masters are alive")
	take := l.config(2)
	take.Mode, take.AllowTakeover = ModePrepare, true
	changes, _, err := l.run(ctx, take, false)
	if err != nil || len(changes) != 2 {
		t.Fatalf("prepare with takeover: %v, changes %v", err, changes)
	}
	l.start("node1", m1, true)
	l.start("node2", m2, true)
	if _, _, err := l.run(ctx, c, false); err != nil {
		t.Fatalf("converge after takeover: %v", err)
	}
	l.assertPerfect(ctx, c)
	l.keys("check", "before", 10000)

	// Some slots have no live copy: a master and both its replicas are down.
	top = l.observe(ctx, c)
	id := top.Masters()[0]
	victims := []int{top.Members[id].Inst}
	for _, r := range top.ReplicasOf(id) {
		victims = append(victims, top.Members[r].Inst)
	}
	for _, v := range victims {
		l.kill(top.Instances[v].Host, top.Instances[v].Port)
	}
	l.expectRefusal(ctx, c, "slots have no live copy: "+FormatRanges(top.Members[id].Slots))
}

// sshHosts routes every connection through a per-host engine.Conn, as the ssh connect mode does
// with the real SSH connections; it records which host dialed which address.
type sshHosts struct {
	fakeHosts
	mu     sync.Mutex
	dialed map[string]string
}

func (h *sshHosts) Conn(ctx context.Context, host string) (engine.Conn, error) {
	c := enginetest.NewConn()
	c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		h.mu.Lock()
		h.dialed[addr] = host
		h.mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return c, nil
}

func TestIntegrationDialsThroughHostConn(t *testing.T) {
	l := newLab(t, 3, 1, 26600)
	c := l.config(0)
	c.Connect = "ssh"
	hosts := &sshHosts{fakeHosts: l.ips, dialed: map[string]string{}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Hosts: hosts})
	if _, err := c.Run(ctx, target); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"127.0.0.11:26600": "node1", "127.0.0.12:26600": "node2", "127.0.0.13:26600": "node3"}
	hosts.mu.Lock()
	defer hosts.mu.Unlock()
	if d := cmp.Diff(want, hosts.dialed); d != "" {
		t.Errorf("dials (-want +got):\n%s", d)
	}
}

// writableDelay is how long a Redis Cluster master waits after it started before it reports
// cluster_state ok (CLUSTER_WRITABLE_DELAY in the server). The create benchmark measures from
// instances that have been running for longer, as a playbook's would be.
const writableDelay = 2100 * time.Millisecond

// voteWindow is 2 x cluster-node-timeout: how long masters refuse to vote again about a shard.
const voteWindow = 4 * time.Second

// BenchmarkCreate3x3 measures creating a 3x3 cluster with 2 replicas per master, from empty
// running instances until every replica is synced and every instance agrees.
func BenchmarkCreate3x3(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		l := newLab(b, 3, 3, 26700)
		c := l.config(2)
		time.Sleep(writableDelay)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		b.StartTimer()
		if _, _, err := l.run(ctx, c, false); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cancel()
		l.stopAll()
		b.StartTimer()
	}
}

// BenchmarkConvergeWipedHost measures converging after a host came back with an empty disk
// (after the automatic failover), until the layout is restored and every replica is synced.
func BenchmarkConvergeWipedHost(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		l := newLab(b, 3, 3, 26800)
		c := l.config(2)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		if _, _, err := l.run(ctx, c, false); err != nil {
			b.Fatal(err)
		}
		l.killHost("node3")
		l.waitFailover(ctx, c, "node3")
		// A replaced host is back long after the failover. Right after it, the masters refuse
		// to vote about the same shard for 2 x cluster-node-timeout, which would hold the
		// layout-restoring failover back by the server's manual failover timeout.
		time.Sleep(voteWindow)
		l.startHost("node3", true)
		b.StartTimer()
		if _, _, err := l.run(ctx, c, false); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cancel()
		l.stopAll()
		b.StartTimer()
	}
}

// cli returns a function that runs redis-cli against host:port and returns its output; an error,
// or an answer that starts with ERR, fails the test.
func (l *lab) cli(ctx context.Context) func(host string, port int, args ...string) string {
	return func(host string, port int, args ...string) string {
		l.t.Helper()
		out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", l.ips[host], "-p", strconv.Itoa(port)}, args...)...).CombinedOutput()
		if err != nil || strings.HasPrefix(string(out), "ERR") {
			l.t.Fatalf("redis-cli %s:%d %v: %v %s", host, port, args, err, out)
		}
		return string(out)
	}
}

// TestIntegrationCreateCutShort finishes a creation cut short by the loss of node3: node1's and
// node2's instances met and their masters got their slots; node3:6379 got its slots and went
// down before it met anyone (it comes back alone with them), or went down before it got them.
func TestIntegrationCreateCutShort(t *testing.T) {
	if testing.Short() {
		t.Skip("fault scenario")
	}
	for k, tc := range []struct {
		name     string
		gotSlots bool
		wantStep string // the summary of the first change, %[1]d standing for the first port
	}{
		{name: "node3 got its slots", gotSlots: true, wantStep: "node3:%[1]d meets the cluster through node1:%[1]d with its slots 10923-16383"},
		{name: "node3 did not get its slots", wantStep: "add slots 10923-16383 to node3:%[1]d (no instance holds them and the cluster holds no keys: its creation was cut short)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := 27300 + 10*k
			l := newLab(t, 3, 3, base)
			c := l.config(2)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cli := l.cli(ctx)
			cli("node1", base, "CLUSTER", "ADDSLOTSRANGE", "0", "5460")
			cli("node2", base, "CLUSTER", "ADDSLOTSRANGE", "5461", "10922")
			if tc.gotSlots {
				cli("node3", base, "CLUSTER", "ADDSLOTSRANGE", "10923", "16383")
			}
			for _, h := range []string{"node1", "node2"} {
				for _, p := range l.ports {
					if h != "node1" || p != base {
						cli("node1", base, "CLUSTER", "MEET", l.ips[h], strconv.Itoa(p))
					}
				}
			}
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if n := strings.Count(cli("node2", base+2, "CLUSTER", "NODES"), "connected"); n == 6 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node1's and node2's instances did not meet:\n%s", cli("node2", base+2, "CLUSTER", "NODES"))
				}
			}

			changes, _, err := l.run(ctx, c, false)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if want := fmt.Sprintf(tc.wantStep, base); len(changes) == 0 || changes[0].Summary != want {
				t.Errorf("changes %v, want %q first", changes, want)
			}
			l.assertPerfect(ctx, c)
			if info := cli("node3", base+1, "CLUSTER", "INFO"); !strings.Contains(info, "cluster_state:ok") {
				t.Fatalf("node3:%d: %s", base+1, info)
			}
			l.keys("write", "cutshort", 1000)
			l.keys("check", "cutshort", 1000)
			if changes, _, err := l.run(ctx, c, false); err != nil || len(changes) != 0 {
				t.Fatalf("second apply: %v, changes %v", err, changes)
			}
		})
	}
}

// TestIntegrationStrangerMeetsAgain: an instance that knows the cluster while no member knows it
// (it met a member that went down before telling the others, and came back without it) is met
// into the cluster again; Redis never mends that by itself.
func TestIntegrationStrangerMeetsAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("fault scenario")
	}
	const base = 27400
	l := newLab(t, 3, 3, base)
	c := l.config(2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	l.createCluster(ctx, c)
	cli := l.cli(ctx)

	// node3's third instance comes back as a new node that knows every member (its nodes.conf is
	// node1's view, itself added) and that no member knows.
	const host, port = "node3", base + 2
	l.kill(host, port)
	newID := strings.Repeat("5", 40)
	var conf strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(cli("node1", base, "CLUSTER", "NODES")), "\n") {
		if strings.Contains(line, fmt.Sprintf("%s:%d@", l.ips[host], port)) {
			continue // its old node: the cluster fails and forgets it
		}
		conf.WriteString(strings.Replace(line, "myself,", "", 1) + "\n")
	}
	fmt.Fprintf(&conf, "%s %s:%d@%d myself,master - 0 0 0 connected\nvars currentEpoch 0 lastVoteEpoch 0\n", newID, l.ips[host], port, port+10000)
	l.mu.Lock()
	dir := l.dirs[l.key(host, port)]
	l.mu.Unlock()
	if err := os.WriteFile(filepath.Join(dir, "nodes.conf"), []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	l.start(host, port, false)
	if nodes := cli("node1", base, "CLUSTER", "NODES"); strings.Contains(nodes, newID) {
		t.Fatalf("the cluster already knows the new node:\n%s", nodes)
	}

	changes, _, err := l.run(ctx, c, false)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	want := fmt.Sprintf("%s:%d meets the cluster through node1:%d (it knows the cluster, the cluster does not know it)", host, port, base)
	if !slices.ContainsFunc(changes, func(ch engine.Change) bool { return ch.Summary == want }) {
		t.Errorf("changes %v, want %q among them", changes, want)
	}
	l.assertPerfect(ctx, c)
	for _, h := range l.hosts {
		for _, p := range l.ports {
			if nodes := cli(h, p, "CLUSTER", "NODES"); !strings.Contains(nodes, newID) {
				t.Errorf("%s:%d does not know the new node:\n%s", h, p, nodes)
			}
		}
	}
	l.keys("check", "before", 10000)
}
