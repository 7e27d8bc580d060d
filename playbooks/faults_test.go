package playbooks_test

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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runbook/runbook/playbooks/reliability"
	"github.com/runbook/runbook/testenv"
)

// faultKeys is how many keys are written before each fault and read back after the re-apply.
const faultKeys = 10000

// faultRunTimeout bounds the apply a fault is injected into; an apply still running then is a
// finding of its own (it hangs).
const faultRunTimeout = 2 * time.Minute

// event is one line of `runbook apply --json`: a result or the recap.
type event struct {
	Type    string `json:"type"`
	Task    string `json:"task"`
	Host    string `json:"host"`
	Status  string `json:"status"`
	Summary string `json:"summary"`
	Changed int    `json:"changed"`
	Failed  int    `json:"failed"`
}

// watchedRun is what an apply with a fault injected into it did.
type watchedRun struct {
	// Exit is the exit status; -1 when the process did not exit by itself (killed on timeout).
	Exit int
	// Recap is the recap line, nil when none was printed.
	Recap *event
	// Failures are the failed results, "host task: summary".
	Failures []string
	// Fired is true when the trigger matched and the fault was injected.
	Fired bool
	// FaultErr is the fault's own error.
	FaultErr error
	// FaultAt is when the fault was injected; End when the process exited.
	FaultAt, End time.Time
	// Stderr is the command's standard error.
	Stderr string
	// Lines is the event stream.
	Lines []string
}

// summary says in one line what the tool did once the fault was injected.
func (w watchedRun) summary() string {
	var b strings.Builder
	switch {
	case w.Exit == -1:
		fmt.Fprintf(&b, "still running after %s, killed", faultRunTimeout)
	case w.Exit == 0:
		b.WriteString("apply succeeded")
	default:
		fmt.Fprintf(&b, "apply exited %d", w.Exit)
	}
	if w.Recap == nil {
		b.WriteString(", no recap")
	} else {
		fmt.Fprintf(&b, " (%d changed, %d failed)", w.Recap.Changed, w.Recap.Failed)
	}
	if w.Fired && !w.End.IsZero() {
		fmt.Fprintf(&b, " %.1f s after the fault", w.End.Sub(w.FaultAt).Seconds())
	}
	if len(w.Failures) > 0 {
		b.WriteString("; " + firstFailure(w.Failures))
	}
	return b.String()
}

// firstFailure returns the first failure and how many others there were.
func firstFailure(fs []string) string {
	s := fs[0]
	if len(s) > 240 {
		s = s[:240] + "..."
	}
	if len(fs) > 1 {
		s += fmt.Sprintf(" (and %d more failed)", len(fs)-1)
	}
	return s
}

// applyWatched runs `runbook apply --json args`, reads its event stream, and calls fault once: the
// first time trigger returns true for an event. The run is bounded by faultRunTimeout.
func applyWatched(t *testing.T, trigger func(event) bool, fault func(cmd *exec.Cmd) error, args ...string) watchedRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), faultRunTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, runbookBin, append([]string{"apply", "--json"}, args...)...)
	// A run that hangs is asked for its goroutines (the Go runtime prints them on SIGQUIT).
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	cmd.WaitDelay = 10 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start runbook apply: %v", err)
	}
	var w watchedRun
	began := time.Now()
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		w.Lines = append(w.Lines, fmt.Sprintf("%6.1fs %s", time.Since(began).Seconds(), sc.Text()))
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch {
		case ev.Type == "recap":
			rc := ev
			w.Recap = &rc
		case ev.Status == "failed":
			w.Failures = append(w.Failures, fmt.Sprintf("%s %s: %s", ev.Host, ev.Task, ev.Summary))
		}
		if !w.Fired && trigger(ev) {
			w.Fired, w.FaultAt = true, time.Now()
			w.FaultErr = fault(cmd)
		}
	}
	_, _ = io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	w.End = time.Now()
	w.Stderr = stderr.String()
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		w.Exit = -1
	case err == nil:
		w.Exit = 0
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		w.Exit = exit.ExitCode()
	default:
		t.Fatalf("runbook apply %v: %v", args, err)
	}
	return w
}

// resultOf matches the first result on host of any of tasks (any of their for_each elements):
// site.hcl configures and starts every host's first instance in tasks of their own
// (redis_config_first, redis_start_first), ahead of the others.
func resultOf(host string, tasks ...string) func(event) bool {
	return func(ev event) bool {
		if ev.Type != "result" || ev.Host != host {
			return false
		}
		for _, task := range tasks {
			if ev.Task == task || strings.HasPrefix(ev.Task, task+"[") {
				return true
			}
		}
		return false
	}
}

