package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runbook/runbook/testenv"
)

// The procedures the comparison measures.
const (
	toolRunbook = "runbook"
	toolAnsible = "ansible"
	toolManual  = "manual"
	// toolOpenSSH is OpenSSH's client running `true` on every host at once, each over a new
	// connection: what any tool that connects afresh pays on the lab, measured beside runbook's
	// floor (opFloor).
	toolOpenSSH = "openssh"
	// toolRedis is one new redis-server, given every slot, from its start until it serves
	// (opFreshFloor): what Redis itself makes any fresh install wait.
	toolRedis = "redis-server"
)

// The operations timed.
const (
	opFresh   = "fresh"
	opNoop    = "noop"
	opReplace = "replace"
	// opFloor is runbook running one `true` on every host (readonly command): start, load,
	// connect, lock, one round trip. What a no-op costs beyond it is the playbook's own reads.
	opFloor = "floor"
	// opKeeperStart is a re-run with --persist that starts the connection keeper, and opKept the
	// next one, over the connections it kept (what Ansible's default ControlPersist does for ssh).
	opKeeperStart = "noop-keeper-start"
	opKept        = "noop-kept"
	// opFreshFloor is the floor of a fresh install (toolRedis): Redis keeps a new master at
	// cluster_state:fail for 2 s after it started (CLUSTER_WRITABLE_DELAY), whatever starts it.
	opFreshFloor = "fresh-floor"
)

// redisFloorPort is the port of opFreshFloor's redis-server on node1, beside the cluster's.
const redisFloorPort = "7379"

// persistFor is the --persist of the kept re-runs.
const persistFor = "60s"

// floorPlaybook is the playbook of opFloor.
const floorPlaybook = `# runbook's floor on this lab: connect, lock, one round trip per host.
task "floor" {
  on = group.redis
  command {
    cmd      = "true"
    readonly = true
  }
}
`

// replacedHost is the host killed and brought back with an empty disk in a replacement.
const replacedHost = "node2"

// failoverTimeout bounds the wait for the cluster to fail over after replacedHost died.
const failoverTimeout = 90 * time.Second

// pollInterval is how often the failover wait asks the cluster.
const pollInterval = 100 * time.Millisecond

// Sample is one timed run of one procedure.
type Sample struct {
	Hosts   int     `json:"hosts"`
	Tool    string  `json:"tool"` // runbook, ansible forks=F, manual
	Op      string  `json:"op"`   // fresh, noop, replace
	Round   int     `json:"round"`
	Seconds float64 `json:"seconds"`
	// MaxRSSKiB is the peak resident set size of the measured process (runbook only).
	MaxRSSKiB int64 `json:"max_rss_kib,omitempty"`
	// CPUSeconds is the machine's busy CPU time while the procedure ran, summed over its cores:
	// the hosts' processes (sshd, shells, redis-server), the procedure's own, and the lab's
	// resting load (HostSet.RestingLoad) for as long as it ran. 0 when not measured.
	CPUSeconds float64 `json:"cpu_seconds,omitempty"`
}

// HostSet is everything measured at one host count.
type HostSet struct {
	Hosts    int               `json:"hosts"`
	Runs     int               `json:"runs"`
	Date     string            `json:"date"`
	Machine  Machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Samples  []Sample          `json:"samples"`
	// RestingLoad is how many cores the lab kept busy with nothing running on it, the cluster
	// up, measured after the last round (0: not measured).
	RestingLoad float64 `json:"resting_load,omitempty"`
}

// Results is the content of results.json: the host sets measured so far.
type Results struct {
	Sets []HostSet `json:"sets"`
}

// bench measures on one lab.
type bench struct {
	cfg     options
	keepDir string // XDG_RUNTIME_DIR of runbook's runs: where its connection keeper listens
	lab     *testenv.Lab
	n       int
	addrs   []string // node addresses in order node1..nodeN
	log     io.Writer
	floor   string // the file holding floorPlaybook, written on first use
}

// chain is a sequence of procedures that starts from wiped hosts and yields samples.
type chain struct {
	name string
	run  func(ctx context.Context, round int) ([]Sample, error)
}

