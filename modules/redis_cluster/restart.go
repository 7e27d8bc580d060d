package redis_cluster

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/modules/internal/hostfile"
)

// proc is what the rolling restart knows of one instance's running process.
type proc struct {
	// RunID changes every time redis-server starts.
	RunID string
	// PID is INFO server process_id.
	PID string
	// Uptime is INFO server uptime_in_seconds.
	Uptime int64
	// ConfigFile is INFO server config_file ("" when started without one).
	ConfigFile string
	// ConfigMtime is the configuration file's modification time on the host (Unix seconds), -1
	// when it could not be read.
	ConfigMtime int64
	// HostNow is the host's clock when the file was looked at (Unix seconds).
	HostNow int64
	// Started is the process's start by the host's clock (ServerInfo.Started), 0 when unknown:
	// HostNow minus Uptime is then the start.
	Started int64
}

// Stale reports whether the configuration file was modified after the process started. The start
// is the host's clock minus the uptime, both in whole seconds and read together by redis-server
// (or, from a server that does not report its clock, the host's clock when the file was looked at
// minus the uptime), so a file written in the very second the process started counts as read by
// it: the playbook writes a configuration before it starts an instance, never in the same second
// after.
func (p proc) Stale() bool {
	if p.ConfigFile == "" || p.ConfigMtime < 0 {
		return false
	}
	start := p.Started
	if start <= 0 {
		start = p.HostNow - p.Uptime
	}
	return p.ConfigMtime > start
}

// expandCommand fills restart_command's placeholders for one instance.
func expandCommand(tmpl string, inst Instance, p proc) string {
	name := path.Base(p.ConfigFile)
	name = strings.TrimSuffix(name, path.Ext(name))
	return strings.NewReplacer(
		"{pid}", engine.ShellQuote(p.PID),
		"{config_file}", engine.ShellQuote(p.ConfigFile),
		"{name}", engine.ShellQuote(name),
		"{port}", strconv.Itoa(inst.Port),
		"{host}", engine.ShellQuote(inst.Host),
		"{address}", engine.ShellQuote(inst.IP),
	).Replace(tmpl)
}

// readProcs takes every reachable instance's process facts from its observation (INFO server) and
// asks each host, in one command per host and on all hosts at once, for the modification time of
// the configuration files. Nothing changes. An unreachable instance has no process to restart: its
// proc is empty (not stale).
func readProcs(ctx context.Context, t *engine.Target, s *session, top *Topology) ([]proc, error) {
	procs := make([]proc, len(s.insts))
	byHost := map[string][]int{}
	var hosts []string
	for i := range s.insts {
		o := &top.Obs[i]
		if !o.Reachable() {
			continue
		}
		procs[i] = proc{RunID: o.Server.RunID, PID: o.Server.PID, Uptime: o.Server.Uptime, Started: o.Server.Started,
			ConfigFile: o.Server.ConfigFile, ConfigMtime: -1}
		h := s.insts[i].Host
		if _, ok := byHost[h]; !ok {
			hosts = append(hosts, h)
		}
		byHost[h] = append(byHost[h], i)
	}
	idx := make([]int, len(hosts))
	for k := range hosts {
		idx[k] = k
	}
	err := parallel(idx, func(k int) error {
		return readMtimes(ctx, t, hosts[k], byHost[hosts[k]], procs)
	})
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		for _, i := range byHost[h] {
			if procs[i].ConfigFile == "" || procs[i].ConfigMtime < 0 {
				t.Logf("%s: no configuration file to compare with (config_file %q); not restarted", s.insts[i].Name(), procs[i].ConfigFile)
			}
		}
	}
	return procs, nil
}