// clusterTaskStarts matches the last result of redis_listening, the only dependency of
// redis_cluster: the walk starts redis_cluster right after it (the --json stream has no
// task-start event).
func clusterTaskStarts(results int) func(event) bool {
	seen := 0
	return func(ev event) bool {
		if ev.Type == "result" && strings.HasPrefix(ev.Task, "redis_listening[") {
			seen++
		}
		return seen == results
	}
}

// dropSSH ends every SSH connection of host by killing sshd's per-connection processes (every
// sshd but the listener, which is PID 1 of the host): runbook's connection drops while the host,
// its sshd listener and its redis-servers stay up. It fails when there was no connection to drop.
func dropSSH(ctx context.Context, lab *testenv.Lab, host string) error {
	out, err := lab.Exec(ctx, host, `n=0
for p in $(pgrep -x sshd); do
  if [ "$p" != 1 ]; then kill -KILL "$p" && n=$((n+1)); fi
done
echo "$n"`)
	if err != nil {
		return fmt.Errorf("drop ssh connections of %s: %w: %s", host, err, out)
	}
	if strings.TrimSpace(out) == "0" {
		return fmt.Errorf("drop ssh connections of %s: no connection to drop", host)
	}
	return nil
}

// liveClient is python3-redis's RedisCluster reading the keys written before a fault and writing
// keys of its own, one command every 10 ms, until stopped; it counts the commands that raised.
type liveClient struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	copied         chan struct{} // closed when stdout is copied
}

// clientStats is what liveClient saw.
type clientStats struct {
	Ops        int    `json:"ops"`
	Errors     int    `json:"errors"`
	WrongReads int    `json:"wrong_reads"`
	FirstError string `json:"first_error"`
}

