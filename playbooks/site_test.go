package playbooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/testenv"
)

// runbookBin is the CLI under test, built once by TestMain.
var runbookBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "runbook-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	runbookBin = filepath.Join(dir, "runbook")
	build := exec.Command("go", "build", "-o", runbookBin, "../cmd/runbook")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build runbook:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// recap is the last line of `runbook apply --json`.
type recap struct {
	Type    string `json:"type"`
	OK      int    `json:"ok"`
	Changed int    `json:"changed"`
	Failed  int    `json:"failed"`
}

// apply runs `runbook apply --json` and returns its recap; it fails the test when the command fails.
func apply(t *testing.T, args ...string) recap {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, runbookBin, append([]string{"apply", "--json"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var rc recap
	var failures []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil {
			continue
		}
		if ev["type"] == "recap" {
			json.Unmarshal([]byte(line), &rc)
		}
		if ev["status"] == "failed" {
			failures = append(failures, fmt.Sprintf("%v %v: %v", ev["host"], ev["task"], ev["summary"]))
		}
	}
	if err != nil || rc.Type != "recap" {
		t.Fatalf("runbook apply %v: %v\nfailures: %s\nstderr: %s", args, err, strings.Join(failures, "\n"), stderr.String())
	}
	return rc
}

// node is one line of CLUSTER NODES as redis-cli prints it.
type node struct {
	id, addr, host, master string
	isMaster, failed       bool
	slots                  string
}

// clusterNodes asks an instance, with redis-cli, for the cluster's view.
func clusterNodes(t *testing.T, addr string, port int) []node {
	t.Helper()
	out, err := exec.Command("redis-cli", "-h", addr, "-p", fmt.Sprint(port), "cluster", "nodes").Output()
	if err != nil {
		t.Fatalf("redis-cli cluster nodes on %s:%d: %v", addr, port, err)
	}
	var nodes []node
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		n := node{id: f[0], addr: strings.Split(f[1], "@")[0], master: f[3]}
		n.host = strings.Split(n.addr, ":")[0]
		n.isMaster = strings.Contains(f[2], "master")
		n.failed = strings.Contains(f[2], "fail") || strings.Contains(f[2], "noaddr")
		if len(f) > 8 {
			n.slots = strings.Join(f[8:], " ")
		}
		nodes = append(nodes, n)
	}
	return nodes
}

// checkLayout asserts the seed's layout: every host holds exactly one master, every master has
// `replicas` replicas, each on a host other than its master's and on distinct hosts, nothing
// failed, and every replica's link to its master is up (asked with redis-cli).
func checkLayout(t *testing.T, lab *testenv.Lab, ports []int, replicas int) {
	t.Helper()
	hosts := lab.Nodes()
	nodes := clusterNodes(t, hosts[0].Address, ports[0])
	if want := len(hosts) * len(ports); len(nodes) != want {
		t.Fatalf("cluster has %d nodes, want %d:\n%v", len(nodes), want, nodes)
	}
	byID := map[string]node{}
	mastersOn := map[string]int{}
	for _, n := range nodes {
		if n.failed {
			t.Errorf("node %s (%s) is failed or has no address", n.id, n.addr)
		}
		byID[n.id] = n
		if n.isMaster {
			mastersOn[n.host]++
		}
	}
	for _, h := range hosts {
		if mastersOn[h.Address] != 1 {
			t.Errorf("host %s holds %d masters, want 1 (%v)", h.Name, mastersOn[h.Address], mastersOn)
		}
	}
	replicaHosts := map[string][]string{}
	for _, n := range nodes {
		if n.isMaster {
			continue
		}
		m, ok := byID[n.master]
		if !ok {
			t.Errorf("replica %s follows unknown master %s", n.addr, n.master)
			continue
		}
		if m.host == n.host {
			t.Errorf("replica %s sits on the same host as its master %s", n.addr, m.addr)
		}
		replicaHosts[m.id] = append(replicaHosts[m.id], n.host)
		hp := strings.Split(n.addr, ":")
		info, err := exec.Command("redis-cli", "-h", hp[0], "-p", hp[1], "info", "replication").Output()
		if err != nil || !strings.Contains(string(info), "master_link_status:up") {
			t.Errorf("replica %s: link to master not up (%v):\n%s", n.addr, err, info)
		}
	}
	for id, hs := range replicaHosts {
		sort.Strings(hs)
		if len(hs) != replicas {
			t.Errorf("master %s has %d replicas, want %d", byID[id].addr, len(hs), replicas)
		}
		for i := 1; i < len(hs); i++ {
			if hs[i] == hs[i-1] {
				t.Errorf("master %s has two replicas on host %s", byID[id].addr, hs[i])
			}
		}
	}
	out, err := exec.Command("redis-cli", "-h", hosts[0].Address, "-p", fmt.Sprint(ports[0]), "cluster", "info").Output()
	if err != nil || !strings.Contains(string(out), "cluster_state:ok") || !strings.Contains(string(out), "cluster_slots_ok:16384") {
		t.Errorf("cluster info: %v\n%s", err, out)
	}
}

