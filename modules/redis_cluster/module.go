// Package redis_cluster is the redis_cluster module: it declares the layout of a Redis Cluster
// (which instances, how many replicas per master, which failure zones) and converges the live
// cluster to it, creating it from empty instances or repairing it after hosts failed and came
// back. It observes CLUSTER NODES, CLUSTER INFO and INFO on every instance, plans with a pure
// function, and performs each step (CLUSTER ADDSLOTSRANGE, MEET, REPLICATE, FAILOVER, FORGET)
// through Target.Change so that plan shows exactly what apply does.
package redis_cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

// Config is the redis_cluster block of a task.
type Config struct {
	Instances      []InstanceConfig  `hcl:"instances,attr" doc:"The redis-server instances of the cluster, a list of objects { host = inventory host name, port = number }. Each is reached at its host's inventory address."`
	Replicas       *int              `hcl:"replicas,optional" doc:"Number of replicas per master (default 1). The number of masters is the number of instances divided by replicas + 1; instances left over become extra replicas."`
	Zones          map[string]string `hcl:"zones,optional" doc:"Optional map of host name to failure zone. Replicas are placed in zones other than their master's and their siblings' where possible. Without it, a host variable named zone is used when present."`
	Password       string            `hcl:"password,optional" doc:"Optional password of the instances (sensitive). It is sent only with AUTH and is redacted from all output. Replicas need masterauth set in their configuration to sync. In modes converge and restart, running instances whose masterauth or requirepass differ from it get it first with CONFIG SET (masterauth on all, then requirepass), without a restart: adding a password to a running cluster."`
	TLS            *TLSBlock         `hcl:"tls,block" doc:"Optional TLS settings for connecting to the instances."`
	Connect        string            `hcl:"connect,optional" doc:"How to reach the instances: \"ssh\" (default) opens each connection through the SSH connection of the instance's host, so no route to the Redis ports is needed; \"direct\" uses plain TCP from where runbook runs."`
	AllowTakeover  bool              `hcl:"allow_takeover,optional" doc:"Allow CLUSTER FAILOVER TAKEOVER when fewer than a majority of masters is alive (default false: refuse). A takeover bypasses the cluster's election and can lose writes; use it only when the dead masters are gone for good."`
	Timeout        string            `hcl:"timeout,optional" doc:"Overall bound for converging, a duration such as \"2m\" (default 5m)."`
	Mode           string            `hcl:"mode,optional" doc:"\"converge\" (default) brings the cluster to the declared layout. \"prepare\" only promotes a replica of every slot owner that is down (CLUSTER FAILOVER FORCE) and changes nothing else; run it before starting redis-server on a host whose disk was wiped. \"restart\" restarts, one at a time, the instances whose configuration file changed after their process started (a rolling restart, below)."`
	Drain          []string          `hcl:"drain,optional" doc:"Hosts that must hold no master, e.g. [\"node2\"] before planned maintenance of node2: each of their masters is moved with a safe CLUSTER FAILOVER to a synced replica on another host; their replicas stay. Leave it out (run the usual playbook) to bring the masters back."`
	ConfigFiles    map[string]string `hcl:"config_files,optional" doc:"mode = \"restart\": optional map of instance (\"host:port\") to the configuration file it runs with, e.g. \"/etc/redis/a.conf\". It changes no decision (the file is still the one INFO server names): runbook reads their modification times ahead, with each host's other checks, so an unchanged cluster costs no command of its own."`
	RestartCommand string            `hcl:"restart_command,optional" doc:"mode = \"restart\": shell command, run on the instance's host, that restarts one instance and returns once it was started again, e.g. \"systemctl restart redis-cluster@{name}\". Replaced by the instance's values: {pid} (its process id), {config_file} (the configuration file it was started with), {name} (that file's name without directory and extension: a for /etc/redis/a.conf), {port}, {host} and {address}."`
}

// InstanceConfig is one element of instances.
type InstanceConfig struct {
	Host string `cty:"host" doc:"Inventory host name."`
	Port int    `cty:"port" doc:"Client port of the redis-server on that host."`
}

// TLSBlock is the tls block.
type TLSBlock struct {
	CAFile     string `hcl:"ca_file,optional" doc:"PEM file of the certificate authorities that sign the servers' certificates (default: the system's)."`
	CertFile   string `hcl:"cert_file,optional" doc:"PEM client certificate, when the servers require one (tls-auth-clients)."`
	KeyFile    string `hcl:"key_file,optional" doc:"PEM private key of cert_file."`
	ServerName string `hcl:"server_name,optional" doc:"Name to verify in the servers' certificates (default: the instance address)."`
}

