// Package run executes a loaded playbook: it connects to the hosts (one connection each for the whole
// run), walks the task graph, runs each task instance on its hosts in parallel, runs the handlers that
// were notified, and reports every step as an Event. Plan and apply run the same code; in plan mode
// modules record their changes instead of making them.
package run

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/lock"
)

// Mode is plan or apply.
type Mode string

// The two modes.
const (
	Plan  Mode = "plan"
	Apply Mode = "apply"
)

// Options control a run.
type Options struct {
	Mode Mode
	// Limit restricts the run to these hosts (nil: all).
	Limit []string
	// Forks is the number of hosts worked on at once (default 20).
	Forks int
	// FailFast stops every host after the first failure.
	FailFast bool
	// Connector opens host connections.
	Connector Connector
	// Sink receives events (may be nil).
	Sink Sink
	// Trace reports every remote command as a log event (the CLI's --verbose).
	Trace bool
	// Lock, when set, takes the run lock on every host for the whole of an apply (plan changes
	// nothing and takes none). Its Waiting and Lost callbacks default to warning events.
	Lock *lock.Options
}

// Runner runs one playbook once.
type Runner struct {
	pb   *config.Playbook
	opts Options
	pool *Pool

	sinkMu sync.Mutex

	mu        sync.Mutex
	failed    map[string]bool                 // hosts that failed: their remaining tasks do not run
	notified  map[string]map[string]bool      // handler -> hosts
	outputs   map[string]map[string]cty.Value // task -> host -> outputs (object; for_each: object of keys)
	pending   map[string]map[string]bool      // plan: task -> hosts where it would change something
	ancestors map[string][]string             // task -> the tasks it depends on directly
	probes    *probeCache                     // probes read ahead of the tasks (Prober)
	memo      *engine.Memo                    // what tasks share while nothing changes
	recap     Recap
}

// beforeChange drops what was read ahead or shared that c, about to be made on host, may make
// untrue.
func (r *Runner) beforeChange(host string, c engine.Change) {
	r.probes.invalidate(host, c)
	r.memo.Changed()
}

// New returns a Runner for pb.
func New(pb *config.Playbook, opts Options) *Runner {
	if opts.Forks <= 0 {
		opts.Forks = 20
	}
	if opts.Mode == "" {
		opts.Mode = Plan
	}
	r := &Runner{
		pb:        pb,
		opts:      opts,
		pool:      nil,
		failed:    map[string]bool{},
		notified:  map[string]map[string]bool{},
		outputs:   map[string]map[string]cty.Value{},
		pending:   map[string]map[string]bool{},
		ancestors: map[string][]string{},
		probes:    newProbeCache(),
		memo:      engine.NewMemo(),
		recap:     Recap{PerHost: map[string]*HostCount{}},
	}
	connector := opts.Connector
	if opts.Trace {
		connector = ConnectorFunc(func(ctx context.Context, h *config.Host) (engine.Conn, error) {
			c, err := opts.Connector.Connect(ctx, h)
			if err != nil {
				return nil, err
			}
			r.emit(Event{Type: EventLog, Host: h.Name, Summary: fmt.Sprintf("connected to %s@%s:%d", h.User, h.Address, h.Port)})
			return tracingConn{Conn: c, host: h.Name, r: r}, nil
		})
	}
	inner := connector
	connector = ConnectorFunc(func(ctx context.Context, h *config.Host) (engine.Conn, error) {
		c, err := inner.Connect(ctx, h)
		if err != nil {
			return nil, err
		}
		return cachingConn{Conn: c, host: h.Name, cache: r.probes}, nil
	})
	r.pool = NewPool(pb, connector)
	return r
}

