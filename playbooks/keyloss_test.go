package playbooks_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runbook/runbook/testenv"
)

// rdbFile is where an instance reads and writes its RDB file: CONFIG GET dir and dbfilename.
func rdbFile(ctx context.Context, c *redis.Client) (string, error) {
	var parts []string
	for _, key := range []string{"dir", "dbfilename"} {
		v, err := c.ConfigGet(ctx, key).Result()
		if err != nil {
			return "", fmt.Errorf("config get %s: %w", key, err)
		}
		parts = append(parts, v[key])
	}
	return strings.TrimSuffix(parts[0], "/") + "/" + parts[1], nil
}

// instanceClient is a plain (non-cluster) client of one instance.
func instanceClient(t *testing.T, addr string, port int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("%s:%d", addr, port), DialTimeout: 3 * time.Second,
		ReadTimeout: 5 * time.Second, MaxRetries: -1, Protocol: 2})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestInstancesOwnTheirRDBFile deploys site.hcl and asks every instance where its RDB file is: no
// two instances of a host may share one. A replica's full sync writes the master's RDB stream to a
// temporary file, renames it over its RDB file and then loads that file by name; two instances of
// one host that share the file and sync at the same moment (every replacement of a wiped host
// does that) load each other's data, and a later failover makes the wrong shard a master.
func TestInstancesOwnTheirRDBFile(t *testing.T) {
	lab := startLab(t, testenv.Options{Nodes: 3})
	ports := sitePorts
	apply(t, "-i", lab.InventoryPath(), "site.hcl")
	ctx := context.Background()
	for _, h := range lab.Nodes() {
		owner := map[string]int{}
		for _, p := range ports {
			f, err := rdbFile(ctx, instanceClient(t, h.Address, p))
			if err != nil {
				t.Fatalf("%s:%d: %v", h.Name, p, err)
			}
			if q, ok := owner[f]; ok {
				t.Errorf("%s: instances %d and %d share the RDB file %s", h.Name, q, p, f)
				continue
			}
			owner[f] = p
		}
	}
}

// keyspaceProblems looks at every instance directly (not through the cluster): every key it holds
// must hash to a slot its shard owns (its own slots when it is a master, its master's otherwise),
// and a replica must hold as many keys as its master. No client writes while it runs.
func keyspaceProblems(t *testing.T, lab *testenv.Lab, ports []int) []string {
	t.Helper()
	ctx := context.Background()
	type inst struct {
		name   string
		c      *redis.Client
		id     string
		master string // own ID when master
		size   int64
	}
	var insts []*inst
	owner := map[int]string{} // slot -> master ID
	for _, h := range lab.Nodes() {
		for _, p := range ports {
			in := &inst{name: fmt.Sprintf("%s:%d", h.Name, p), c: instanceClient(t, h.Address, p)}
			text, err := in.c.ClusterNodes(ctx).Result()
			if err != nil {
				t.Fatalf("%s: cluster nodes: %v", in.name, err)
			}
			for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
				f := strings.Fields(line)
				if len(f) < 8 || !strings.Contains(f[2], "myself") {
					continue
				}
				in.id, in.master = f[0], f[3]
				if strings.Contains(f[2], "master") {
					in.master = f[0]
					for _, r := range f[8:] {
						lo, hi, _ := strings.Cut(r, "-")
						a, _ := strconv.Atoi(lo)
						b := a
						if hi != "" {
							b, _ = strconv.Atoi(hi)
						}
						for s := a; s <= b; s++ {
							owner[s] = f[0]
						}
					}
				}
			}
			insts = append(insts, in)
		}
	}
	size := map[string]int64{}
	for _, in := range insts {
		n, err := in.c.DBSize(ctx).Result()
		if err != nil {
			t.Fatalf("%s: dbsize: %v", in.name, err)
		}
		in.size = n
		if in.id == in.master {
			size[in.id] = n
		}
	}
	var out []string
	for _, in := range insts {
		if in.id != in.master && in.size != size[in.master] {
			out = append(out, fmt.Sprintf("%s holds %d keys, its master %s holds %d", in.name, in.size, shortNode(in.master), size[in.master]))
		}
		var foreign, sample []string
		iter := in.c.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			slot, err := in.c.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatalf("%s: cluster keyslot %s: %v", in.name, k, err)
			}
			if owner[int(slot)] != in.master {
				foreign = append(foreign, k)
				if len(sample) < 3 {
					sample = append(sample, fmt.Sprintf("%s (slot %d, owned by %s)", k, slot, shortNode(owner[int(slot)])))
				}
			}
		}
		if err := iter.Err(); err != nil {
			t.Fatalf("%s: scan: %v", in.name, err)
		}
		if len(foreign) > 0 {
			role := "replica of " + shortNode(in.master)
			if in.id == in.master {
				role = "master"
			}
			out = append(out, fmt.Sprintf("%s (%s %s) holds %d of %d keys of slots its shard does not own, e.g. %s",
				in.name, shortNode(in.id), role, len(foreign), in.size, strings.Join(sample, ", ")))
		}
	}
	return out
}

func shortNode(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// TestReplaceWipedHostKeepsShards replaces every host in turn, three times, the way the node replacement
// runbook does (the host dies and comes back with an empty disk before the cluster noticed, then
// site.hcl is applied), and after every apply looks at every instance's keyspace: each must hold
// only keys of its own shard, as many as its master, and every key must still be readable. The
// three new instances of a replaced host full-sync at the same moment; when they share an RDB file
// one of them loads a sibling's shard, and the failover that gives the host its master back hands
// that wrong data the slots of another shard (whose keys are then lost).
func TestReplaceWipedHostKeepsShards(t *testing.T) {
	lab := startLab(t, testenv.Options{Nodes: 3})
	ctx := context.Background()
	inv := lab.InventoryPath()
	ports := sitePorts
	addrs := nodeAddrs(lab)
	apply(t, "-i", inv, "site.hcl")
	const n = 200
	keys(t, "write", addrs, n)
	if p := keyspaceProblems(t, lab, ports); len(p) > 0 {
		t.Fatalf("after the deploy:\n%s", strings.Join(p, "\n"))
	}
	for round := 1; round <= 3; round++ {
		for _, h := range lab.Nodes() {
			step := fmt.Sprintf("round %d, %s replaced", round, h.Name)
			if err := lab.Kill(ctx, h.Name); err != nil {
				t.Fatal(err)
			}
			if err := lab.Revive(ctx, h.Name, true); err != nil {
				t.Fatal(err)
			}
			apply(t, "-i", inv, "site.hcl")
			checkLayout(t, lab, ports, 2)
			p := keyspaceProblems(t, lab, ports)
			if missing := keys(t, "check", addrs, n); missing != 0 {
				p = append(p, fmt.Sprintf("%d of %d keys lost", missing, n))
			}
			if len(p) > 0 {
				t.Fatalf("%s:\n%s", step, strings.Join(p, "\n"))
			}
		}
	}
}