// Info describes the module for the registry.
func Info() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "redis_cluster",
		Summary: "declare a Redis Cluster layout and converge to it (create, repair, rebalance)",
		Doc:     moduleDoc,
		Example: moduleExample,
		New:     func() engine.Module { return &Config{} },
		RunOnce: true,
	}
}

const moduleDoc = `redis_cluster declares the layout of a Redis Cluster and converges the running instances to it.
The task runs once for the whole group.

Layout rules, applied exactly and deterministically: masters are spread over the hosts first (each
host holds its share); each master's replicas sit on other hosts, sibling replicas on distinct
hosts, and in other zones when zones are given. Existing roles are kept whenever they obey these
rules. A warning says when the hosts cannot give perfect anti-affinity.

**Create.** When no instance is part of a cluster, every instance must be reachable, have
cluster-enabled yes, hold no keys and know only itself. Slots are assigned (ADDSLOTSRANGE), config
epochs set, the instances meet, and replicas are attached. The task is done when cluster_state is ok
on every instance, all 16384 slots are covered, every instance agrees on the layout and every
replica reports master_link_status:up.

**Converge.** After host failures: a replica of every slot owner that is down, failed or without
address is promoted (CLUSTER FAILOVER FORCE) before anything else; old node IDs are forgotten on every live instance; new empty instances meet the
cluster and become replicas so that every master has its replicas on other hosts; then safe CLUSTER
FAILOVERs restore one share of masters on every host. A host back with its disk intact rejoins and
its masters are moved back. Converge stops with an error (after promoting) while a declared instance
is unreachable.

**Which replica is promoted.** Replication offsets compare only within one replication history
(INFO replication master_replid): a replica moved to another master with CLUSTER REPLICATE keeps its
old shard's keys, master_replid and offset until its full sync completes. So a replica is passed
over, with a warning that says why, when a full sync is replacing its data
(master_sync_in_progress:1), when it holds no key while a sibling does, when one of up to 32 of its
keys sampled with RANDOMKEY hashes to a slot the dead master did not own, or when its master_replid
is the history of another shard (reported by that shard's master as master_replid or
master_replid2, or by its synced replicas). The others are grouped by master_replid; the largest
group is the shard's and its replica with the highest offset is promoted. When two groups are as
large, converge refuses and says which replicas hold which history rather than guess. Right before
CLUSTER FAILOVER FORCE, and before every safe CLUSTER FAILOVER, the replica's keys are sampled again:
a promotion whose replica no longer passes is planned again; a safe failover waits (and warns)
until the replica holds only keys of its master's slots.

**Refusals.** Nothing is changed, and the error says why, when some slots have no live copy, fewer
than a majority of masters is alive (unless allow_takeover), no replica of a dead master can be
told to hold its shard's data (above), an instance that should be empty holds keys, an instance
belongs to another cluster, or slots are migrating. An instance that refuses the password (NOAUTH,
WRONGPASS) is reported as "authentication failed", not as unreachable.

**mode = "prepare".** A host that comes back with an empty disk must not start redis-server while
its old node still owns slots: the old master's replicas would sync from the empty instance and the
shard's data would be wiped (the same happens with a master restarted without persistence). A
playbook that replaces a host therefore runs this module with mode = "prepare" before starting
redis-server there: it promotes a replica of every slot owner that is down and does nothing else.
It needs no unreachable instance to be up, and is a no-op on a healthy cluster or when there is
no cluster. Then start redis-server and run the module again in converge mode.

**Drain (drain = ["node2"]).** Before planned maintenance of a host, list it in drain: its share of
masters is zero, so converge moves each of its masters with a safe CLUSTER FAILOVER to a synced
replica on another host (the old master pauses writes until the replica has caught up, so no
acknowledged write is lost) and waits for the role switch. Its instances stay, as replicas. The
host can then be stopped or rebooted with no slot losing its owner, so clients see no failover
timeout. Converge without drain (the usual playbook) brings the masters back.

**mode = "restart" (rolling restart).** Restarts the instances whose configuration file is newer
than their process, one at a time, with restart_command, so a changed setting reaches them without
losing data. The rule: an instance is restarted when the modification time of its config_file (INFO
server), read on its host with stat, is later than its start (the host's clock minus INFO server
uptime_in_seconds, in whole seconds). Replicas go first; each is waited for until it runs again
(a new run_id), its link to its master is up and every instance agrees on the layout with none
failing. A master is never restarted while it is a master: with save "" and no AOF it would come
back empty and its replicas would copy the empty dataset. It is first failed over (safe CLUSTER
FAILOVER) to a synced replica on another host, restarted once it is a synced replica itself, and
made master again once it is synced. The cluster must be healthy before anything restarts.
Restarted instances come back empty and copy their master's data (a full sync). A configuration
file written in the very second its instance started is taken as read by it.

` + "`runbook status`" + ` shows the live layout as a grid (hosts as columns), or as a dot or SVG diagram.`