// Run executes the playbook and returns the recap. The error is non-nil when anything failed.
func (r *Runner) Run(ctx context.Context) (*Recap, error) {
	start := time.Now()
	defer r.pool.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	hosts, err := r.hostsOfRun()
	if err != nil {
		return nil, err
	}
	r.recap.Hosts = hosts
	for _, h := range hosts {
		r.recap.PerHost[h] = &HostCount{}
	}
	var names []string
	for _, t := range append(append([]*config.Task(nil), r.pb.Tasks...), r.pb.Handlers...) {
		names = append(names, t.Name)
	}
	r.emit(Event{Type: EventStart, Hosts: hosts, Tasks: names})

	phase := func(what string, since time.Time) {
		r.emit(Event{Type: EventLog, Summary: fmt.Sprintf("%s in %s (%s since the start)", what,
			time.Since(since).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))})
	}
	t0 := time.Now()
	// The checks are planned (modules decoded for every host) while the hosts are connected: the
	// plan reads no host, and connecting is mostly waiting for the hosts. Planned (and the cache
	// marked) before any task can change anything: a change made while the checks are read must
	// keep them out of the cache.
	planned := make(chan map[string]*hostProbes, 1)
	go func() { planned <- r.planProbes(hosts) }()
	// Each host's connection is ready (made or failed) when its channel is closed.
	ready := make(map[string]chan struct{}, len(hosts))
	for _, h := range hosts {
		ready[h] = make(chan struct{})
	}
	connected := make(chan struct{})
	go func() {
		defer close(connected)
		r.connectAll(ctx, hosts, ready)
		phase(fmt.Sprintf("connected to %s", plural(len(hosts), "host")), t0)
	}()
	prefetched := make(chan struct{})
	if r.opts.Lock != nil && r.opts.Mode == Apply {
		// The checks are read in the session that takes the lock, right after it took it: one
		// round trip for both. A host's lock is taken as soon as it is connected, while the
		// others still connect. The tasks start once every lock is held; a host's commands wait
		// for its checks, its forwarded connections do not.
		plans := <-planned
		for h := range plans {
			r.probes.expect(h)
		}
		locks, err := r.lockHosts(ctx, hosts, plans, ready)
		<-connected
		if err != nil {
			for h := range plans {
				r.probes.done(h)
			}
			return nil, err
		}
		defer locks.Release() // before the pool closes the connections
		// connecting and locking overlap: each host is locked once it is connected
		phase("connected and took the run lock", t0)
		go func() {
			defer close(prefetched)
			var wg sync.WaitGroup
			var n atomic.Int32
			for h, hp := range plans {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer r.probes.done(h)
					if res, ok := locks.Then(ctx, h); ok && r.fileProbes(h, hp, res) {
						n.Add(1)
					}
				}()
			}
			wg.Wait()
			if n.Load() > 0 {
				phase(fmt.Sprintf("read the checks of %s ahead, in the lock's sessions", plural(int(n.Load()), "host")), t0)
			}
		}()
	} else {
		// The checks are read ahead while the tasks start: a host's commands wait for its
		// checks, but a task that only reaches services through forwarded connections
		// (redis_cluster's observation) need not.
		<-connected
		plans := r.reachablePlans(<-planned)
		t0 = time.Now()
		for _, h := range hosts {
			r.probes.expect(h)
		}
		go func() {
			defer close(prefetched)
			n := r.prefetch(ctx, hosts, plans)
			for _, h := range hosts {
				r.probes.done(h)
			}
			if n > 0 {
				phase(fmt.Sprintf("read the checks of %s ahead", plural(n, "host")), t0)
			}
		}()
	}
	defer func() { <-prefetched }()

	var firstFail sync.Once
	walkErr := r.pb.Graph.Walk(ctx, 0, func(ctx context.Context, name string) error {
		t, _ := r.pb.Task(name)
		failed := r.runTask(ctx, t, nil)
		if failed && r.opts.FailFast {
			firstFail.Do(cancel)
		}
		if failed && t.RunOnce {
			// a run_once task acts for the whole group: what depends on it must not run anywhere
			return errRunOnceFailed
		}
		return nil
	}, func(name, cause string) {
		t, _ := r.pb.Task(name)
		hosts, _ := r.pb.TaskHosts(t)
		for _, h := range hosts {
			if !r.inLimit(h) || r.hostFailed(h) {
				continue
			}
			r.result(name, h, StatusSkipped, fmt.Sprintf("not run: it depends on task %q, which failed", cause), nil, 0)
			if t.RunOnce {
				break
			}
		}
	})
	if walkErr != nil && !errors.Is(walkErr, errRunOnceFailed) {
		return nil, walkErr
	}
	for _, h := range r.pb.Handlers {
		r.mu.Lock()
		targets := r.notified[h.Name]
		r.mu.Unlock()
		if len(targets) == 0 {
			continue
		}
		if r.runTask(ctx, h, targets) && r.opts.FailFast {
			firstFail.Do(cancel)
		}
	}
	<-prefetched // its phase line comes before the recap
	r.recap.Duration = time.Since(start)
	rc := r.recap
	r.emit(Event{Type: EventRecap, Recap: &rc, Duration: rc.Duration})
	if rc.Failed > 0 {
		return &rc, fmt.Errorf("%d failed", rc.Failed)
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.Canceled) {
		return &rc, ctx.Err()
	}
	return &rc, nil
}