func runComparison(ctx context.Context, cfg options, w io.Writer) error {
	resultsPath := filepath.Join(filepath.Dir(cfg.out), "benchmarks", "results.json")
	res, err := loadResults(resultsPath)
	if err != nil {
		return err
	}
	for _, n := range cfg.hosts {
		set, err := measureHosts(ctx, cfg, n, w)
		if err != nil {
			return fmt.Errorf("%d hosts: %w", n, err)
		}
		res = res.with(set)
		printSummary(w, set)
		if err := writeReport(cfg.out, res); err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s\n", cfg.out)
	}
	return nil
}

// rewriteReport writes the report and chart again from results.json.
func rewriteReport(cfg options) error {
	res, err := loadResults(filepath.Join(filepath.Dir(cfg.out), "benchmarks", "results.json"))
	if err != nil {
		return err
	}
	return writeReport(cfg.out, res)
}

func measureHosts(ctx context.Context, cfg options, n int, w io.Writer) (HostSet, error) {
	set := HostSet{Hosts: n, Runs: cfg.runs, Date: time.Now().UTC().Format("2006-01-02"), Machine: machine(), Versions: versions(cfg)}
	dir := cfg.labDir
	if dir == "" {
		d, err := os.MkdirTemp("", "runbook-bench-")
		if err != nil {
			return set, fmt.Errorf("lab directory: %w", err)
		}
		defer os.RemoveAll(d)
		dir = d
	} else {
		dir = filepath.Join(dir, strconv.Itoa(n))
	}
	fmt.Fprintf(w, "== %d hosts: lab up\n", n)
	b, down, err := newBench(ctx, cfg, dir, n, w)
	defer down()
	if err != nil {
		return set, err
	}
	defer func() {
		if b.floor != "" {
			os.Remove(b.floor)
		}
	}()
	// The first procedure after the hosts boot runs slower than the same one later (at 30 hosts a
	// fresh install took 21.8 s first and 16.2-17.8 s after): a warm-up keeps that cost out of
	// whichever procedure round 1 starts with.
	if b.cfg.tools[toolRunbook] {
		fmt.Fprintf(w, "-- %d hosts: warm-up (one fresh runbook apply, not counted)\n", n)
		if err := b.wipe(ctx); err != nil {
			return set, fmt.Errorf("warm-up: %w", err)
		}
		if _, _, err := b.apply(ctx); err != nil {
			return set, fmt.Errorf("warm-up: %w", err)
		}
	}
	chains := b.chains()
	for r := 0; r < cfg.runs; r++ {
		for i := range chains {
			c := chains[(i+r)%len(chains)]
			fmt.Fprintf(w, "-- %d hosts, round %d/%d: %s\n", n, r+1, cfg.runs, c.name)
			samples, err := c.run(ctx, r+1)
			for _, s := range samples {
				fmt.Fprintf(w, "   %-18s %-8s %7.2f s%s%s\n", s.Tool, s.Op, s.Seconds, cpuNote(s), rssNote(s))
			}
			set.Samples = append(set.Samples, samples...)
			if err != nil {
				return set, fmt.Errorf("round %d, %s: %w", r+1, c.name, err)
			}
		}
	}
	set.RestingLoad = restingLoad(5 * time.Second)
	fmt.Fprintf(w, "   the lab at rest keeps %.2f cores busy\n", set.RestingLoad)
	return set, nil
}

// newBench brings up a lab of n hosts in dir; down takes it down again (call it even on error).
func newBench(ctx context.Context, cfg options, dir string, n int, w io.Writer) (b *bench, down func(), err error) {
	upCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	lab, err := testenv.Up(upCtx, testenv.Options{Dir: dir, Nodes: n})
	cancel()
	down = func() {}
	if lab != nil {
		down = func() {
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if err := lab.Down(dctx); err != nil {
				fmt.Fprintf(w, "lab down: %v\n", err)
			}
		}
	}
	if err != nil {
		return nil, down, fmt.Errorf("lab up: %w", err)
	}
	b = &bench{cfg: cfg, lab: lab, n: n, log: w, keepDir: filepath.Join(dir, "xdg")}
	if err := os.MkdirAll(b.keepDir, 0o700); err != nil {
		return nil, down, err
	}
	labDown := down
	down = func() { b.stopKeeper(); labDown() }
	for _, h := range lab.Nodes() {
		b.addrs = append(b.addrs, h.Address)
	}
	return b, down, nil
}