// readMtimes reads, on host, the modification times of the configuration files of the instances
// idx into procs (and the host's clock, when a server does not report its own), with one command
// that runs one program.
func readMtimes(ctx context.Context, t *engine.Target, host string, idx []int, procs []proc) error {
	for _, i := range idx {
		procs[i].ConfigMtime = -1
	}
	cmd, needClock := mtimesRequest(idx, procs)
	if cmd == "" {
		return nil
	}
	conn, err := t.Hosts().Conn(ctx, host)
	if err != nil {
		return fmt.Errorf("connect to host %s: %w", host, err)
	}
	res, err := conn.Exec(ctx, engine.Command{Cmd: cmd})
	if err != nil {
		return fmt.Errorf("%s: read the configuration files' times: %w", host, err)
	}
	now, mtimes, err := parseMtimes(string(res.Stdout), needClock)
	if err != nil {
		return fmt.Errorf("%s: read the configuration files' times: %w (answer %q to %q)", host, err, res.Stdout, cmd)
	}
	for _, i := range idx {
		procs[i].HostNow = now
		if m, ok := mtimes[procs[i].ConfigFile]; ok && procs[i].ConfigFile != "" {
			procs[i].ConfigMtime = m
		}
	}
	return nil
}

// mtimesRequest is the command that reads the times of the configuration files of the instances
// idx (in that order; "" when none has one), and whether it reads the host's clock too.
func mtimesRequest(idx []int, procs []proc) (string, bool) {
	var files []string
	needClock := false
	for _, i := range idx {
		if procs[i].ConfigFile == "" {
			continue // started without one: nothing to compare
		}
		files = append(files, procs[i].ConfigFile)
		needClock = needClock || procs[i].Started <= 0
	}
	if len(files) == 0 {
		return "", false
	}
	return mtimesCommand(files, needClock), needClock
}

// HostProbes implements engine.HostsProber: with config_files, the read of the configuration
// files' times that a rolling restart starts with on each host, as readMtimes will send it when
// every instance runs the file declared for it and reports its own clock.
func (c *Config) HostProbes() []engine.HostProbe {
	if c.Mode != ModeRestart || len(c.ConfigFiles) == 0 {
		return nil
	}
	var hosts []string
	files := map[string][]string{}
	for _, in := range c.Instances {
		f, ok := c.ConfigFiles[fmt.Sprintf("%s:%d", in.Host, in.Port)]
		if !ok {
			continue
		}
		if _, ok := files[in.Host]; !ok {
			hosts = append(hosts, in.Host)
		}
		files[in.Host] = append(files[in.Host], f)
	}
	out := make([]engine.HostProbe, 0, len(hosts))
	for _, h := range hosts {
		// answered, where the host's files are read ahead anyway, by their stat(1) (no process of its own)
		out = append(out, engine.HostProbe{Host: h, Cmd: mtimesCommand(files[h], false), Paths: files[h], Parts: hostfile.MtimeParts(files[h])})
	}
	return out
}

var _ engine.HostsProber = (*Config)(nil)

// mtimesCommand prints "MTIME PATH" for every file that exists (following symbolic links: the
// time of what the server reads; stat goes on past one that does not, and its exit status is then
// not 0), preceded by the host's clock when clock is set.
func mtimesCommand(files []string, clock bool) string {
	cmd := hostfile.MtimesCommand(files)
	if clock {
		cmd = "date +%s; " + cmd
	}
	return cmd
}

// parseMtimes reads what mtimesCommand printed.
func parseMtimes(out string, clock bool) (int64, map[string]int64, error) {
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var now int64
	if clock {
		var err error
		if now, err = strconv.ParseInt(strings.TrimSpace(lines[0]), 10, 64); err != nil {
			return 0, nil, fmt.Errorf("clock %q: %w", lines[0], err)
		}
		lines = lines[1:]
	}
	mtimes := map[string]int64{}
	for _, l := range lines {
		if l == "" {
			continue
		}
		ts, name, ok := strings.Cut(l, " ")
		m, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil {
			return 0, nil, fmt.Errorf("unexpected line %q", l)
		}
		mtimes[name] = m
	}
	return now, mtimes, nil
}