// lockHosts takes the run lock on every reachable host, all or nothing, and reads the hosts'
// planned probes in the sessions that take it. Hosts may still be connecting: a host's attempt
// starts when its ready channel is closed, and a host that could not be connected is left out.
func (r *Runner) lockHosts(ctx context.Context, hosts []string, plans map[string]*hostProbes, ready map[string]chan struct{}) (*lock.Set, error) {
	opts := *r.opts.Lock
	opts.Then = map[string]string{}
	for h, hp := range plans {
		// runs in the holding shell itself: probeScript's own lines only print, every probe
		// runs in a subshell of its own
		opts.Then[h] = hp.script()
	}
	if opts.Waiting == nil {
		opts.Waiting = func(host, msg string) { r.emit(Event{Type: EventWarning, Host: host, Summary: msg}) }
	}
	if opts.Lost == nil {
		opts.Lost = func(host string, err error) {
			r.emit(Event{Type: EventWarning, Host: host, Summary: fmt.Sprintf("the run lock was lost (%v): another run may now change this host", err)})
		}
	}
	conns := map[string]engine.Conn{}
	for _, h := range hosts {
		conns[h] = dialingConn{pool: r.pool, host: h, ready: ready[h]}
	}
	return lock.Acquire(ctx, conns, opts)
}

// dialingConn is a host's connection while the run still connects the hosts: its methods wait
// until connectAll has made (or failed) the connection. A host that could not be connected is
// out of the run, and out of the lock: its error wraps lock.ErrUnreachable.
type dialingConn struct {
	pool  *Pool
	host  string
	ready <-chan struct{}
}

func (c dialingConn) conn(ctx context.Context) (engine.Conn, error) {
	select {
	case <-c.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	conn, err := c.pool.Conn(ctx, c.host)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", lock.ErrUnreachable, err)
	}
	if cc, ok := conn.(cachingConn); ok {
		conn = cc.Conn // the host's commands wait for the checks the lock's session reads
	}
	return conn, nil
}

// Exec implements engine.Conn.
func (c dialingConn) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	conn, err := c.conn(ctx)
	if err != nil {
		return engine.ExecResult{}, err
	}
	return conn.Exec(ctx, cmd)
}

// DialContext implements engine.Conn.
func (c dialingConn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	return conn.DialContext(ctx, network, addr)
}

// errRunOnceFailed marks a failed run_once task in the graph walk, so its dependents are skipped.
var errRunOnceFailed = errors.New("run_once task failed")

// hostsOfRun returns every host some task runs on, within --limit, in inventory order. Handlers
// add none: they run only on hosts where a task notified them.
func (r *Runner) hostsOfRun() ([]string, error) {
	used := map[string]bool{}
	for _, t := range r.pb.Tasks {
		hs, diags := r.pb.TaskHosts(t)
		if diags.HasErrors() {
			return nil, diags
		}
		for _, h := range hs {
			used[h] = true
		}
	}
	if len(r.opts.Limit) > 0 {
		for _, l := range r.opts.Limit {
			if _, ok := r.pb.Host(l); !ok {
				return nil, fmt.Errorf("--limit names %q, which is not a host of the inventory", l)
			}
		}
	}
	var out []string
	for _, h := range r.pb.Hosts {
		if used[h.Name] && r.inLimit(h.Name) {
			out = append(out, h.Name)
		}
	}
	return out, nil
}

func (r *Runner) inLimit(host string) bool {
	if len(r.opts.Limit) == 0 {
		return true
	}
	for _, l := range r.opts.Limit {
		if l == host {
			return true
		}
	}
	return false
}