func cpuNote(s Sample) string {
	if s.CPUSeconds == 0 {
		return ""
	}
	return fmt.Sprintf("  (%.2f CPU s)", s.CPUSeconds)
}

func rssNote(s Sample) string {
	if s.MaxRSSKiB == 0 {
		return ""
	}
	return fmt.Sprintf("  (peak RSS %.1f MiB)", float64(s.MaxRSSKiB)/1024)
}

// forksValues is the Ansible FORKS measured at n hosts: 5 (its default here) and n. Ansible
// never runs more workers than hosts, so at n <= 5 both are the same run and it is measured once.
func forksValues(n int) []int {
	if n <= 5 {
		return []int{5}
	}
	return []int{5, n}
}

func (b *bench) chains() []chain {
	var cs []chain
	if b.cfg.tools[toolRunbook] {
		cs = append(cs, chain{toolRunbook, b.runbookChain})
	}
	if b.cfg.tools[toolAnsible] {
		for _, f := range forksValues(b.n) {
			cs = append(cs, chain{ansibleTool(f), func(ctx context.Context, round int) ([]Sample, error) {
				return b.ansibleChain(ctx, round, f)
			}})
		}
	}
	if b.cfg.tools[toolManual] {
		cs = append(cs, chain{toolManual, b.manualChain})
	}
	return cs
}

func ansibleTool(forks int) string { return fmt.Sprintf("ansible forks=%d", forks) }

func (b *bench) sample(tool, op string, round int, p procResult) Sample {
	return Sample{Hosts: b.n, Tool: tool, Op: op, Round: round, Seconds: p.dur.Seconds(), MaxRSSKiB: p.maxRSS, CPUSeconds: p.cpu}
}

// runbookChain: fresh apply, no-op re-apply, replacement of node2.
func (b *bench) runbookChain(ctx context.Context, round int) ([]Sample, error) {
	var out []Sample
	if err := b.wipe(ctx); err != nil {
		return out, err
	}
	p, rc, err := b.apply(ctx)
	if err != nil {
		return out, fmt.Errorf("fresh apply: %w", err)
	}
	if rc.Changed == 0 {
		return out, errors.New("fresh apply changed nothing: the hosts were not wiped")
	}
	out = append(out, b.sample(toolRunbook, opFresh, round, p))
	if err := b.clusterOK(ctx); err != nil {
		return out, fmt.Errorf("after fresh apply: %w", err)
	}

	p, rc, err = b.apply(ctx)
	if err != nil {
		return out, fmt.Errorf("no-op apply: %w", err)
	}
	if rc.Changed != 0 {
		return out, fmt.Errorf("no-op apply changed %d: %s", rc.Changed, changedResults(p.output))
	}
	out = append(out, b.sample(toolRunbook, opNoop, round, p))

	if p, err = b.runFloor(ctx); err != nil {
		return out, fmt.Errorf("floor: %w", err)
	}
	out = append(out, b.sample(toolRunbook, opFloor, round, p))
	if p, err = b.sshFloor(ctx); err != nil {
		return out, fmt.Errorf("ssh floor: %w", err)
	}
	out = append(out, b.sample(toolOpenSSH, opFloor, round, p))
	if p, err = b.redisFloor(ctx); err != nil {
		return out, fmt.Errorf("redis floor: %w", err)
	}
	out = append(out, b.sample(toolRedis, opFreshFloor, round, p))

	for _, op := range []string{opKeeperStart, opKept} {
		p, rc, err = b.apply(ctx, "--persist", persistFor)
		if err != nil {
			return out, fmt.Errorf("re-run with --persist: %w", err)
		}
		if rc.Changed != 0 {
			return out, fmt.Errorf("re-run with --persist changed %d: %s", rc.Changed, changedResults(p.output))
		}
		out = append(out, b.sample(toolRunbook, op, round, p))
	}
	b.stopKeeper()

	if err := b.loseNode2(ctx); err != nil {
		return out, err
	}
	p, _, err = b.apply(ctx)
	if err != nil {
		return out, fmt.Errorf("replacement apply: %w", err)
	}
	out = append(out, b.sample(toolRunbook, opReplace, round, p))
	if err := b.clusterOK(ctx); err != nil {
		return out, fmt.Errorf("after replacement: %w", err)
	}
	return out, nil
}

