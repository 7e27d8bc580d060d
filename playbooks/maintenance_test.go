package playbooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/testenv"
)

// mastersOn counts, in the cluster's view from addr, the masters whose address is host.
func mastersOn(t *testing.T, addr, host string) int {
	t.Helper()
	n := 0
	for _, nd := range clusterNodes(t, addr, 6379) {
		if nd.isMaster && nd.slots != "" && nd.host == host {
			n++
		}
	}
	return n
}

// TestDrainNode drains node2 before planned maintenance (no master left on it, every key still
// readable), reboots it while drained (the cluster stays ok and keys stay readable with no
// failover), then re-applies site.hcl, which restarts node2's instances and gives it its master
// back, with no key lost.
func TestDrainNode(t *testing.T) {
	lab := startLab(t, testenv.Options{Nodes: 3})
	ctx := context.Background()
	inv := lab.InventoryPath()
	ports := sitePorts
	addrs := nodeAddrs(lab)
	apply(t, "-i", inv, "site.hcl")
	checkLayout(t, lab, ports, 2)
	const n = 10000
	keys(t, "write", addrs, n)

	rc := apply(t, "-i", inv, "-var", "node=node2", "drain-node.hcl")
	if rc.Changed != 1 {
		t.Errorf("drain changed %d tasks, want 1", rc.Changed)
	}
	if m := mastersOn(t, addrs[0], addrs[1]); m != 0 {
		t.Fatalf("node2 still holds %d masters after the drain", m)
	}
	// Its replicas stay: node2 keeps its three instances, all replicas with their link up.
	for _, p := range ports {
		out, err := exec.Command("redis-cli", "-h", addrs[1], "-p", fmt.Sprint(p), "info", "replication").Output()
		if err != nil || !strings.Contains(string(out), "role:slave") || !strings.Contains(string(out), "master_link_status:up") {
			t.Errorf("node2:%d after the drain: %v\n%s", p, err, out)
		}
	}
	if missing := keys(t, "check", addrs, n); missing != 0 {
		t.Errorf("after the drain: %d of %d keys lost", missing, n)
	}
	if rc := apply(t, "-i", inv, "-var", "node=node2", "drain-node.hcl"); rc.Changed != 0 {
		t.Errorf("second drain changed %d tasks, want 0", rc.Changed)
	}

	// Maintenance: node2 goes down. No master was on it, so no slot is left without its owner.
	if err := lab.Kill(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("redis-cli", "-h", addrs[0], "-p", "6379", "cluster", "info").Output()
	if err != nil || !strings.Contains(string(out), "cluster_state:ok") {
		t.Errorf("cluster info while node2 is down: %v\n%s", err, out)
	}
	if missing := keys(t, "check", []string{addrs[0], addrs[2]}, n); missing != 0 {
		t.Errorf("while node2 is down: %d of %d keys unreadable", missing, n)
	}
	if err := lab.Revive(ctx, "node2", false); err != nil {
		t.Fatal(err)
	}

	apply(t, "-i", inv, "site.hcl")
	checkLayout(t, lab, ports, 2)
	if missing := keys(t, "check", addrs, n); missing != 0 {
		t.Errorf("after node2 is back: %d of %d keys lost", missing, n)
	}
}

// copyPlaybooks copies site.hcl and the templates into a fresh directory laid out as the repository
// is (playbooks/, templates/), so that a test can edit the configuration as an operator would.
func copyPlaybooks(t *testing.T) (site, conf string) {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"playbooks", "templates"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob("../templates/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, "site.hcl") {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(dir, "templates", filepath.Base(f))
		if f == "site.hcl" {
			dest = filepath.Join(dir, "playbooks", "site.hcl")
		}
		if err := os.WriteFile(dest, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "playbooks", "site.hcl"), filepath.Join(dir, "templates", "redis.conf")
}

// instanceFacts asks an instance for INFO server's run_id and a CONFIG GET value.
func instanceFacts(t *testing.T, addr string, port int, param string) (runID, value string) {
	t.Helper()
	out, err := exec.Command("redis-cli", "-h", addr, "-p", fmt.Sprint(port), "info", "server").Output()
	if err != nil {
		t.Fatalf("redis-cli info server on %s:%d: %v", addr, port, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
			runID = v
		}
	}
	out, err = exec.Command("redis-cli", "-h", addr, "-p", fmt.Sprint(port), "config", "get", param).Output()
	if err != nil {
		t.Fatalf("redis-cli config get on %s:%d: %v", addr, port, err)
	}
	f := strings.Fields(string(out))
	if len(f) == 2 {
		value = f[1]
	}
	return runID, value
}

// writerScript writes w:0, w:1, ... in order through python3-redis RedisCluster, one SET at a time,
// until the stop file exists (or the time or count bound is reached); it creates the started file
// after its first 1000 acknowledged writes. A failed SET is counted and
// retried with the same key, so the acknowledged writes are exactly w:0 .. w:acked-1. It prints
// one JSON line: acked, errors, the longest time between two acknowledgements, the first error.
const writerScript = `
import json, os, sys, time
from redis.cluster import RedisCluster, ClusterNode
hosts, stop, started, seconds, limit = sys.argv[1].split(","), sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
rc = RedisCluster(startup_nodes=[ClusterNode(h, 6379) for h in hosts], decode_responses=True,
                  socket_timeout=2, socket_connect_timeout=2)
acked, errors, first_error, longest = 0, 0, "", 0.0
end = time.monotonic() + seconds
last = time.monotonic()
while acked < limit and time.monotonic() < end and not os.path.exists(stop):
    try:
        rc.set("w:%d" % acked, "v:%d" % acked)
    except Exception as e:
        errors += 1
        if not first_error:
            first_error = "%s: %s" % (type(e).__name__, e)
        time.sleep(0.02)
        continue
    now = time.monotonic()
    longest = max(longest, now - last)
    last = now
    acked += 1
    if acked == 1000:
        open(started, "w").close()
print(json.dumps({"acked": acked, "errors": errors, "longest_pause_ms": round(longest * 1000), "first_error": first_error}))
`

// readerScript counts the keys w:0 .. w:n-1 that are missing or wrong.
const readerScript = `
import sys
from redis.cluster import RedisCluster, ClusterNode
hosts, n = sys.argv[1].split(","), int(sys.argv[2])
rc = RedisCluster(startup_nodes=[ClusterNode(h, 6379) for h in hosts], decode_responses=True)
p = rc.pipeline()
for i in range(n):
    p.get("w:%d" % i)
print(sum(1 for i, v in enumerate(p.execute()) if v != "v:%d" % i))
`

// writerResult is what writerScript prints.
type writerResult struct {
	Acked          int    `json:"acked"`
	Errors         int    `json:"errors"`
	LongestPauseMS int    `json:"longest_pause_ms"`
	FirstError     string `json:"first_error"`
}

// TestRollingRestart changes a Redis setting in the playbook while a client writes without pause,
// and checks that the rolling restart restarted every instance exactly once, one at a time, with no
// acknowledged write lost and the layout restored; it reports the client's errors and its longest
// pause.
func TestRollingRestart(t *testing.T) {
	lab := startLab(t, testenv.Options{Nodes: 3})
	ctx := context.Background()
	inv := lab.InventoryPath()
	ports := sitePorts
	names := map[int]string{6379: "a", 6380: "b", 6381: "c"}
	hosts := lab.Nodes()
	addrs := nodeAddrs(lab)
	site, conf := copyPlaybooks(t)
	apply(t, "-i", inv, site)
	checkLayout(t, lab, ports, 2)

	before := map[string]string{}
	for _, h := range hosts {
		for _, p := range ports {
			id, mem := instanceFacts(t, h.Address, p, "maxmemory")
			if mem != "0" {
				t.Fatalf("%s:%d: maxmemory %s before the change, want 0", h.Name, p, mem)
			}
			before[fmt.Sprintf("%s:%d", h.Name, p)] = id
		}
	}

	// The operator's change: a memory limit in the instances' configuration.
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, append(data, []byte("maxmemory 200mb\n")...), 0o644); err != nil {
		t.Fatal(err)
	}

	tmp := t.TempDir()
	stop, started := filepath.Join(tmp, "stop"), filepath.Join(tmp, "started")
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	writer := exec.CommandContext(wctx, "/usr/bin/python3", "-c", writerScript, strings.Join(addrs, ","), stop, started, "150", "2000000")
	var wout, werr bytes.Buffer
	writer.Stdout, writer.Stderr = &wout, &werr
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	// The client writes before the change as well.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer acknowledged no 1000 writes in 30 s: %s", werr.String())
		}
	}
	start := time.Now()
	rc := apply(t, "-i", inv, site)
	took := time.Since(start)
	time.Sleep(time.Second) // the client goes on writing for a second after the change
	if err := os.WriteFile(stop, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writer.Wait(); err != nil {
		t.Fatalf("writer: %v\n%s", err, werr.String())
	}
	var w writerResult
	if err := json.Unmarshal(wout.Bytes(), &w); err != nil {
		t.Fatalf("writer output %q: %v\n%s", wout.String(), err, werr.String())
	}
	t.Logf("apply with the rolling restart: %v, %d tasks changed", took.Round(time.Millisecond), rc.Changed)
	t.Logf("client: %d writes acknowledged, %d errors, longest pause %d ms, first error %q", w.Acked, w.Errors, w.LongestPauseMS, w.FirstError)
	if w.Acked < 1000 {
		t.Errorf("the client acknowledged only %d writes", w.Acked)
	}

	checkLayout(t, lab, ports, 2)
	for _, h := range hosts {
		for _, p := range ports {
			name := fmt.Sprintf("%s:%d", h.Name, p)
			id, mem := instanceFacts(t, h.Address, p, "maxmemory")
			if id == before[name] {
				t.Errorf("%s was not restarted (same run_id)", name)
			}
			if mem != "209715200" {
				t.Errorf("%s: maxmemory %s, want 209715200", name, mem)
			}
			// Every start writes one "Server initialized" line in the instance's log: the
			// install, then exactly one restart.
			out, err := lab.Exec(ctx, h.Name, "grep -c 'Server initialized' /var/log/redis/redis-"+names[p]+".log")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if starts, _ := strconv.Atoi(strings.TrimSpace(out)); starts != 2 {
				t.Errorf("%s started %d times, want 2 (install and one restart)", name, starts)
			}
		}
	}

	out, err := exec.Command("/usr/bin/python3", "-c", readerScript, strings.Join(addrs, ","), fmt.Sprint(w.Acked)).CombinedOutput()
	if err != nil {
		t.Fatalf("reader: %v\n%s", err, out)
	}
	if lost, _ := strconv.Atoi(strings.TrimSpace(string(out))); lost != 0 {
		t.Errorf("%d of %d acknowledged writes lost", lost, w.Acked)
	}

	// Nothing is left to restart.
	if rc := apply(t, "-i", inv, site); rc.Changed != 0 {
		t.Errorf("re-apply changed %d tasks, want 0", rc.Changed)
	}
}