// connectAll opens every host's connection in parallel (at most Forks at once), closing the
// host's channel of ready, when given, once its connection is made or failed. A host that cannot
// be reached is failed for the whole run, with one result that says why.
func (r *Runner) connectAll(ctx context.Context, hosts []string, ready map[string]chan struct{}) {
	sem := make(chan struct{}, r.opts.Forks)
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func(h string) {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			if _, err := r.pool.Conn(ctx, h); err != nil {
				r.mu.Lock()
				r.failed[h] = true
				r.recap.PerHost[h].Unreachable = true
				r.mu.Unlock()
				r.result("connect", h, StatusFailed, err.Error(), nil, time.Since(start))
			}
			if ch := ready[h]; ch != nil {
				close(ch)
			}
		}(h)
	}
	wg.Wait()
}

// runTask runs t on its hosts (or on only, for handlers) and reports whether any host failed.
func (r *Runner) runTask(ctx context.Context, t *config.Task, only map[string]bool) bool {
	hosts, diags := r.pb.TaskHosts(t)
	if diags.HasErrors() {
		r.result(t.Name, "", StatusFailed, diagSummary(diags), nil, 0)
		return true
	}
	var run []string
	for _, h := range hosts {
		if !r.inLimit(h) || (only != nil && !only[h]) {
			continue
		}
		if r.hostFailed(h) {
			continue
		}
		run = append(run, h)
	}
	if len(run) == 0 {
		return false
	}
	if t.RunOnce {
		run = run[:1]
	}
	batch := len(run)
	if t.Serial > 0 && t.Serial < batch {
		batch = t.Serial
	}
	anyFailed := false
	for i := 0; i < len(run); i += batch {
		end := i + batch
		if end > len(run) {
			end = len(run)
		}
		sem := make(chan struct{}, r.opts.Forks)
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, h := range run[i:end] {
			if ctx.Err() != nil {
				break
			}
			wg.Add(1)
			sem <- struct{}{}
			go func(h string) {
				defer wg.Done()
				defer func() { <-sem }()
				if !r.runOnHost(ctx, t, h) {
					mu.Lock()
					anyFailed = true
					mu.Unlock()
				}
			}(h)
		}
		wg.Wait()
	}
	return anyFailed
}

// runOnHost runs every instance of t on host h; it returns false when one failed (and marks h
// failed so its remaining tasks do not run).
func (r *Runner) runOnHost(ctx context.Context, t *config.Task, h string) bool {
	start := time.Now()
	fail := func(name, msg string) bool {
		r.mu.Lock()
		r.failed[h] = true
		r.mu.Unlock()
		r.result(name, h, StatusFailed, msg, nil, time.Since(start))
		return false
	}
	insts, err, diags := r.pb.Expand(t, h, r.taskOutputs(t))
	if diags.HasErrors() {
		return fail(t.Name, diagSummary(diags))
	}
	if errors.Is(err, config.ErrUnknown) {
		if r.opts.Mode == Plan {
			r.markPending(t.Name, h)
			r.setOutput(t.Name, h, "", cty.DynamicVal)
			r.result(t.Name, h, StatusChanged, "may run: for_each or when depends on values known after apply", nil, time.Since(start))
			return true
		}
		return fail(t.Name, "for_each or when depends on an output of a task that did not run on this host")
	}
	if len(insts) == 0 {
		if r.opts.Mode == Plan && r.dependsOnPending(t, h) {
			r.markPending(t.Name, h) // keep staleness flowing to what depends on this task
		}
		r.result(t.Name, h, StatusSkipped, "when is false", nil, time.Since(start))
		return true
	}
	// for_each elements are independent: run them side by side, a few at a time, over the host's
	// one connection.
	if len(insts) == 1 {
		return ctx.Err() == nil && r.runInstance(ctx, insts[0], nil)
	}
	r.readSiblings(ctx, h, insts)
	// they start together: each reads what the host's read-ahead answered before any of them
	// changed anything (siblingReads; a plan changes nothing)
	var reads *siblingReads
	if r.opts.Mode == Apply {
		reads = &siblingReads{cache: r.probes, host: h}
	}
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		ok  = true
		sem = make(chan struct{}, instanceParallelism)
	)
	for _, in := range insts {
		if ctx.Err() != nil {
			ok = false
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(in config.Instance) {
			defer wg.Done()
			defer func() { <-sem }()
			if !r.runInstance(ctx, in, reads) {
				mu.Lock()
				ok = false
				mu.Unlock()
			}
		}(in)
	}
	wg.Wait()
	return ok
}