// ansibleChain: the peer playbook on wiped hosts, then again.
func (b *bench) ansibleChain(ctx context.Context, round, forks int) ([]Sample, error) {
	var out []Sample
	tool := ansibleTool(forks)
	if err := b.wipe(ctx); err != nil {
		return out, err
	}
	env := []string{"PIPELINING=True", "FORKS=" + strconv.Itoa(forks), "ANSIBLE_HOST_KEY_CHECKING=True"}
	args := append([]string{filepath.Join(b.cfg.peers, "ansible", "run.sh"), b.lab.KeyPath(), b.lab.KnownHostsPath()}, b.addrs...)
	p, err := b.exec(ctx, env, "bash", args...)
	if err != nil {
		return out, fmt.Errorf("fresh: %w", err)
	}
	out = append(out, b.sample(tool, opFresh, round, p))
	if err := b.clusterOK(ctx); err != nil {
		return out, fmt.Errorf("after fresh run: %w", err)
	}
	p, err = b.exec(ctx, env, "bash", args...)
	if err != nil {
		return out, fmt.Errorf("re-run: %w", err)
	}
	if c := ansibleChanged(p.output); c != 0 {
		return out, fmt.Errorf("re-run changed %d", c)
	}
	out = append(out, b.sample(tool, opNoop, round, p))
	return out, nil
}

// manualChain: the peer create script on wiped hosts; at 3 hosts also the replace script.
func (b *bench) manualChain(ctx context.Context, round int) ([]Sample, error) {
	var out []Sample
	if err := b.wipe(ctx); err != nil {
		return out, err
	}
	args := append([]string{filepath.Join(b.cfg.peers, "manual", "create.sh"), b.lab.KeyPath(), b.lab.KnownHostsPath()}, b.addrs...)
	p, err := b.exec(ctx, nil, "bash", args...)
	if err != nil {
		return out, fmt.Errorf("create: %w", err)
	}
	out = append(out, b.sample(toolManual, opFresh, round, p))
	if err := b.clusterOK(ctx); err != nil {
		return out, fmt.Errorf("after create: %w", err)
	}
	if b.n != 3 {
		return out, nil // replace.sh is written for the seed's 3 hosts
	}
	if err := b.loseNode2(ctx); err != nil {
		return out, err
	}
	args = []string{filepath.Join(b.cfg.peers, "manual", "replace.sh"), b.lab.KeyPath(), b.lab.KnownHostsPath(), b.addrs[1], b.addrs[0], b.addrs[2]}
	p, err = b.exec(ctx, nil, "bash", args...)
	if err != nil {
		return out, fmt.Errorf("replace: %w", err)
	}
	out = append(out, b.sample(toolManual, opReplace, round, p))
	if err := b.clusterOK(ctx); err != nil {
		return out, fmt.Errorf("after replace: %w", err)
	}
	return out, nil
}

// wipe leaves every node with sshd only and empty redis folders.
func (b *bench) wipe(ctx context.Context) error {
	for _, h := range b.lab.Nodes() {
		if err := b.lab.Kill(ctx, h.Name); err != nil {
			return fmt.Errorf("wipe: %w", err)
		}
		if err := b.lab.Revive(ctx, h.Name, true); err != nil {
			return fmt.Errorf("wipe: %w", err)
		}
	}
	return nil
}