const moduleExample = `task "redis_cluster_prepare" {
  on = group.redis
  redis_cluster {
    instances = flatten([for h in ["node1", "node2", "node3"] : [for p in [6379, 6380, 6381] : { host = h, port = p }]])
    replicas  = 2
    mode      = "prepare"
  }
}

task "redis_cluster" {
  on = group.redis
  redis_cluster {
    instances = [
      { host = "node1", port = 6379 }, { host = "node1", port = 6380 }, { host = "node1", port = 6381 },
      { host = "node2", port = 6379 }, { host = "node2", port = 6380 }, { host = "node2", port = 6381 },
      { host = "node3", port = 6379 }, { host = "node3", port = 6380 }, { host = "node3", port = 6381 },
    ]
    replicas = 2
    zones    = { node1 = "a", node2 = "b", node3 = "c" }
    timeout  = "2m"
  }
}`

// Validate checks the configuration before any host is touched.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Instances) == 0 {
		errs = append(errs, errors.New("instances: at least one instance is required"))
	}
	seen := map[string]bool{}
	for i, in := range c.Instances {
		if in.Host == "" {
			errs = append(errs, fmt.Errorf("instances[%d]: host is required", i))
		}
		if in.Port < 1 || in.Port > 55535 {
			errs = append(errs, fmt.Errorf("instances[%d]: port %d out of range 1-55535 (the cluster bus uses port + 10000)", i, in.Port))
		}
		k := fmt.Sprintf("%s:%d", in.Host, in.Port)
		if seen[k] {
			errs = append(errs, fmt.Errorf("instances[%d]: %s is declared twice", i, k))
		}
		seen[k] = true
	}
	r := c.replicas()
	if r < 0 {
		errs = append(errs, fmt.Errorf("replicas: %d is negative", r))
	} else if len(c.Instances) > 0 && len(c.Instances)/(r+1) < 1 {
		errs = append(errs, fmt.Errorf("replicas: %d instances cannot hold one master with %d replicas", len(c.Instances), r))
	}
	switch c.Connect {
	case "", "ssh", "direct":
	default:
		errs = append(errs, fmt.Errorf("connect: %q is not \"ssh\" or \"direct\"", c.Connect))
	}
	switch c.Mode {
	case "", ModeConverge, ModePrepare:
	case ModeRestart:
		if strings.TrimSpace(c.RestartCommand) == "" {
			errs = append(errs, errors.New("restart_command: required with mode = \"restart\""))
		}
	default:
		errs = append(errs, fmt.Errorf("mode: %q is not \"converge\", \"prepare\" or \"restart\"", c.Mode))
	}
	if c.Mode != ModeRestart && len(c.ConfigFiles) > 0 {
		errs = append(errs, errors.New("config_files: only used with mode = \"restart\""))
	}
	for _, k := range slices.Sorted(maps.Keys(c.ConfigFiles)) {
		if !seen[k] {
			errs = append(errs, fmt.Errorf("config_files: %q is not a declared instance (host:port)", k))
		} else if !path.IsAbs(c.ConfigFiles[k]) {
			errs = append(errs, fmt.Errorf("config_files[%q]: %q is not an absolute path", k, c.ConfigFiles[k]))
		}
	}
	hosts := map[string]bool{}
	for _, in := range c.Instances {
		hosts[in.Host] = true
	}
	drained := map[string]bool{}
	for i, h := range c.Drain {
		if !hosts[h] {
			errs = append(errs, fmt.Errorf("drain[%d]: host %q holds no declared instance", i, h))
		}
		drained[h] = true
	}
	if len(hosts) > 0 && len(drained) >= len(hosts) {
		errs = append(errs, errors.New("drain: every host is drained, masters would have nowhere to go"))
	}
	if _, err := c.timeout(); err != nil {
		errs = append(errs, err)
	}
	if c.TLS != nil && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	return errors.Join(errs...)
}