// RestartOrder orders the instances to restart: replicas first, then masters, each group in
// declaration order. A master is failed over before it restarts, so restarting replicas first
// means the replica that takes over runs the new configuration already.
func RestartOrder(top *Topology, stale []int) (replicas, masters []int) {
	for _, i := range stale {
		if me := top.Obs[i].Myself(); me != nil && me.IsMaster() {
			masters = append(masters, i)
		} else {
			replicas = append(replicas, i)
		}
	}
	return replicas, masters
}

// FailoverTarget picks the replica that takes over from master instance mi before it restarts:
// a live replica with its link up, on another host, on the host holding the fewest masters, the
// most up-to-date first. It returns -1 when there is none.
func FailoverTarget(top *Topology, mi int) int {
	me := top.Obs[mi].Myself()
	if me == nil {
		return -1
	}
	masters := map[string]int{}
	for _, id := range top.Masters() {
		if m := top.Members[id]; m.Live {
			masters[top.Instances[m.Inst].Host]++
		}
	}
	var cands []int
	for _, rid := range top.ReplicasOf(me.ID) {
		r := top.Members[rid].Inst
		if top.Obs[r].LinkUp && !top.Obs[r].SyncInProgress && top.Instances[r].Host != top.Instances[mi].Host {
			cands = append(cands, r)
		}
	}
	// Synced replicas of one live master share its replication history, so their offsets
	// compare: the least loaded host first, then the most up-to-date.
	sort.SliceStable(cands, func(a, b int) bool {
		ha, hb := masters[top.Instances[cands[a]].Host], masters[top.Instances[cands[b]].Host]
		if ha != hb {
			return ha < hb
		}
		return top.Obs[cands[a]].Offset > top.Obs[cands[b]].Offset
	})
	if len(cands) == 0 {
		return -1
	}
	return cands[0]
}

// rollingRestart restarts, one at a time, the instances whose configuration file changed after
// they started: replicas first, then each master after a safe failover to a synced replica on
// another host, and back once it is synced again. Each restarted instance is synced and agreed on
// by the whole cluster before the next one goes. A master is never restarted while it is a master:
// without persistence it would come back empty and its replicas would copy the empty dataset.
func (c *Config) rollingRestart(ctx context.Context, t *engine.Target, s *session, d Desired, timeout time.Duration) (engine.Outcome, error) {
	top := Analyze(s.insts, s.firstObservation(ctx, t))
	procs, err := readProcs(ctx, t, s, top)
	if err != nil {
		return engine.Outcome{}, err
	}
	var stale []int
	for i, p := range procs {
		if p.Stale() {
			stale = append(stale, i)
		}
	}
	if len(stale) == 0 {
		if t.DryRun() {
			return engine.Outcome{Summary: "no instance to restart now; instances whose configuration this run changes restart at apply"}, nil
		}
		return engine.Outcome{Summary: "every instance runs its current configuration"}, nil
	}
	if !top.Exists {
		return engine.Outcome{}, errors.New("no cluster to restart: run the module in converge mode first")
	}
	if h := Health(top); len(h) > 0 {
		return engine.Outcome{}, fmt.Errorf("refusing to restart %s of an unhealthy cluster, nothing restarted: %s",
			plural(len(stale), "instance"), strings.Join(h, "; "))
	}
	replicas, masters := RestartOrder(top, stale)
	for _, mi := range masters {
		if FailoverTarget(top, mi) < 0 {
			return engine.Outcome{}, fmt.Errorf("refusing to restart, nothing restarted: master %s has no synced replica on another host to take over while it restarts", s.insts[mi].Name())
		}
	}
	r := &restarter{t: t, s: s, c: c, timeout: timeout}
	for _, i := range replicas {
		if err := r.restart(ctx, top, i, procs[i], "replica"); err != nil {
			return engine.Outcome{}, err
		}
	}
	for _, mi := range masters {
		if !t.DryRun() {
			top = Analyze(s.insts, s.c.observeAll(ctx))
		}
		if err := r.restartMaster(ctx, top, mi, procs[mi]); err != nil {
			return engine.Outcome{}, err
		}
	}
	verb := "restarted"
	if t.DryRun() {
		verb = "would restart"
	}
	sum := fmt.Sprintf("%s %s one at a time (config changed since start): %s, %s", verb, plural(len(stale), "instance"),
		plural(len(replicas), "replica"), plural(len(masters), "master"))
	if len(masters) > 0 {
		sum += ", each failed over to a replica on another host first and back once synced"
	}
	if t.DryRun() {
		return engine.Outcome{Summary: sum}, nil
	}
	// The layout is restored shard by shard; converge confirms it (and repairs what moved) once
	// the cluster has settled: right after the last failover some views still flag a node that
	// just restarted, and converge must not mistake that for a dead master.
	if err := r.waitHealthy(ctx, "the cluster to agree after the restarts"); err != nil {
		return engine.Outcome{}, err
	}
	if _, err := converge(ctx, t, s, d, timeout); err != nil {
		return engine.Outcome{}, fmt.Errorf("after the restarts: %w", err)
	}
	top = Analyze(s.insts, s.c.observeAll(ctx))
	return engine.Outcome{Summary: sum, Outputs: outputs(top)}, nil
}