// loseNode2 kills node2, waits until the cluster has failed over and brings node2 back with an
// empty disk (sshd only).
func (b *bench) loseNode2(ctx context.Context) error {
	if err := b.lab.Kill(ctx, replacedHost); err != nil {
		return err
	}
	if err := b.waitFailover(ctx, b.addrs[0], b.addrs[1]); err != nil {
		return err
	}
	if err := b.lab.Revive(ctx, replacedHost, true); err != nil {
		return err
	}
	return nil
}

// waitFailover polls CLUSTER NODES on seed until every instance of dead is flagged failed and
// no failed master owns slots.
func (b *bench) waitFailover(ctx context.Context, seed, dead string) error {
	ctx, cancel := context.WithTimeout(ctx, failoverTimeout)
	defer cancel()
	last := ""
	for {
		out, err := redisCLI(ctx, seed, "cluster", "nodes")
		if err == nil && failoverDone(out, dead) {
			return nil
		}
		last = out
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster did not fail over within %s; last CLUSTER NODES:\n%s", failoverTimeout, last)
		case <-time.After(pollInterval):
		}
	}
}

// failoverDone says whether the CLUSTER NODES output shows every instance of the host dead
// flagged "fail" (at least one instance) and no master flagged failed that still owns slots.
func failoverDone(nodes, dead string) bool {
	seen := 0
	for _, line := range strings.Split(nodes, "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		host, _, _ := strings.Cut(f[1], ":")
		flags := strings.Split(f[2], ",")
		failed, suspected, master := false, false, false
		for _, fl := range flags {
			switch fl {
			case "fail":
				failed = true
			case "fail?":
				suspected = true
			case "master":
				master = true
			}
		}
		if host == dead {
			seen++
			if !failed {
				return false
			}
		}
		if master && (failed || suspected) && len(f) > 8 {
			return false
		}
	}
	return seen > 0
}

// clusterOK checks that the cluster, seen from node1, is in state ok.
func (b *bench) clusterOK(ctx context.Context) error {
	out, err := redisCLI(ctx, b.addrs[0], "cluster", "info")
	if err != nil {
		return err
	}
	if !strings.Contains(out, "cluster_state:ok") {
		return fmt.Errorf("cluster state is not ok:\n%s", out)
	}
	return nil
}

func redisCLI(ctx context.Context, addr string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "redis-cli", append([]string{"-h", addr, "-p", "6379"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("redis-cli -h %s %s: %w", addr, strings.Join(args, " "), err)
	}
	return string(out), nil
}

// procResult is a finished procedure.
type procResult struct {
	dur    time.Duration
	maxRSS int64   // KiB
	cpu    float64 // the machine's busy CPU seconds meanwhile (0: not measured)
	output string
}

// exec runs one procedure to its end and times it; a non-zero exit is an error.
func (b *bench) exec(ctx context.Context, env []string, name string, args ...string) (procResult, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Peers start ssh and Python children: a timeout ends the whole process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	busy, busyOK := machineBusy()
	start := time.Now()
	err := cmd.Run()
	p := procResult{dur: time.Since(start), output: out.String()}
	if after, ok := machineBusy(); ok && busyOK {
		p.cpu = cpuSeconds(busy, after)
	}
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			p.maxRSS = ru.Maxrss // Linux: KiB
		}
	}
	if b.cfg.verbose {
		fmt.Fprint(b.log, p.output)
	}
	if err != nil {
		return p, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, lastLines(p.output, 15))
	}
	return p, nil
}

// recap is the last JSON line of runbook apply --json.
type recap struct {
	Type       string `json:"type"`
	OK         int    `json:"ok"`
	Changed    int    `json:"changed"`
	Failed     int    `json:"failed"`
	DurationMS int64  `json:"duration_ms"`
}

// apply runs runbook apply --json on the lab and returns its recap.
func (b *bench) apply(ctx context.Context, flags ...string) (procResult, recap, error) {
	args := append([]string{"apply", "--json", "-i", b.lab.InventoryPath()}, flags...)
	p, err := b.exec(ctx, []string{"XDG_RUNTIME_DIR=" + b.keepDir}, b.cfg.runbook, append(args, b.cfg.playbook)...)
	if err != nil {
		return p, recap{}, err
	}
	rc, err := parseRecap(p.output)
	if err != nil {
		return p, rc, err
	}
	if rc.Failed != 0 {
		return p, rc, fmt.Errorf("%d tasks failed\n%s", rc.Failed, lastLines(p.output, 15))
	}
	return p, rc, nil
}