// authedCli runs redis-cli against one instance with password (given in REDISCLI_AUTH, never on a
// command line) and returns its output; with an empty password it sends none.
func authedCli(t *testing.T, password, addr string, port int, args ...string) string {
	t.Helper()
	cmd := exec.Command("redis-cli", append([]string{"-h", addr, "-p", fmt.Sprint(port)}, args...)...)
	cmd.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli %v on %s:%d: %v\n%s", args, addr, port, err, out)
	}
	return strings.TrimSpace(string(out))
}

// TestAddPassword: a cluster installed without a password gets one (the operator sets
// redis_password). One apply makes every instance require it, with every replica synced (a
// replica restarted with masterauth cannot sync from a master that has no password yet, so the
// password is set on the running instances before the rolling restart), and no key lost; the
// next apply changes nothing. Checked with redis-cli and python3-redis.
func TestAddPassword(t *testing.T) {
	lab := startLab(t, testenv.Options{Nodes: 3})
	inv := lab.InventoryPath()
	addrs := nodeAddrs(lab)
	apply(t, "-i", inv, "site.hcl")
	if missing := keys(t, "write", addrs, 500); missing != 0 {
		t.Fatalf("writing keys: %d", missing)
	}

	const password = "added-later-7Qx"
	start := time.Now()
	rc := apply(t, "-i", inv, "--var", "redis_password="+password, "site.hcl")
	t.Logf("apply adding the password: %v, %d tasks changed", time.Since(start).Round(time.Millisecond), rc.Changed)

	masters := 0
	for _, h := range lab.Nodes() {
		for _, p := range sitePorts {
			name := fmt.Sprintf("%s:%d", h.Name, p)
			if out := authedCli(t, "", h.Address, p, "ping"); !strings.Contains(out, "NOAUTH") {
				t.Errorf("%s answers PING without the password: %q", name, out)
			}
			if out := authedCli(t, password, h.Address, p, "config", "get", "masterauth"); out != "masterauth\n"+password {
				t.Errorf("%s: masterauth is not the password", name)
			}
			repl := authedCli(t, password, h.Address, p, "info", "replication")
			switch {
			case strings.Contains(repl, "role:master"):
				masters++
			case !strings.Contains(repl, "master_link_status:up"):
				t.Errorf("%s is not synced with its master:\n%s", name, repl)
			}
		}
	}
	if masters != 3 {
		t.Errorf("%d masters, want 3", masters)
	}
	script := `
import sys
from redis.cluster import RedisCluster, ClusterNode
hosts, password, n = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3])
rc = RedisCluster(startup_nodes=[ClusterNode(h, 6379) for h in hosts], password=password, decode_responses=True)
p = rc.pipeline()
for i in range(n):
    p.get("key:%d" % i)
print(sum(1 for i, v in enumerate(p.execute()) if v != "value:%d" % i))
`
	// The password is an argument of a local client the test starts, not of a remote command.
	out, err := exec.Command("/usr/bin/python3", "-c", script, strings.Join(addrs, ","), password, "500").CombinedOutput()
	if err != nil {
		t.Fatalf("python3 RedisCluster with the password: %v\n%s", err, out)
	}
	if missing := strings.TrimSpace(string(out)); missing != "0" {
		t.Errorf("%s of 500 keys missing or wrong after the password was added", missing)
	}
	if rc := apply(t, "-i", inv, "--var", "redis_password="+password, "site.hcl"); rc.Changed != 0 {
		t.Errorf("the apply after adding the password changed %d tasks, want 0", rc.Changed)
	}
}