func (c *Config) replicas() int {
	if c.Replicas == nil {
		return 1
	}
	return *c.Replicas
}

func (c *Config) timeout() (time.Duration, error) {
	if c.Timeout == "" {
		return 5 * time.Minute, nil
	}
	d, err := time.ParseDuration(c.Timeout)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("timeout: %q is not a positive duration such as \"2m\"", c.Timeout)
	}
	return d, nil
}

func (c *Config) desired() Desired {
	mode := c.Mode
	if mode == "" {
		mode = ModeConverge
	}
	d := Desired{Replicas: c.replicas(), AllowTakeover: c.AllowTakeover, Mode: mode}
	for _, h := range c.Drain {
		if d.Drain == nil {
			d.Drain = map[string]bool{}
		}
		d.Drain[h] = true
	}
	return d
}

// session is what one Run or Status needs: the declared instances and a client for each.
type session struct {
	insts []Instance
	c     *clients
	// memoKey is the key of the instances' observation in the run's Memo.
	memoKey string
}

func (c *Config) open(ctx context.Context, t *engine.Target) (*session, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	hosts := t.Hosts()
	if hosts == nil {
		return nil, errors.New("redis_cluster needs access to the inventory hosts, the engine gave none")
	}
	t.Secrets().Add(c.Password)
	var insts []Instance
	for _, ic := range c.Instances {
		h, ok := hosts.Lookup(ic.Host)
		if !ok {
			return nil, fmt.Errorf("instances: host %q is not in the inventory", ic.Host)
		}
		ip := h.Address
		if net.ParseIP(ip) == nil {
			addrs, err := net.DefaultResolver.LookupHost(ctx, ip)
			if err != nil || len(addrs) == 0 {
				return nil, fmt.Errorf("resolve address %q of host %s (the cluster needs IP addresses): %w", ip, ic.Host, err)
			}
			ip = addrs[0]
		}
		zone := c.Zones[ic.Host]
		if zone == "" && c.Zones == nil {
			zone = h.Vars["zone"]
		}
		insts = append(insts, Instance{Host: ic.Host, Port: ic.Port, IP: ip, Zone: zone})
	}
	tlsCfg, err := loadTLS(t, c.TLS)
	if err != nil {
		return nil, err
	}
	var dial dialFunc
	if c.Connect == "direct" {
		var d net.Dialer
		dial = func(ctx context.Context, _, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	} else {
		dial = func(ctx context.Context, host, addr string) (net.Conn, error) {
			conn, err := hosts.Conn(ctx, host)
			if err != nil {
				return nil, fmt.Errorf("connect to host %s: %w", host, err)
			}
			return conn.DialContext(ctx, "tcp", addr)
		}
	}
	return &session{insts: insts, c: newClients(insts, dial, c.Password, tlsCfg), memoKey: c.memoKey(t, insts)}, nil
}

// Run observes the cluster, plans, and (in apply mode) executes the plan, re-observing and
// re-planning until the cluster has converged or the timeout ends. In mode "restart" it runs the
// rolling restart instead.
func (c *Config) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	s, err := c.open(ctx, t)
	if err != nil {
		return engine.Outcome{}, err
	}
	defer s.c.close()
	timeout, _ := c.timeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := c.desired()
	if d.Mode == ModeConverge || d.Mode == ModeRestart {
		if _, err := c.livePassword(ctx, t, s); err != nil {
			return engine.Outcome{}, err
		}
	}
	if d.Mode == ModeRestart {
		return c.rollingRestart(ctx, t, s, d, timeout)
	}
	if c.Password == "" && d.Mode == ModeConverge {
		t.Warnf("no password is set: the cluster accepts unauthenticated clients from anywhere that reaches its ports (set a password, e.g. site.hcl's redis_password)")
	}
	return converge(ctx, t, s, d, timeout)
}