// stopKeeper ends the connection keeper the kept re-runs started (it would otherwise keep the
// hosts' connections for persistFor): the process whose socket is in b.keepDir.
func (b *bench) stopKeeper() {
	want := "XDG_RUNTIME_DIR=" + b.keepDir
	procs, _ := os.ReadDir("/proc")
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if !bytes.HasPrefix(cmdline, []byte("runbook: ssh connection keeper")) {
			continue
		}
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		for _, kv := range bytes.Split(environ, []byte{0}) {
			if string(kv) == want {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	}
}

// runFloor applies floorPlaybook: the same process, connections and lock as any run, one `true`
// per host.
func (b *bench) runFloor(ctx context.Context) (procResult, error) {
	if b.floor == "" {
		f, err := os.CreateTemp("", "runbook-floor-*.hcl")
		if err != nil {
			return procResult{}, fmt.Errorf("floor playbook: %w", err)
		}
		_, err = f.WriteString(floorPlaybook)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return procResult{}, fmt.Errorf("floor playbook: %w", err)
		}
		b.floor = f.Name()
	}
	p, err := b.exec(ctx, nil, b.cfg.runbook, "apply", "--json", "-i", b.lab.InventoryPath(), b.floor)
	if err != nil {
		return p, err
	}
	rc, err := parseRecap(p.output)
	if err != nil {
		return p, err
	}
	if rc.Failed != 0 || rc.OK != b.n {
		return p, fmt.Errorf("want %d ok results, got %+v\n%s", b.n, rc, lastLines(p.output, 15))
	}
	return p, nil
}

// sshFloorScript runs OpenSSH's `ssh ADDRESS true` to every address at once (root, the lab's key
// and known_hosts, no configuration file, no agent, no connection sharing) and fails when one did.
const sshFloorScript = `k=$1; kh=$2; shift 2
for a; do
  ssh -F /dev/null -i "$k" -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile="$kh" \
    -o StrictHostKeyChecking=yes -o BatchMode=yes -o ControlMaster=no -o ControlPath=none \
    -o LogLevel=ERROR "root@$a" true &
done
rc=0
for p in $(jobs -p); do wait "$p" || rc=1; done
exit $rc`

// sshFloor times sshFloorScript on the lab's hosts.
func (b *bench) sshFloor(ctx context.Context) (procResult, error) {
	args := append([]string{"-c", sshFloorScript, "ssh-floor", b.lab.KeyPath(), b.lab.KnownHostsPath()}, b.addrs...)
	return b.exec(ctx, nil, "bash", args...)
}

// redisFloorScript starts a new redis-server in cluster mode on ADDRESS:PORT, gives it every slot,
// waits until it says cluster_state:ok (polling every 10 ms), stops it and removes its files.
// It runs on the host itself and prints the times (EPOCHREALTIME) before the start and at
// cluster_state:ok: the least any fresh install of a Redis Cluster waits after it started its
// first master.
const redisFloorScript = `a=$1; p=$2; f=/var/lib/redis/floor-$p
t0=$EPOCHREALTIME
redis-server --bind "$a" --port "$p" --protected-mode no --cluster-enabled yes --dir /var/lib/redis \
  --cluster-config-file "floor-$p.conf" --pidfile "$f.pid" --save '' --appendonly no \
  --daemonize yes --logfile '' || exit
n=0
until [ "$(redis-cli -h "$a" -p "$p" cluster addslotsrange 0 16383 2>/dev/null)" = OK ]; do
  n=$((n+1)); [ $n -lt 500 ] || { echo "redis-server on $a:$p does not take the slots" >&2; break; }; sleep 0.01
done
until redis-cli -h "$a" -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; do
  n=$((n+1)); [ $n -lt 1000 ] || { echo "redis-server on $a:$p: no cluster_state:ok" >&2; n=fail; break; }; sleep 0.01
done
t1=$EPOCHREALTIME
pid=$(cat "$f.pid" 2>/dev/null)
redis-cli -h "$a" -p "$p" shutdown nosave >/dev/null 2>&1
while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.01; done
rm -f "$f.pid" "/var/lib/redis/floor-$p.conf"
[ "$n" != fail ] || exit 1
echo "$t0 $t1"`