// keys writes or checks n keys through Debian's python3-redis RedisCluster, a client no one here
// wrote. It returns the number of keys missing or wrong (check) or fails the test.
func keys(t *testing.T, mode string, addrs []string, n int) int {
	t.Helper()
	script := `
import sys
from redis.cluster import RedisCluster, ClusterNode
mode, hosts, n = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
rc = RedisCluster(startup_nodes=[ClusterNode(h, 6379) for h in hosts], decode_responses=True)
p = rc.pipeline()
for i in range(n):
    if mode == "write":
        p.set("key:%d" % i, "value:%d" % i)
    else:
        p.get("key:%d" % i)
vals = p.execute()
if mode == "write":
    print(0)
else:
    print(sum(1 for i, v in enumerate(vals) if v != "value:%d" % i))
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, mode, strings.Join(addrs, ","), fmt.Sprint(n)).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 RedisCluster %s: %v\n%s", mode, err, out)
	}
	var missing int
	fmt.Sscan(strings.TrimSpace(string(out)), &missing)
	return missing
}

// waitFailover waits until no slot owner is failed in the view of a live instance.
func waitFailover(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		for _, n := range clusterNodes(t, addr, 6379) {
			if n.isMaster && n.failed && n.slots != "" {
				ok = false
			}
		}
		if ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no failover within 30 s")
}

// nodeAddrs returns the addresses of the lab's redis hosts, in order.
func nodeAddrs(lab *testenv.Lab) []string {
	var addrs []string
	for _, h := range lab.Nodes() {
		addrs = append(addrs, h.Address)
	}
	return addrs
}

// sitePorts are the instances of site.hcl on every host (its variable instances: a, b, c).
var sitePorts = []int{6379, 6380, 6381}

// startLab starts a lab for an end-to-end test; the test is skipped with -short, or when the
// clients it checks with are missing.
func startLab(t *testing.T, opts testenv.Options) *testenv.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test on the lab")
	}
	requireTools(t)
	return testenv.Start(t, opts)
}

func requireTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"redis-cli", "ldapsearch", "/usr/bin/python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import redis.cluster").Run(); err != nil {
		t.Skip("python3-redis (Debian) not installed")
	}
}

// TestSite deploys the seed on the lab (3 hosts, 9 instances, Gluu's LDAP entry), re-applies with
// no change, then replaces a failed host twice — after failover and before it — with no key lost.
func TestSite(t *testing.T) {
	lab := startLab(t, testenv.Options{Nodes: 3, LDAP: true})
	ctx := context.Background()
	inv, vars := lab.InventoryPath(), lab.LDAPVarsPath()
	ports := sitePorts
	addrs := nodeAddrs(lab)

	rc := apply(t, "-i", inv, "-var-file", vars, "site.hcl")
	if rc.Changed == 0 {
		t.Fatalf("fresh apply changed nothing: %+v", rc)
	}
	checkLayout(t, lab, ports, 2)

	// Gluu's entry points at all nine instances; every other field is as Gluu's setup wrote it.
	ldap := lab.LDAP()
	out, err := exec.Command("ldapsearch", "-LLL", "-x", "-H", ldap.URL, "-D", ldap.BindDN, "-y", ldap.PasswordFile,
		"-b", "o=gluu", "(objectClass=gluuConfiguration)", "oxCacheConfiguration").CombinedOutput()
	if err != nil {
		t.Fatalf("ldapsearch: %v\n%s", err, out)
	}
	unfolded := strings.ReplaceAll(string(out), "\n ", "")
	_, jsonText, _ := strings.Cut(unfolded, "oxCacheConfiguration: ")
	jsonText, _, _ = strings.Cut(jsonText, "\n")
	var cache struct {
		CacheProviderType      string         `json:"cacheProviderType"`
		MemcachedConfiguration map[string]any `json:"memcachedConfiguration"`
		RedisConfiguration     struct {
			RedisProviderType    string  `json:"redisProviderType"`
			Servers              string  `json:"servers"`
			DefaultPutExpiration float64 `json:"defaultPutExpiration"`
		} `json:"redisConfiguration"`
	}
	if err := json.Unmarshal([]byte(jsonText), &cache); err != nil {
		t.Fatalf("oxCacheConfiguration is not JSON: %v\n%s", err, unfolded)
	}
	var want []string
	for _, a := range addrs {
		for _, p := range ports {
			want = append(want, fmt.Sprintf("%s:%d", a, p))
		}
	}
	if cache.CacheProviderType != "REDIS" || cache.RedisConfiguration.RedisProviderType != "CLUSTER" ||
		cache.RedisConfiguration.Servers != strings.Join(want, ",") {
		t.Errorf("oxCacheConfiguration = %s, want REDIS / CLUSTER / %s", jsonText, strings.Join(want, ","))
	}
	if cache.MemcachedConfiguration["servers"] != "localhost:11211" || cache.RedisConfiguration.DefaultPutExpiration != 60 {
		t.Errorf("fields Gluu's setup wrote were not kept: %s", jsonText)
	}

	rc = apply(t, "-i", inv, "-var-file", vars, "site.hcl")
	if rc.Changed != 0 {
		t.Errorf("second apply changed %d, want 0", rc.Changed)
	}

	const n = 10000
	keys(t, "write", addrs, n)

	t.Run("replace after failover", func(t *testing.T) {
		if err := lab.Kill(ctx, "node2"); err != nil {
			t.Fatal(err)
		}
		waitFailover(t, addrs[0])
		if err := lab.Revive(ctx, "node2", true); err != nil {
			t.Fatal(err)
		}
		apply(t, "-i", inv, "-var-file", vars, "site.hcl")
		checkLayout(t, lab, ports, 2)
		if missing := keys(t, "check", addrs, n); missing != 0 {
			t.Errorf("%d of %d keys lost", missing, n)
		}
	})

	t.Run("replace before failover", func(t *testing.T) {
		if err := lab.Kill(ctx, "node3"); err != nil {
			t.Fatal(err)
		}
		if err := lab.Revive(ctx, "node3", true); err != nil {
			t.Fatal(err)
		}
		apply(t, "-i", inv, "-var-file", vars, "site.hcl")
		checkLayout(t, lab, ports, 2)
		if missing := keys(t, "check", addrs, n); missing != 0 {
			t.Errorf("%d of %d keys lost", missing, n)
		}
	})

	t.Run("host back with its disk", func(t *testing.T) {
		if err := lab.Kill(ctx, "node1"); err != nil {
			t.Fatal(err)
		}
		waitFailover(t, addrs[1])
		if err := lab.Revive(ctx, "node1", false); err != nil {
			t.Fatal(err)
		}
		apply(t, "-i", inv, "-var-file", vars, "site.hcl")
		checkLayout(t, lab, ports, 2)
		if missing := keys(t, "check", addrs, n); missing != 0 {
			t.Errorf("%d of %d keys lost", missing, n)
		}
	})
}