// converge observes, plans and executes until the cluster is as declared (or, in plan mode and in
// prepare mode, runs one round).
func converge(ctx context.Context, t *engine.Target, s *session, d Desired, timeout time.Duration) (engine.Outcome, error) {
	created := false
	for round := 0; ; round++ {
		var top *Topology
		if round == 0 {
			top = s.c.analyze(ctx, s.firstObservation(ctx, t))
		} else {
			top = s.c.topology(ctx)
		}
		plan, err := PlanSteps(top, d)
		if IsTransient(err) {
			top, plan, err = waitTransient(ctx, t, s, d, top, err)
		}
		if err != nil {
			if round > 0 && IsRefusal(err) {
				return engine.Outcome{}, fmt.Errorf("after %d rounds of changes: %w", round, err)
			}
			if t.DryRun() && onlyUnreachable(err, top) {
				return engine.Outcome{}, fmt.Errorf("cannot plan the cluster before its instances answer: %s", DescribeUnreachable(top))
			}
			return engine.Outcome{}, err
		}
		for _, w := range plan.Warnings {
			if round == 0 {
				t.Warnf("%s", w)
			}
		}
		for _, w := range plan.Skipped {
			t.Warnf("not promoted: %s", w)
		}
		created = created || plan.Create
		ex := &executor{t: t, c: s.c, top: top, stepTimeout: 30 * time.Second}
		replan, err := ex.runSteps(ctx, plan.Steps, !t.DryRun() && round < 20)
		if err != nil {
			return engine.Outcome{}, err
		}
		if replan {
			continue
		}
		if err := blockedErr(top, plan); err != nil {
			return engine.Outcome{}, err
		}
		if t.DryRun() {
			return engine.Outcome{Summary: planSummary(top, plan, d)}, nil
		}
		if d.Mode == ModePrepare {
			return engine.Outcome{Summary: summary(top, plan, d, len(t.Changes()))}, nil
		}
		if round >= 20 {
			return engine.Outcome{}, fmt.Errorf("not converged after %d rounds of changes", round)
		}
		if round == 0 && len(plan.Steps) == 0 && len(Health(top)) == 0 {
			// Nothing was planned and nothing is unsettled: this observation is what
			// waitSettled would find settled at once, and what the outputs would read.
			return engine.Outcome{Summary: summary(top, &Plan{Create: created}, d, len(t.Changes())), Outputs: outputs(top)}, nil
		}
		top, mark, err := waitSettled(ctx, t, s, d, timeout)
		if err != nil {
			return engine.Outcome{}, err
		}
		if top != nil {
			// The observation that found the cluster settled is what the outputs read, and
			// what the redis_cluster tasks that follow (the rolling restart) start from, as
			// long as nothing changes meanwhile.
			t.Memo().Put(s.memoKey, top.Obs, mark)
			return engine.Outcome{Summary: summary(top, &Plan{Create: created}, d, len(t.Changes())), Outputs: outputs(top)}, nil
		}
	}
}

// transientWait bounds how long converge observes again a cluster it would refuse to touch only
// for states Redis leaves by itself; Redis needs about a second (its next cluster message).
const transientWait = 15 * time.Second

// waitTransient observes the cluster again until the planner no longer refuses it for a state
// Redis leaves by itself (RefusalError.Transient), for at most transientWait; then the refusal
// stands. Nothing changes while it waits. It returns the last topology it observed (top when none),
// also with an error.
func waitTransient(ctx context.Context, t *engine.Target, s *session, d Desired, top *Topology, refusal error) (*Topology, *Plan, error) {
	var plan *Plan
	err := refusal
	perr := t.Poll(ctx, "the cluster to settle", 100*time.Millisecond, transientWait, func(ctx context.Context) (bool, error) {
		top = s.c.topology(ctx)
		plan, err = PlanSteps(top, d)
		return !IsTransient(err), nil
	})
	if perr != nil {
		if ctx.Err() != nil {
			return top, nil, fmt.Errorf("%w (while it waited for the cluster to settle: %v)", refusal, ctx.Err())
		}
		return top, nil, fmt.Errorf("%w (unchanged after %s of waiting)", err, transientWait)
	}
	return top, plan, err
}

// waitSettled waits until the cluster settles after a round of changes: converged (the
// topology that shows it, observed after mark), or the same steps planned for a while (nil: a
// transient state right after a change does not trigger a new round).
func waitSettled(ctx context.Context, t *engine.Target, s *session, d Desired, timeout time.Duration) (*Topology, engine.MemoMark, error) {
	var last []string
	var settled *Topology
	var mark engine.MemoMark
	var pending string
	var pendingSince time.Time
	err := t.Poll(ctx, "the cluster to converge", pollInterval, timeout, func(ctx context.Context) (bool, error) {
		mk := t.Memo().Mark()
		top := s.c.topology(ctx)
		last = Health(top)
		p, perr := PlanSteps(top, d)
		if len(last) == 0 {
			if perr == nil && len(p.Steps) == 0 {
				settled, mark = top, mk
			}
			return true, nil
		}
		if perr != nil || len(p.Steps) == 0 {
			pending = ""
			return false, nil
		}
		key := stepsKey(p.Steps)
		if key != pending {
			pending, pendingSince = key, time.Now()
			return false, nil
		}
		return time.Since(pendingSince) > time.Second, nil
	})
	if err != nil {
		return nil, mark, fmt.Errorf("cluster not converged: %s: %w", strings.Join(last, "; "), err)
	}
	return settled, mark, nil
}