// instanceParallelism bounds the for_each elements of one task run at once on one host (SSH
// servers allow 10 sessions per connection by default).
const instanceParallelism = 4

// runInstance runs one task instance. reads, when not nil, is the read-ahead of the host that
// the instance shares with the other for_each elements dispatched with it (see pinnedConn).
func (r *Runner) runInstance(ctx context.Context, in config.Instance, reads *siblingReads) bool {
	start := time.Now()
	name := in.Name()
	h := in.Host
	conn, err := r.pool.Conn(ctx, h)
	if err != nil {
		r.markFailed(h)
		r.noteUnreachable(h, err)
		r.result(name, h, StatusFailed, err.Error(), nil, time.Since(start))
		return false
	}
	var pin *pinnedConn
	if reads != nil {
		pin = &pinnedConn{Conn: conn, reads: reads}
		conn = pin
	}
	var (
		target  *engine.Target
		outcome engine.Outcome
		runErr  error
	)
	attempts := 1
	if r.opts.Mode == Apply {
		attempts += in.Task.Retries
	}
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 && pin != nil {
			pin.drop()
		}
		mod, err, diags := r.pb.Decode(in, r.taskOutputs(in.Task))
		if diags.HasErrors() {
			r.markFailed(h)
			r.result(name, h, StatusFailed, diagSummary(diags), nil, time.Since(start))
			return false
		}
		if errors.Is(err, config.ErrUnknown) {
			if r.opts.Mode == Plan {
				r.markPending(in.Task.Name, h)
				r.setOutput(in.Task.Name, h, in.Key, cty.DynamicVal)
				r.result(name, h, StatusChanged, "will run with values known after apply", nil, time.Since(start))
				return true
			}
			r.markFailed(h)
			r.result(name, h, StatusFailed, "an argument depends on an output of a task that did not run on this host", nil, time.Since(start))
			return false
		}
		target = engine.NewTarget(engine.TargetOptions{
			Host:     engineHost(mustHost(r.pb, h)),
			Task:     name,
			Conn:     conn,
			Hosts:    r.pool,
			DryRun:   r.opts.Mode == Plan,
			Reporter: reporter{r},
			Secrets:  r.pb.Secrets,
			Dir:      in.Task.Dir,
			// what was read ahead may no longer be true once anything changes
			BeforeChange: func(c engine.Change) {
				if pin != nil {
					pin.changing()
				}
				r.beforeChange(h, c)
			},
			Memo: r.memo,
		})
		outcome, runErr = mod.Run(ctx, target)
		done := runErr == nil
		if done && in.Task.Until != nil && r.opts.Mode == Apply {
			done, runErr = r.until(in, outcome)
		}
		if done || attempt == attempts || ctx.Err() != nil {
			break
		}
		target.Logf("attempt %d of %d did not succeed (%v); retrying in %s", attempt, attempts, runErr, in.Task.Delay)
		select {
		case <-ctx.Done():
		case <-time.After(in.Task.Delay):
		}
	}
	changes := target.Changes()
	d := time.Since(start)
	stale := r.opts.Mode == Plan && r.dependsOnPending(in.Task, h)
	if stale && runErr != nil && !errors.Is(runErr, engine.ErrSkipped) {
		// what the module read is about to change: its error is not a verdict on the plan
		r.markPending(in.Task.Name, h)
		r.setOutput(in.Task.Name, h, in.Key, cty.DynamicVal)
		r.result(name, h, StatusChanged, "result depends on changes planned before it: "+firstLine(errSummary(runErr)), nil, d)
		return true
	}
	if len(changes) > 0 {
		r.markPending(in.Task.Name, h)
	}
	switch {
	case errors.Is(runErr, engine.ErrSkipped):
		r.result(name, h, StatusSkipped, outcome.Summary, nil, d)
	case runErr != nil:
		r.markFailed(h)
		r.noteUnreachable(h, runErr)
		msg := errSummary(runErr)
		if ctx.Err() != nil {
			// the run was interrupted (SIGINT) or stopped by --fail-fast: what the module
			// concluded from its cancelled calls is not a verdict on the host
			msg = fmt.Sprintf("interrupted after %d change(s) on this task; re-run apply to finish (%s)", len(changes), msg)
		}
		r.result(name, h, StatusFailed, msg, changes, d)
		return false
	case len(changes) > 0:
		r.result(name, h, StatusChanged, summaryOf(outcome, changes), changes, d)
		r.notify(in.Task, h)
	default:
		r.result(name, h, StatusOK, outcome.Summary, nil, d)
	}
	out := outputsValue(outcome.Outputs)
	if r.opts.Mode == Plan && (len(changes) > 0 || stale) {
		out = cty.DynamicVal
		r.markPending(in.Task.Name, h)
	}
	r.setOutput(in.Task.Name, h, in.Key, out)
	return true
}