// restarter performs the restarts of one rolling restart.
type restarter struct {
	t       *engine.Target
	s       *session
	c       *Config
	timeout time.Duration
}

func (r *restarter) name(i int) string { return r.s.insts[i].Name() }

// restart restarts instance i, which must be a replica, and waits until it runs again (a new
// run_id), is synced with its master and the whole cluster agrees on it.
func (r *restarter) restart(ctx context.Context, top *Topology, i int, p proc, role string) error {
	runID := p.RunID
	what := role
	if me := top.Obs[i].Myself(); me != nil && !me.IsMaster() {
		what = fmt.Sprintf("%s of %s", role, top.Name(me.MasterID))
	}
	cmd := expandCommand(r.c.RestartCommand, r.s.insts[i], p)
	return r.t.Change(ctx, engine.Change{Summary: fmt.Sprintf("restart %s (%s): %s", r.name(i), what, cmd)}, func(ctx context.Context) error {
		// The one rule that keeps data: never restart a master in place.
		repl, err := r.s.c.text(ctx, i, "INFO", "replication")
		if err != nil {
			return err
		}
		if role := ParseInfo(repl)["role"]; role != "slave" {
			return fmt.Errorf("%s is a %s now; refusing to restart it (it would come back empty)", r.name(i), role)
		}
		conn, err := r.t.Hosts().Conn(ctx, r.s.insts[i].Host)
		if err != nil {
			return fmt.Errorf("connect to host %s: %w", r.s.insts[i].Host, err)
		}
		cctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		res, err := conn.Exec(cctx, engine.Command{Cmd: cmd})
		if err != nil {
			return fmt.Errorf("run restart_command on %s: %w", r.s.insts[i].Host, err)
		}
		if err := res.Err(); err != nil {
			return fmt.Errorf("restart_command on %s: %w", r.s.insts[i].Host, err)
		}
		return r.waitSynced(ctx, i, runID)
	})
}

// waitSynced waits until instance i runs a process other than runID (when given), is a replica
// whose link is up, and every instance agrees on the layout with nothing failing.
func (r *restarter) waitSynced(ctx context.Context, i int, runID string) error {
	if err := r.t.Poll(ctx, fmt.Sprintf("%s to run again and sync with its master", r.name(i)), pollInterval, r.timeout,
		func(ctx context.Context) (bool, error) {
			if runID != "" {
				text, err := r.s.c.text(ctx, i, "INFO", "server")
				if err != nil || ParseInfo(text)["run_id"] == runID {
					return false, nil
				}
			}
			repl, err := r.s.c.text(ctx, i, "INFO", "replication")
			if err != nil {
				return false, nil
			}
			info := ParseInfo(repl)
			return info["role"] == "slave" && info["master_link_status"] == "up", nil
		}); err != nil {
		return err
	}
	var last []string
	if err := r.t.Poll(ctx, "the cluster to agree", pollInterval, r.timeout, func(ctx context.Context) (bool, error) {
		last = Health(Analyze(r.s.insts, r.s.c.observeAll(ctx)))
		return len(last) == 0, nil
	}); err != nil {
		return fmt.Errorf("after restarting %s: %s: %w", r.name(i), strings.Join(last, "; "), err)
	}
	return nil
}