func startLiveClient(t *testing.T, addrs []string) *liveClient {
	t.Helper()
	script := `
import json, signal, sys, time
from redis.cluster import RedisCluster, ClusterNode
hosts, n = sys.argv[1].split(","), int(sys.argv[2])
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
rc = RedisCluster(startup_nodes=[ClusterNode(h, 6379) for h in hosts], decode_responses=True,
                  socket_timeout=1, socket_connect_timeout=1)
rc.get("key:0")
print("ready", flush=True)
st = {"ops": 0, "errors": 0, "wrong_reads": 0, "first_error": ""}
i = 0
while not stop:
    k = i % n
    try:
        if i % 2 == 0:
            if rc.get("key:%d" % k) != "value:%d" % k:
                st["wrong_reads"] += 1
        else:
            rc.set("live:%d" % k, "v")
    except Exception as e:
        st["errors"] += 1
        if not st["first_error"]:
            st["first_error"] = "%s: %s" % (type(e).__name__, e)
    st["ops"] += 1
    i += 1
    time.sleep(0.01)
print(json.dumps(st))
`
	c := &liveClient{cmd: exec.Command("/usr/bin/python3", "-c", script, strings.Join(addrs, ","), fmt.Sprint(faultKeys))}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.cmd.Stderr = &c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start python3 RedisCluster client: %v", err)
	}
	c.copied = make(chan struct{})
	ready := make(chan bool, 1)
	go func() {
		defer close(c.copied)
		r := bufio.NewReader(out)
		line, _ := r.ReadString('\n')
		ready <- line == "ready\n"
		_, _ = io.Copy(&c.stdout, r)
	}()
	t.Cleanup(func() { c.stop(t) })
	// The fault must find the client connected: it is not what is measured at start-up.
	select {
	case ok := <-ready:
		if !ok {
			c.stop(t)
			t.Fatalf("python3 RedisCluster client did not start:\n%s", c.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("python3 RedisCluster client not ready within 20 s")
	}
	return c
}

// stop ends the client (SIGTERM, then SIGKILL after 20 s) and returns what it saw.
func (c *liveClient) stop(t *testing.T) clientStats {
	t.Helper()
	var st clientStats
	if c.cmd.ProcessState != nil {
		return st
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() {
		<-c.copied
		done <- c.cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("python3 RedisCluster client: %v\n%s%s", err, c.stdout.String(), c.stderr.String())
			return st
		}
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
		t.Errorf("python3 RedisCluster client did not stop within 20 s")
		return st
	}
	if err := json.Unmarshal(bytes.TrimSpace(c.stdout.Bytes()), &st); err != nil {
		t.Errorf("python3 RedisCluster client printed %q: %v", c.stdout.String(), err)
	}
	return st
}

// writeRow appends row to the file named by RUNBOOK_RELIABILITY_OUT, when it is set.
func writeRow(t *testing.T, row reliability.Row) {
	path := os.Getenv("RUNBOOK_RELIABILITY_OUT")
	if path == "" {
		return
	}
	b, err := json.Marshal(row)
	if err != nil {
		t.Errorf("reliability row: %v", err)
		return
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Errorf("reliability report: %v", err)
		return
	}
	defer f.Close()
	if _, err := f.Write(append(b, '\n')); err != nil {
		t.Errorf("reliability report %s: %v", path, err)
	}
}

// faultCase is one fault scenario.
type faultCase struct {
	name string
	// replace is the host killed and revived with an empty disk before the faulted apply, which
	// is then a node replacement; "" makes the faulted apply the first install on fresh hosts.
	replace string
	// trigger returns a fresh matcher of the event the fault is injected at.
	trigger func() func(event) bool
	// fault is injected into the running apply; it returns the host it hit.
	fault     func(t *testing.T, f *faultLab, cmd *exec.Cmd) (string, error)
	faultText string
	// recover puts the lab back after the faulted apply exited (revive, heal); nil: nothing to do.
	recover     func(ctx context.Context, f *faultLab) error
	recoverText string
	// takeover: with two hosts' masters down the cluster has no majority; the first re-apply must
	// refuse and say so, and the operator's decision (-var allow_takeover=true) must converge.
	takeover bool
	// short scenarios run under -short too.
	short bool
}

// faultLab is the lab of a scenario and the host its fault hit.
type faultLab struct {
	lab  *testenv.Lab
	hit  string
	note string
}

// killHost kills a fixed host.
func killHost(host string) func(*testing.T, *faultLab, *exec.Cmd) (string, error) {
	return func(_ *testing.T, f *faultLab, _ *exec.Cmd) (string, error) {
		return host, f.lab.Kill(context.Background(), host)
	}
}

// killBusiestHost kills the host that holds the most masters right now (as a host other than
// replaced sees it): during a replacement, the host that took over the lost host's shard.
func killBusiestHost(replaced string) func(*testing.T, *faultLab, *exec.Cmd) (string, error) {
	return func(t *testing.T, f *faultLab, _ *exec.Cmd) (string, error) {
		name := map[string]string{}
		var from testenv.Host
		for _, h := range f.lab.Nodes() {
			name[h.Address] = h.Name
			if h.Name != replaced && from.Name == "" {
				from = h
			}
		}
		masters := map[string]int{}
		for _, n := range clusterNodes(t, from.Address, 6379) {
			if n.isMaster && !n.failed && n.slots != "" {
				masters[name[n.host]]++
			}
		}
		busiest := ""
		for _, h := range f.lab.Nodes() {
			if busiest == "" || masters[h.Name] > masters[busiest] {
				busiest = h.Name
			}
		}
		f.note = fmt.Sprintf(", which held %d masters", masters[busiest])
		return busiest, f.lab.Kill(context.Background(), busiest)
	}
}

// reviveHit revives the host the fault killed.
func reviveHit(wipe bool) func(context.Context, *faultLab) error {
	return func(ctx context.Context, f *faultLab) error {
		return f.lab.Revive(ctx, f.hit, wipe)
	}
}

// TestFaults injects faults into running applies on the lab — hosts killed during each phase,
// a partition, a dropped SSH connection, SIGINT — and checks that the next `runbook apply
// site.hcl` converges to the seed's layout with no key written before the fault lost. The
// scenarios share one lab while they pass; after a failure each later scenario gets a lab of its
// own, so that one finding does not hide the others.
func TestFaults(t *testing.T) {
	requireTools(t)
	opts := testenv.Options{Nodes: 3}
	shared := testenv.Start(t, opts)
	ports := sitePorts
	instances := opts.Nodes * len(ports)

	cases := []faultCase{
		{
			name:        "kill during cluster create",
			trigger:     func() func(event) bool { return clusterTaskStarts(instances) },
			fault:       killHost("node3"),
			faultText:   "first install on fresh hosts; a host killed when redis_cluster starts",
			recover:     reviveHit(false),
			recoverText: "revived, disk kept",
		},
		{
			name:        "kill during upload",
			replace:     "node2",
			trigger:     func() func(event) bool { return resultOf("node2", "redis_config_first", "redis_config") },
			fault:       killHost("node2"),
			faultText:   "node2 replacement; node2 killed at its first redis_config result",
			recover:     reviveHit(false),
			recoverText: "revived, disk kept (configs partly written)",
		},
		{
			name:        "kill during start",
			replace:     "node3",
			trigger:     func() func(event) bool { return resultOf("node3", "redis_start_first", "redis_start") },
			fault:       killHost("node3"),
			faultText:   "node3 replacement; node3 killed at its first redis_start result",
			recover:     reviveHit(true),
			recoverText: "revived, disk wiped",
		},
		{
			name:        "kill of the replaced host during converge",
			replace:     "node1",
			trigger:     func() func(event) bool { return clusterTaskStarts(instances) },
			fault:       killHost("node1"),
			faultText:   "node1 replacement; node1 killed again when redis_cluster starts",
			recover:     reviveHit(true),
			recoverText: "revived, disk wiped",
		},
		{
			name:        "kill of a host holding two masters during converge",
			replace:     "node1",
			trigger:     func() func(event) bool { return clusterTaskStarts(instances) },
			fault:       killBusiestHost("node1"),
			faultText:   "node1 replacement; the host that took over node1's shard killed when redis_cluster starts",
			recover:     reviveHit(false),
			recoverText: "revived, disk kept",
			takeover:    true,
		},
		{
			name:    "partition during converge",
			replace: "node3",
			trigger: func() func(event) bool { return clusterTaskStarts(instances) },
			fault: func(_ *testing.T, f *faultLab, _ *exec.Cmd) (string, error) {
				return "node1", f.lab.Partition(context.Background(), "node1")
			},
			faultText:   "node3 replacement; node1 partitioned when redis_cluster starts",
			recover:     func(ctx context.Context, f *faultLab) error { return f.lab.Heal(ctx, "node1") },
			recoverText: "healed after the apply exited",
		},
		{
			name:    "ssh connection dropped during converge",
			replace: "node2",
			trigger: func() func(event) bool { return clusterTaskStarts(instances) },
			fault: func(_ *testing.T, f *faultLab, _ *exec.Cmd) (string, error) {
				return "node1", dropSSH(context.Background(), f.lab, "node1")
			},
			faultText:   "node2 replacement; node1's per-connection sshd processes killed when redis_cluster starts (host, listener and redis-servers stay up)",
			recoverText: "none",
			short:       true,
		},
		{
			name:    "ssh connection dropped during upload",
			replace: "node1",
			trigger: func() func(event) bool { return resultOf("node1", "redis_config_first", "redis_config") },
			fault: func(_ *testing.T, f *faultLab, _ *exec.Cmd) (string, error) {
				return "node1", dropSSH(context.Background(), f.lab, "node1")
			},
			faultText:   "node1 replacement; node1's per-connection sshd processes killed at its first redis_config result",
			recoverText: "none",
		},
		{
			name:    "SIGINT during converge",
			replace: "node3",
			trigger: func() func(event) bool { return clusterTaskStarts(instances) },
			fault: func(_ *testing.T, _ *faultLab, cmd *exec.Cmd) (string, error) {
				return "runbook", cmd.Process.Signal(os.Interrupt)
			},
			faultText:   "node3 replacement; runbook sent SIGINT when redis_cluster starts",
			recoverText: "none",
			short:       true,
		},
	}

	sharedOK, installed := true, false
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && !tc.short {
				t.Skip("slow scenario (runs without -short)")
			}
			f := &faultLab{lab: shared}
			if !sharedOK {
				f.lab, installed = testenv.Start(t, opts), false
			}
			lab := f.lab
			ctx := context.Background()
			inv := lab.InventoryPath()
			addrs := nodeAddrs(lab)
			row := reliability.Row{Scenario: tc.name, Fault: tc.faultText, Recovery: tc.recoverText, NoData: tc.replace == ""}
			defer func() {
				row.Passed = !t.Failed()
				sharedOK = sharedOK && row.Passed
				writeRow(t, row)
			}()
			var client *liveClient
			if tc.replace != "" {
				if !installed {
					apply(t, "-i", inv, "site.hcl")
				}
				checkLayout(t, lab, ports, 2)
				keys(t, "write", addrs, faultKeys)
				client = startLiveClient(t, addrs)
				if err := lab.Kill(ctx, tc.replace); err != nil {
					t.Fatal(err)
				}
				if err := lab.Revive(ctx, tc.replace, true); err != nil {
					t.Fatal(err)
				}
			}

			w := applyWatched(t, tc.trigger(), func(cmd *exec.Cmd) error {
				hit, err := tc.fault(t, f, cmd)
				f.hit = hit
				return err
			}, "-i", inv, "site.hcl")
			if f.note != "" {
				row.Fault += " (" + f.hit + f.note + ")"
			}
			row.FaultRun = w.summary()
			t.Logf("faulted apply: %s", row.FaultRun)
			if testing.Verbose() {
				t.Logf("events of the faulted apply:\n%s", strings.Join(w.Lines, "\n"))
			}
			if !w.Fired {
				t.Fatalf("the fault was never injected: the trigger event did not appear (%s)", row.FaultRun)
			}
			if w.FaultErr != nil {
				t.Fatalf("inject fault: %v", w.FaultErr)
			}
			if w.Exit == -1 {
				t.Errorf("the faulted apply did not end within %s; events:\n%s\nstderr (goroutines):\n%s",
					faultRunTimeout, strings.Join(w.Lines, "\n"), w.Stderr)
			}
			if tc.recover != nil {
				if err := tc.recover(ctx, f); err != nil {
					t.Fatal(err)
				}
			}

			start := time.Now()
			// a run cut off by the fault may still hold a host's lock for its lease: wait for it,
			// as the lock's message tells an operator to
			args := []string{"-i", inv, "--lock-timeout", "1m", "site.hcl"}
			if tc.takeover {
				refused := applyWatched(t, func(event) bool { return false }, nil, args...)
				if all := strings.Join(refused.Lines, "\n"); refused.Exit == 0 || !strings.Contains(all, "majority") || !strings.Contains(all, "allow_takeover") {
					t.Fatalf("re-apply with two hosts' masters down: want a refusal naming the missing majority and allow_takeover, got %s\n%s", refused.summary(), all)
				}
				row.Recovery += "; re-apply refused (no majority), then -var allow_takeover=true"
				args = append(args, "-var", "allow_takeover=true")
			}
			re := applyWatched(t, func(event) bool { return false }, nil, args...)
			if testing.Verbose() {
				t.Logf("events of the re-apply:\n%s", strings.Join(re.Lines, "\n"))
			}
			if re.Exit != 0 || re.Recap == nil {
				row.Reapply = "did not converge: " + re.summary()
				t.Fatalf("re-apply: %s\nstderr:\n%s", re.summary(), re.Stderr)
			}
			row.ConvergeSec = time.Since(w.FaultAt).Seconds()
			row.Reapply = fmt.Sprintf("converged in %.1f s (%d changed)", time.Since(start).Seconds(), re.Recap.Changed)
			checkLayout(t, lab, ports, 2)
			installed = true
			if client != nil {
				st := client.stop(t)
				row.ClientOps, row.ClientErrors, row.WrongReads, row.FirstError = st.Ops, st.Errors, st.WrongReads, st.FirstError
				row.Keys, row.KeysLost = faultKeys, keys(t, "check", addrs, faultKeys)
				if row.KeysLost != 0 {
					t.Errorf("%d of %d keys written before the fault lost\n%s", row.KeysLost, faultKeys, clusterDump(lab, ports))
				}
			}
		})
	}
}