// onlyUnreachable reports whether err is a refusal whose only reason is unreachable instances.
func onlyUnreachable(err error, top *Topology) bool {
	var r *RefusalError
	return len(top.Unreachable) > 0 && errors.As(err, &r) && len(r.Reasons) == 1 && r.Reasons[0] == DescribeUnreachable(top)
}

func stepsKey(steps []Step) string {
	var b strings.Builder
	for _, s := range steps {
		b.WriteString(s.Summary)
		b.WriteByte('\n')
	}
	return b.String()
}

func blockedErr(top *Topology, p *Plan) error {
	var parts []string
	down := 0
	for _, i := range p.Unreachable {
		if !top.Obs[i].AuthFailed() {
			down++
		}
	}
	if down > 0 {
		parts = append(parts, DescribeUnreachable(top)+"; start them and run again (mode = \"prepare\" promotes replicas of their masters first)")
	} else if len(p.Unreachable) > 0 {
		parts = append(parts, DescribeUnreachable(top))
	}
	parts = append(parts, p.Blocked...)
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("cannot converge: %s", strings.Join(parts, "; "))
}

// plural writes "1 master" or "3 masters".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// liveRoles counts the live masters owning slots and the live replicas.
func liveRoles(top *Topology) (masters, replicas int) {
	for _, id := range top.IDs {
		if m := top.Members[id]; m.Live && m.Master && len(m.Slots) > 0 {
			masters++
		} else if m.Live && !m.Master {
			replicas++
		}
	}
	return masters, replicas
}

// planSummary says what apply would do, in plan mode.
func planSummary(top *Topology, plan *Plan, d Desired) string {
	n := len(plan.Steps)
	switch {
	case d.Mode == ModePrepare && n == 0:
		return "no slot owner is down"
	case d.Mode == ModePrepare:
		return fmt.Sprintf("would promote replicas of %s", plural(n, "down master"))
	case plan.Create && plan.Layout != nil:
		replicas := 0
		for _, sh := range plan.Layout.Shards {
			replicas += len(sh.Replicas)
		}
		return fmt.Sprintf("will create the cluster: %s, %s", plural(len(plan.Layout.Shards), "master"), plural(replicas, "replica"))
	case n == 0:
		m, r := liveRoles(top)
		return fmt.Sprintf("cluster as declared: %s, %s", plural(m, "master"), plural(r, "replica"))
	}
	if n == 1 {
		return "will converge: " + plan.Steps[0].Summary
	}
	return fmt.Sprintf("will converge: %s", plural(n, "step"))
}

// summary says what apply did.
func summary(top *Topology, plan *Plan, d Desired, changes int) string {
	if d.Mode == ModePrepare {
		if changes == 0 {
			return "no slot owner is down"
		}
		return fmt.Sprintf("promoted replicas of %s", plural(changes, "down master"))
	}
	verb := "cluster converged"
	if plan.Create {
		verb = "cluster created"
	}
	if changes == 0 {
		verb = "cluster as declared"
	}
	if !top.Exists {
		return fmt.Sprintf("%s: %s", verb, plural(changes, "change"))
	}
	m, r := liveRoles(top)
	return fmt.Sprintf("%s: %s, %s, %s", verb, plural(m, "master"), plural(r, "replica"), plural(changes, "change"))
}

func outputs(top *Topology) map[string]cty.Value {
	var masters []cty.Value
	for _, id := range top.Masters() {
		if m := top.Members[id]; m.Live {
			masters = append(masters, cty.StringVal(top.Instances[m.Inst].Name()))
		}
	}
	out := map[string]cty.Value{"masters": cty.ListValEmpty(cty.String)}
	if len(masters) > 0 {
		out["masters"] = cty.ListVal(masters)
	}
	return out
}

// Interface guards.
var (
	_ engine.Module         = (*Config)(nil)
	_ engine.Validator      = (*Config)(nil)
	_ engine.StatusReporter = (*Config)(nil)
)