func (r *Runner) until(in config.Instance, o engine.Outcome) (bool, error) {
	ctx := r.pb.EvalContext(in.Task, in.Host, in.Each, r.taskOutputs(in.Task))
	ctx.Variables["result"] = outputsValue(o.Outputs)
	val, diags := in.Task.Until.Value(ctx)
	if diags.HasErrors() {
		return false, diags
	}
	bv, err := convert.Convert(val, cty.Bool)
	if err != nil || bv.IsNull() || !bv.IsKnown() {
		return false, fmt.Errorf("until must be true or false")
	}
	if bv.False() {
		return false, fmt.Errorf("until condition is false")
	}
	return true, nil
}

// markPending records that task would change something on host h (plan).
func (r *Runner) markPending(task, h string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending[task] == nil {
		r.pending[task] = map[string]bool{}
	}
	r.pending[task][h] = true
}

// dependsOnPending reports whether t depends on a task that would change something on host h
// (or, for a run_once task, on any host), or on one whose result depends on such changes.
// Handlers depend on every task.
func (r *Runner) dependsOnPending(t *config.Task, h string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.ancestorsLocked(t) {
		hosts := r.pending[d]
		if hosts[h] {
			return true
		}
		if dt, ok := r.pb.Task(d); (ok && dt.RunOnce || t.RunOnce) && len(hosts) > 0 {
			return true
		}
	}
	return false
}

// ancestorsLocked returns the tasks whose pending changes make t's reads stale: its direct
// dependencies (computed once per task). Staleness is transitive without walking the graph: an
// instance whose result depends on pending changes is itself marked pending.
func (r *Runner) ancestorsLocked(t *config.Task) []string {
	if t.Handler {
		names := make([]string, len(r.pb.Tasks))
		for i, x := range r.pb.Tasks {
			names[i] = x.Name
		}
		return names
	}
	if a, ok := r.ancestors[t.Name]; ok {
		return a
	}
	a := r.pb.Graph.DependenciesOf(t.Name)
	r.ancestors[t.Name] = a
	return a
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// hostFailed reports whether host h failed earlier in the run.
func (r *Runner) hostFailed(h string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed[h]
}

func (r *Runner) markFailed(h string) {
	r.mu.Lock()
	r.failed[h] = true
	r.mu.Unlock()
}

// noteUnreachable marks h unreachable in the recap when err says h itself could not be reached
// (its connection lost during the run and not made again), not another host a module reached
// through it.
func (r *Runner) noteUnreachable(h string, err error) {
	var ue engine.UnreachableError
	if !errors.As(err, &ue) || ue.UnreachableHost() != h {
		return
	}
	r.mu.Lock()
	if c := r.recap.PerHost[h]; c != nil {
		c.Unreachable = true
	}
	r.mu.Unlock()
}

func (r *Runner) notify(t *config.Task, h string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range t.Notify {
		if r.notified[n] == nil {
			r.notified[n] = map[string]bool{}
		}
		r.notified[n][h] = true
	}
}

func (r *Runner) setOutput(task, host, key string, v cty.Value) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.outputs[task] == nil {
		r.outputs[task] = map[string]cty.Value{}
	}
	if key == "" {
		r.outputs[task][host] = v
	} else {
		cur := r.outputs[task][host]
		m := map[string]cty.Value{}
		if cur != cty.NilVal && cur.IsKnown() && !cur.IsNull() && cur.Type().IsObjectType() {
			m = cur.AsValueMap()
		}
		m[key] = v
		r.outputs[task][host] = cty.ObjectVal(m)
	}
}