// clusterDump describes every instance for a failure message: its CLUSTER NODES line, its number
// of keys, and the end of its log.
func clusterDump(lab *testenv.Lab, ports []int) string {
	var b strings.Builder
	for _, h := range lab.Nodes() {
		for i, p := range ports {
			addr := fmt.Sprintf("%s:%d", h.Address, p)
			nodes, _ := exec.Command("redis-cli", "-h", h.Address, "-p", fmt.Sprint(p), "cluster", "nodes").Output()
			size, _ := exec.Command("redis-cli", "-h", h.Address, "-p", fmt.Sprint(p), "dbsize").Output()
			var myself string
			for _, line := range strings.Split(string(nodes), "\n") {
				if strings.Contains(line, "myself") {
					myself = line
				}
			}
			fmt.Fprintf(&b, "%s %s keys=%s\n  %s\n", h.Name, addr, strings.TrimSpace(string(size)), myself)
			if dir, err := lab.PrivateDir(h.Name, "/var/log/redis"); err == nil {
				name := string(rune('a' + i))
				if log, err := os.ReadFile(dir + "/redis-" + name + ".log"); err == nil {
					lines := strings.Split(strings.TrimSpace(string(log)), "\n")
					if len(lines) > 40 {
						lines = lines[len(lines)-40:]
					}
					b.WriteString("    " + strings.Join(lines, "\n    ") + "\n")
				}
			}
		}
	}
	return b.String()
}