// redisFloor runs redisFloorScript on node1 and returns the time from redis-server's start to
// cluster_state:ok.
func (b *bench) redisFloor(ctx context.Context) (procResult, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd, err := b.lab.Command(ctx, b.lab.Nodes()[0].Name, "bash", "-c", redisFloorScript, "redis-floor", b.addrs[0], redisFloorPort)
	if err != nil {
		return procResult{}, err
	}
	cmd.Env = append(cmd.Env, "LC_ALL=C") // EPOCHREALTIME with a decimal point
	out, err := cmd.CombinedOutput()
	p := procResult{output: string(out)}
	if err != nil {
		return p, fmt.Errorf("%w\n%s", err, lastLines(p.output, 5))
	}
	var t0, t1 float64
	if _, err := fmt.Sscan(lastLines(p.output, 1), &t0, &t1); err != nil || t1 < t0 {
		return p, fmt.Errorf("want two times, got %q", lastLines(p.output, 1))
	}
	p.dur = time.Duration((t1 - t0) * float64(time.Second))
	return p, nil
}

// parseRecap finds the recap line in runbook's JSON lines.
func parseRecap(out string) (recap, error) {
	var rc recap
	found := false
	eachLine(out, func(line []byte) {
		if !bytes.Contains(line, []byte(`"recap"`)) {
			return
		}
		var r recap
		if err := json.Unmarshal(line, &r); err == nil && r.Type == "recap" {
			rc, found = r, true
		}
	})
	if !found {
		return rc, fmt.Errorf("no recap in runbook output:\n%s", lastLines(out, 15))
	}
	return rc, nil
}

// changedResults names the changed results of runbook's --json output, "host task: summary"
// each, so that a re-run expected to change nothing says what it changed.
func changedResults(out string) string {
	var parts []string
	eachLine(out, func(line []byte) {
		var r struct {
			Type, Task, Host, Status, Summary string
		}
		if json.Unmarshal(line, &r) == nil && r.Type == "result" && r.Status == "changed" {
			parts = append(parts, fmt.Sprintf("%s %s: %s", r.Host, r.Task, r.Summary))
		}
	})
	if len(parts) == 0 {
		return "no changed result in the output"
	}
	return strings.Join(parts, "; ")
}

// eachLine calls fn with every line of out (runbook's --json output: a line may be long).
func eachLine(out string, fn func(line []byte)) {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fn(sc.Bytes())
	}
}

var changedRe = regexp.MustCompile(`\bchanged=(\d+)`)

// ansibleChanged sums changed= over the lines of Ansible's PLAY RECAP.
func ansibleChanged(out string) int {
	_, recap, ok := strings.Cut(out, "PLAY RECAP")
	if !ok {
		return -1
	}
	sum := 0
	for _, m := range changedRe.FindAllStringSubmatch(recap, -1) {
		n, _ := strconv.Atoi(m[1])
		sum += n
	}
	return sum
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func loadResults(path string) (Results, error) {
	var r Results
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read results: %w", err)
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("read results %s: %w", path, err)
	}
	return r, nil
}

// with returns the results with set replacing any earlier set of the same host count, sorted by
// host count.
func (r Results) with(set HostSet) Results {
	out := Results{}
	added := false
	for _, s := range r.Sets {
		if s.Hosts == set.Hosts {
			continue
		}
		if !added && s.Hosts > set.Hosts {
			out.Sets = append(out.Sets, set)
			added = true
		}
		out.Sets = append(out.Sets, s)
	}
	if !added {
		out.Sets = append(out.Sets, set)
	}
	return out
}