// taskOutputs returns the `task` object of t's expressions: task.NAME.HOST.KEY for the tasks t
// refers to (only those: building every task's outputs for every instance would cost the square of
// the playbook's size). Tasks that have not run are unknown (in plan they may never run).
func (r *Runner) taskOutputs(t *config.Task) cty.Value {
	if len(t.Refs) == 0 {
		return cty.EmptyObjectVal
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]cty.Value, len(t.Refs))
	for _, name := range t.Refs {
		hosts, ok := r.outputs[name]
		if !ok {
			m[name] = cty.DynamicVal
			continue
		}
		hm := make(map[string]cty.Value, len(hosts))
		for h, v := range hosts {
			hm[h] = v
		}
		m[name] = cty.ObjectVal(hm)
	}
	return cty.ObjectVal(m)
}

func (r *Runner) result(task, host string, st Status, summary string, changes []engine.Change, d time.Duration) {
	r.mu.Lock()
	c := r.recap.PerHost[host]
	if c == nil && host != "" {
		c = &HostCount{}
		r.recap.PerHost[host] = c
	}
	switch st {
	case StatusOK:
		r.recap.OK++
		if c != nil {
			c.OK++
		}
	case StatusChanged:
		r.recap.Changed++
		if c != nil {
			c.Changed++
		}
	case StatusFailed:
		r.recap.Failed++
		if c != nil {
			c.Failed++
		}
	case StatusSkipped:
		r.recap.Skipped++
		if c != nil {
			c.Skipped++
		}
	}
	r.mu.Unlock()
	r.emit(Event{Type: EventResult, Task: task, Host: host, Status: st, Summary: r.pb.Secrets.Redact(summary), Changes: changes, Duration: d})
}

func (r *Runner) emit(e Event) {
	if r.opts.Sink == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Mode = r.opts.Mode
	r.sinkMu.Lock()
	defer r.sinkMu.Unlock()
	r.opts.Sink.Event(e)
}

// reporter adapts engine.Reporter to the runner's events.
type reporter struct{ r *Runner }

func (p reporter) Log(host, task, msg string) {
	p.r.emit(Event{Type: EventLog, Host: host, Task: task, Summary: msg})
}

func (p reporter) Progress(host, task, msg string) {
	p.r.emit(Event{Type: EventProgress, Host: host, Task: task, Summary: msg})
}

func (p reporter) Warn(host, task, msg string) {
	p.r.emit(Event{Type: EventWarning, Host: host, Task: task, Summary: msg})
}

func (p reporter) Change(host, task string, c engine.Change, dryRun bool) {
	p.r.emit(Event{Type: EventChange, Host: host, Task: task, Changes: []engine.Change{c}})
}

func mustHost(pb *config.Playbook, name string) *config.Host {
	h, _ := pb.Host(name)
	return h
}

func summaryOf(o engine.Outcome, changes []engine.Change) string {
	if o.Summary != "" {
		return o.Summary
	}
	parts := make([]string, 0, len(changes))
	for _, c := range changes {
		parts = append(parts, c.Summary)
	}
	if len(parts) > 3 {
		return fmt.Sprintf("%s; and %d more", strings.Join(parts[:3], "; "), len(parts)-3)
	}
	return strings.Join(parts, "; ")
}

func errSummary(err error) string {
	var diags hcl.Diagnostics
	if errors.As(err, &diags) {
		return diagSummary(diags)
	}
	return err.Error()
}

func diagSummary(diags hcl.Diagnostics) string {
	var parts []string
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		s := d.Summary
		if d.Detail != "" {
			s += ": " + d.Detail
		}
		if d.Subject != nil {
			s = fmt.Sprintf("%s:%d:%d: %s", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column, s)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func outputsValue(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

func ctyString(v cty.Value) (string, error) {
	sv, err := convert.Convert(v, cty.String)
	if err != nil {
		return "", err
	}
	return sv.AsString(), nil
}