// restartMaster fails master mi over to a synced replica on another host, waits until mi is that
// replica's synced replica, restarts it, and fails back to it once it is synced again.
func (r *restarter) restartMaster(ctx context.Context, top *Topology, mi int, p proc) error {
	me := top.Obs[mi].Myself()
	ri := FailoverTarget(top, mi)
	if ri < 0 && !r.t.DryRun() {
		// The restarts and failovers just before may still be resyncing a replica of this
		// master (a role switch makes its siblings follow a new master for a moment): wait for
		// one to be synced rather than give up half-way through the roll.
		_ = r.t.Poll(ctx, fmt.Sprintf("a synced replica of %s on another host", r.name(mi)), pollInterval, r.timeout,
			func(ctx context.Context) (bool, error) {
				top = Analyze(r.s.insts, r.s.c.observeAll(ctx))
				ri = FailoverTarget(top, mi)
				return ri >= 0, nil
			})
		me = top.Obs[mi].Myself()
	}
	if me == nil || ri < 0 {
		return fmt.Errorf("master %s has no synced replica on another host to take over while it restarts", r.name(mi))
	}
	ex := &executor{t: r.t, c: r.s.c, top: top, stepTimeout: 30 * time.Second}
	if err := ex.run(ctx, Step{Kind: StepFailover, Inst: ri, NodeID: me.ID, Slots: me.Slots,
		Summary: fmt.Sprintf("failover to %s (takes slots %s from %s, which restarts next)", r.name(ri), FormatRanges(me.Slots), r.name(mi))}); err != nil {
		return err
	}
	newMaster := ""
	if !r.t.DryRun() {
		// mi must be a synced replica before it restarts.
		if err := r.waitSynced(ctx, mi, ""); err != nil {
			return err
		}
		top = Analyze(r.s.insts, r.s.c.observeAll(ctx))
		if m := top.Obs[ri].Myself(); m != nil {
			newMaster = m.ID
		}
	}
	if err := r.restart(ctx, top, mi, p, "former master"); err != nil {
		return err
	}
	if !r.t.DryRun() {
		top = Analyze(r.s.insts, r.s.c.observeAll(ctx))
	}
	ex = &executor{t: r.t, c: r.s.c, top: top, stepTimeout: 30 * time.Second}
	if newMaster == "" {
		if m := top.Obs[ri].Myself(); m != nil {
			newMaster = m.ID
		}
	}
	if err := ex.run(ctx, Step{Kind: StepFailover, Inst: mi, NodeID: newMaster, Slots: me.Slots,
		Summary: fmt.Sprintf("failover back to %s (takes slots %s from %s)", r.name(mi), FormatRanges(me.Slots), r.name(ri))}); err != nil {
		return err
	}
	if r.t.DryRun() {
		return nil
	}
	return r.waitHealthy(ctx, fmt.Sprintf("the cluster to agree after %s took its slots back", r.name(mi)))
}

// waitHealthy waits until every instance agrees on the layout with nothing failing.
func (r *restarter) waitHealthy(ctx context.Context, what string) error {
	var last []string
	if err := r.t.Poll(ctx, what, pollInterval, r.timeout, func(ctx context.Context) (bool, error) {
		last = Health(Analyze(r.s.insts, r.s.c.observeAll(ctx)))
		return len(last) == 0, nil
	}); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(last, "; "), err)
	}
	return nil
}
