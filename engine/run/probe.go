package run

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
)

// probeCache holds the results of the probes run ahead of the tasks (Prober), per host, each with
// what it reads (its scope). A change drops what it may have made untrue: a change of unknown
// reach (no Change.Writes, Removes or HostOnly) everything, for good; a change of known paths on a
// host that host's results of unknown scope or whose paths meet the written ones; a HostOnly
// change all of its host's results; and any change every root probe's (an arbitrary query may
// read anything). From then on the modules read those for themselves.
// While a host's probes are being read, its commands wait for them (its forwarded connections do
// not: a task that only talks to services, like redis_cluster, starts at once).
type probeCache struct {
	mu      sync.Mutex
	valid   bool
	hosts   map[string]map[string]cachedProbe
	changes map[string]int           // changes of known reach (paths, or host only) made on each host so far
	pending map[string]chan struct{} // closed when the host's probes are in (or given up)
	hits    int
}

// cachedProbe is one probe's result and what it read.
type cachedProbe struct {
	res   engine.ExecResult
	scope probeScope
}

// probeScope is what a probe reads: anything anywhere (root), anything on its host (paths nil),
// or only the files under paths on its host.
type probeScope struct {
	root  bool
	paths []string
}

// scopeOf is what mod's probes read.
func scopeOf(mod engine.Module) probeScope {
	if _, ok := mod.(engine.RootProber); ok {
		return probeScope{root: true}
	}
	if p, ok := mod.(engine.PathProber); ok {
		return pathScope(p.ProbePaths())
	}
	return probeScope{}
}

// pathScope is the scope of a probe that reads the files under ps only: unknown when one is not
// absolute.
func pathScope(ps []string) probeScope {
	var paths []string
	for _, x := range ps {
		if !path.IsAbs(x) {
			return probeScope{}
		}
		paths = append(paths, path.Clean(x))
	}
	return probeScope{paths: paths}
}

// merge is the scope of a probe that two tasks share: what either reads.
func (s probeScope) merge(o probeScope) probeScope {
	if s.root || o.root {
		return probeScope{root: true}
	}
	if s.paths == nil || o.paths == nil {
		return probeScope{}
	}
	return probeScope{paths: append(append([]string(nil), s.paths...), o.paths...)}
}

// untrueAfter says whether a change on the probe's own host may change what the probe prints.
// A written path changes its own reads and its parents' (created, or an entry added); a removed
// one also everything under it.
func (s probeScope) untrueAfter(c reach) bool {
	if s.root || s.paths == nil || c.host {
		return true
	}
	for _, r := range s.paths {
		for _, w := range c.writes {
			if within(w, r) {
				return true
			}
		}
		for _, d := range c.removes {
			if within(r, d) || within(d, r) {
				return true
			}
		}
	}
	return false
}

// within says whether the clean absolute path p is dir or lies under it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// reach is what a change alters on its host: clean absolute paths written and removed, or
// anything on it (host).
type reach struct {
	writes, removes []string
	host            bool
}

// reachOf returns what c alters, and false when that is unknown: no paths given and not HostOnly,
// or a path not absolute.
func reachOf(c engine.Change) (reach, bool) {
	if len(c.Writes)+len(c.Removes) == 0 {
		return reach{host: true}, c.HostOnly
	}
	clean := func(ps []string) ([]string, bool) {
		out := make([]string, len(ps))
		for i, p := range ps {
			if !path.IsAbs(p) {
				return nil, false
			}
			out[i] = path.Clean(p)
		}
		return out, true
	}
	w, ok1 := clean(c.Writes)
	d, ok2 := clean(c.Removes)
	return reach{writes: w, removes: d}, ok1 && ok2
}

func newProbeCache() *probeCache {
	return &probeCache{valid: true, hosts: map[string]map[string]cachedProbe{}, changes: map[string]int{}, pending: map[string]chan struct{}{}}
}

// expect marks host's probes as being read: its commands wait until done(host).
func (p *probeCache) expect(host string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pending[host]; !ok {
		p.pending[host] = make(chan struct{})
	}
}

// done says host's probes are in, or will not come.
func (p *probeCache) done(host string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ch, ok := p.pending[host]; ok {
		close(ch)
		delete(p.pending, host)
	}
}

// wait blocks while host's probes are being read.
func (p *probeCache) wait(ctx context.Context, host string) {
	p.mu.Lock()
	ch, ok := p.pending[host]
	p.mu.Unlock()
	if !ok {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

func (p *probeCache) get(host, cmd string) (engine.ExecResult, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.valid {
		return engine.ExecResult{}, false
	}
	e, ok := p.hosts[host][cmd]
	if ok {
		p.hits++
	}
	return e.res, ok
}

// mark returns what put needs to know that nothing changed on host since: call it before reading.
func (p *probeCache) mark(host string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.changes[host]
}

// put adds host's results to what it holds, unless something changed on the host (or anywhere,
// of unknown reach) since mark returned since: they may be older than the change.
func (p *probeCache) put(host string, results map[string]cachedProbe, since int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.valid || p.changes[host] != since {
		return false
	}
	if p.hosts[host] == nil {
		p.hosts[host] = make(map[string]cachedProbe, len(results))
	}
	for cmd, e := range results {
		p.hosts[host][cmd] = e
	}
	return true
}

// missing returns those of cmds that host's read-ahead does not answer now (each once, in
// order); false while it is being read or once a change of unknown reach emptied it for good.
func (p *probeCache) missing(host string, cmds []string) ([]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, pending := p.pending[host]; pending || !p.valid {
		return nil, false
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range cmds {
		if _, ok := p.hosts[host][c]; !ok && !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, true
}

// invalidate drops what a change on host may make untrue.
func (p *probeCache) invalidate(host string, c engine.Change) {
	p.mu.Lock()
	defer p.mu.Unlock()
	what, known := reachOf(c)
	if !known {
		p.valid = false
		p.hosts = nil
		return
	}
	p.changes[host]++
	for h, m := range p.hosts {
		for cmd, e := range m {
			if e.scope.root || (h == host && e.scope.untrueAfter(what)) {
				delete(m, cmd)
			}
		}
	}
}

// snapshot returns what host's read-ahead answers right now, or nil while it is being read or
// when it answers nothing.
func (p *probeCache) snapshot(host string) map[string]engine.ExecResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, pending := p.pending[host]; pending || !p.valid || len(p.hosts[host]) == 0 {
		return nil
	}
	out := make(map[string]engine.ExecResult, len(p.hosts[host]))
	for cmd, e := range p.hosts[host] {
		out[cmd] = e.res
	}
	return out
}

// siblingReads is one host's read-ahead as the for_each elements of a task, which start
// together, found it: taken once, when the first of them reads the host or changes anything.
// They are independent tasks, each of which may read its state before any of them changes
// anything; so each reads it from what was there then (pinnedConn). Without it the first to
// start a service on a host would make its siblings, that had not yet looked, read the host again.
type siblingReads struct {
	cache *probeCache
	host  string
	mu    sync.Mutex
	taken bool
	snap  map[string]engine.ExecResult
}

// take returns the snapshot, taking it now if none of the siblings did; with wait, once the
// host's read-ahead is in (a command on the host waits for it anyway), else nothing while it is
// being read.
func (s *siblingReads) take(ctx context.Context, wait bool) map[string]engine.ExecResult {
	if wait {
		s.cache.wait(ctx, s.host)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.taken {
		s.snap, s.taken = s.cache.snapshot(s.host), true
	}
	return s.snap
}

// pinnedConn is the connection of one for_each element: the first run of each command of the
// siblings' snapshot is answered from it until the element changes something; everything else
// goes to the connection it wraps.
type pinnedConn struct {
	engine.Conn
	reads  *siblingReads
	mu     sync.Mutex
	filled bool
	left   map[string]engine.ExecResult
}

func (c *pinnedConn) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	if cmd.Stdin == nil {
		c.mu.Lock()
		if !c.filled {
			c.filled = true
			c.left = maps.Clone(c.reads.take(ctx, true))
		}
		res, ok := c.left[cmd.Cmd]
		delete(c.left, cmd.Cmd)
		c.mu.Unlock()
		if ok {
			return res, nil
		}
	}
	return c.Conn.Exec(ctx, cmd)
}

// changing is called before the element changes anything: the siblings that have not looked yet
// still find what was there before, and the element itself reads the host from now on.
func (c *pinnedConn) changing() {
	c.reads.take(context.Background(), false)
	c.drop()
}

// drop makes the element read the host from now on (a retry, or after its own change).
func (c *pinnedConn) drop() {
	c.mu.Lock()
	c.filled, c.left = true, nil
	c.mu.Unlock()
}

// cachingConn answers a probe from the cache while it is valid and sends everything else on.
type cachingConn struct {
	engine.Conn
	host  string
	cache *probeCache
}

func (c cachingConn) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	c.cache.wait(ctx, c.host)
	if cmd.Stdin == nil {
		if res, ok := c.cache.get(c.host, cmd.Cmd); ok {
			return res, nil
		}
	}
	return c.Conn.Exec(ctx, cmd)
}

// Close closes the wrapped connection when it can be closed.
func (c cachingConn) Close() error {
	if cl, ok := c.Conn.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// hostProbes is what a host's read-ahead runs: its probes, batched, in one script.
type hostProbes struct {
	entries []probeEntry
	scopes  map[string]probeScope
	token   string
	since   int // the probe cache's mark before the read
}

// script is the one remote command that reads every probe of the host.
func (hp *hostProbes) script() string {
	cmds := make([]string, len(hp.entries))
	for i, e := range hp.entries {
		cmds[i] = e.cmd
	}
	return probeScript(cmds, hp.token)
}

// planProbes collects, per host, the probes of every task instance that can be decoded before
// anything runs (its arguments do not depend on other tasks' outputs). Hosts with fewer than two
// probes have none: their modules read for themselves. It reads no host, so it runs while the
// hosts are connected; the caller drops the plans of hosts that failed (reachablePlans).
func (r *Runner) planProbes(hosts []string) map[string]*hostProbes {
	probes := map[string][]string{}
	parts := map[string]probeParts{}
	seen := map[string]map[string]bool{}
	scopes := map[string]map[string]probeScope{}
	add := func(h, cmd string, scope probeScope, bps []engine.BatchPart) {
		if seen[h] == nil {
			seen[h] = map[string]bool{}
			scopes[h] = map[string]probeScope{}
			parts[h] = probeParts{}
		}
		if !seen[h][cmd] {
			seen[h][cmd] = true
			probes[h] = append(probes[h], cmd)
			scopes[h][cmd] = scope
		} else {
			scopes[h][cmd] = scopes[h][cmd].merge(scope)
		}
		if len(bps) > 0 {
			parts[h][cmd] = bps
		}
	}
	for _, t := range r.pb.Tasks {
		if t.RunOnce {
			r.planHostProbes(t, add)
			continue
		}
		if _, ok := t.Module.New().(engine.Prober); !ok {
			continue
		}
		if _, ok := t.Module.New().(engine.RootProber); ok && (t.Handler || len(r.pb.Graph.DependenciesOf(t.Name)) > 0) {
			continue
		}
		ths, diags := r.pb.TaskHosts(t)
		if diags.HasErrors() {
			continue
		}
		for _, h := range ths {
			if !r.inLimit(h) {
				continue
			}
			insts, err, d := r.pb.Expand(t, h, r.taskOutputs(t))
			if err != nil || d.HasErrors() {
				continue
			}
			for _, in := range insts {
				mod, err, d := r.pb.Decode(in, r.taskOutputs(t))
				if err != nil || d.HasErrors() {
					continue
				}
				cmds, scope, bps := moduleProbes(mod)
				for _, cmd := range cmds {
					add(h, cmd, scope, bps[cmd])
				}
			}
		}
	}
	plans := map[string]*hostProbes{}
	for _, h := range hosts {
		cmds := probes[h]
		if len(cmds) < 2 {
			continue
		}
		if hp := r.newHostProbes(h, cmds, parts[h], scopes[h]); hp != nil {
			plans[h] = hp
		}
	}
	return plans
}

// reachablePlans returns plans without the hosts that failed (could not be connected).
func (r *Runner) reachablePlans(plans map[string]*hostProbes) map[string]*hostProbes {
	for h := range plans {
		if r.hostFailed(h) {
			delete(plans, h)
		}
	}
	return plans
}

// newHostProbes is the read of cmds on host h, batched with parts, marked now; nil when no
// random token can be made.
func (r *Runner) newHostProbes(h string, cmds []string, parts probeParts, scopes map[string]probeScope) *hostProbes {
	var tb [8]byte
	if _, err := rand.Read(tb[:]); err != nil {
		return nil
	}
	return &hostProbes{
		entries: batchProbes(cmds, parts),
		scopes:  scopes,
		token:   "RBPROBE-" + hex.EncodeToString(tb[:]),
		since:   r.probes.mark(h),
	}
}

// readProbes runs hp's script on host h, on the connection under the cache (its commands wait
// for this very read), and files what it printed (fileProbes). It reports whether it did.
func (r *Runner) readProbes(ctx context.Context, h string, hp *hostProbes) bool {
	conn, err := r.pool.Conn(ctx, h)
	if err != nil {
		return false
	}
	if cc, ok := conn.(cachingConn); ok {
		conn = cc.Conn
	}
	res, err := conn.Exec(ctx, engine.Command{Cmd: hp.script()})
	return err == nil && r.fileProbes(h, hp, res)
}

// probeParts are the batch parts that answer a host's probes, by probe, in the module's order.
type probeParts map[string][]engine.BatchPart

// add files the parts of bps by their probe (replacing what another task gave for the same
// probe: the same command reads the same thing).
func (pp probeParts) add(bps []engine.BatchPart) {
	byProbe := map[string][]engine.BatchPart{}
	for _, part := range bps {
		if part.Batch != nil {
			byProbe[part.Probe] = append(byProbe[part.Probe], part)
		}
	}
	for probe, list := range byProbe {
		pp[probe] = list
	}
}

// moduleProbes returns mod's probes (none when it is no Prober), what they read, and the parts
// that answer those of them that can be batched.
func moduleProbes(mod engine.Module) ([]string, probeScope, probeParts) {
	p, ok := mod.(engine.Prober)
	if !ok {
		return nil, probeScope{}, nil
	}
	parts := probeParts{}
	if b, ok := mod.(engine.ProbeBatcher); ok {
		parts.add(b.BatchParts())
	}
	return p.Probes(), scopeOf(mod), parts
}

// readSiblings reads, in one round trip, what the for_each elements of a task about to start on
// host h read first and the host's read-ahead does not answer (a change on the host made it
// untrue, or their arguments were not known before the run): without it each element would read
// the host in a session of its own. Like the read-ahead it runs before any of them changes
// anything, and what it reads serves them as the read-ahead would have. Root probes are left to
// their modules: they are read ahead only for tasks the run could have started with.
func (r *Runner) readSiblings(ctx context.Context, h string, insts []config.Instance) {
	var cmds []string
	scopes := map[string]probeScope{}
	parts := probeParts{}
	for _, in := range insts {
		mod, err, d := r.pb.Decode(in, r.taskOutputs(in.Task))
		if err != nil || d.HasErrors() {
			continue
		}
		if _, ok := mod.(engine.RootProber); ok {
			continue
		}
		pc, scope, bps := moduleProbes(mod)
		for _, c := range pc {
			if old, ok := scopes[c]; ok {
				scopes[c] = old.merge(scope)
				continue
			}
			scopes[c] = scope
			cmds = append(cmds, c)
		}
		for c, list := range bps {
			parts[c] = list
		}
	}
	if len(cmds) < 2 {
		return
	}
	r.probes.wait(ctx, h)
	cmds, ok := r.probes.missing(h, cmds)
	if !ok || len(cmds) < 2 {
		return
	}
	if hp := r.newHostProbes(h, cmds, parts, scopes); hp != nil {
		r.readProbes(ctx, h, hp)
	}
}

// planHostProbes adds the probes that run-once task t runs on the hosts of the run (HostsProber),
// decoded as the run will decode it: on the first host of the task that the run reaches.
func (r *Runner) planHostProbes(t *config.Task, add func(h, cmd string, scope probeScope, parts []engine.BatchPart)) {
	if _, ok := t.Module.New().(engine.HostsProber); !ok || t.Handler {
		return
	}
	ths, diags := r.pb.TaskHosts(t)
	if diags.HasErrors() {
		return
	}
	for _, h := range ths {
		if !r.inLimit(h) || r.hostFailed(h) {
			continue
		}
		insts, err, d := r.pb.Expand(t, h, r.taskOutputs(t))
		if err != nil || d.HasErrors() || len(insts) != 1 {
			return
		}
		mod, err, d := r.pb.Decode(insts[0], r.taskOutputs(t))
		if err != nil || d.HasErrors() {
			return
		}
		for _, p := range mod.(engine.HostsProber).HostProbes() {
			if !r.inLimit(p.Host) {
				continue
			}
			scope := probeScope{}
			if len(p.Paths) > 0 {
				scope = pathScope(p.Paths)
			}
			parts := probeParts{}
			parts.add(p.Parts)
			add(p.Host, p.Cmd, scope, parts[p.Cmd])
		}
		return
	}
}

// fileProbes parses what host's read-ahead script printed and fills the cache with it. It
// reports whether the results were kept.
func (r *Runner) fileProbes(h string, hp *hostProbes, res engine.ExecResult) bool {
	if res.ExitCode != 0 {
		return false // the modules will read for themselves
	}
	outs, err := parseProbeOutput(res.Stdout, res.Stderr, len(hp.entries), hp.token)
	if err != nil {
		r.emit(Event{Type: EventLog, Host: h, Summary: "probes read one by one: " + err.Error()})
		return false
	}
	results, err := splitBatches(hp.entries, outs)
	if err != nil {
		r.emit(Event{Type: EventLog, Host: h, Summary: "some probes read one by one: " + err.Error()})
	}
	cached := make(map[string]cachedProbe, len(results))
	for cmd, res := range results {
		cached[cmd] = cachedProbe{res: res, scope: hp.scopes[cmd]}
	}
	if !r.probes.put(h, cached, hp.since) {
		return false // something changed while they were read
	}
	batched := 0
	for _, e := range hp.entries {
		for j, p := range e.parts {
			if j == 0 || e.parts[j-1] != p {
				batched++
			}
		}
	}
	r.emit(Event{Type: EventLog, Host: h, Summary: readSummary(len(results), batched)})
	return true
}

// prefetch runs, in one remote command per host, the probes of plans (planProbes), and fills the
// cache. It returns the number of hosts whose probes it read.
func (r *Runner) prefetch(ctx context.Context, hosts []string, plans map[string]*hostProbes) int {
	var wg sync.WaitGroup
	var mu sync.Mutex
	read := 0
	for _, h := range hosts {
		hp := plans[h]
		if hp == nil {
			r.probes.done(h)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.probes.done(h)
			if !r.readProbes(ctx, h, hp) {
				return
			}
			mu.Lock()
			read++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return read
}

// probeScript runs the probes one after the other, each in a subshell (a probe may exit), and
// frames what each prints on the session's own two streams with lines that carry a random token:
// stdout gets "TOKEN o INDEX", the probe's stdout, "TOKEN r INDEX STATUS"; stderr gets
// "TOKEN e INDEX", the probe's stderr; both end with "TOKEN end". The framing is written by
// shell builtins, so the script forks once per probe and runs nothing beyond the probes: no
// temporary files, no cat. In sequence rather than side by side: probes are short reads, and on
// a busy host the extra processes of running them in parallel cost more than they save.
func probeScript(cmds []string, token string) string {
	var b strings.Builder
	for i, c := range cmds {
		fmt.Fprintf(&b, "printf '\\n%s o %d\\n'; printf '\\n%s e %d\\n' >&2; (\n%s\n) </dev/null; printf '\\n%s r %d %%s\\n' $?\n", token, i, token, i, c, token, i)
	}
	fmt.Fprintf(&b, "printf '\\n%s end\\n'; printf '\\n%s end\\n' >&2\n", token, token)
	return b.String()
}

// probeSections splits one stream of probeScript's output into its sections, keyed by kind and
// index ("o 3", "e 3"), and returns the status lines ("r 3 0") in order.
func probeSections(out []byte, token string) (map[string]string, []string, error) {
	parts := strings.Split(string(out), "\n"+token+" ")
	// parts[0] is empty (the stream starts with a marker), the last part is "end\n"
	if len(parts) < 2 || parts[0] != "" || parts[len(parts)-1] != "end\n" {
		return nil, nil, fmt.Errorf("probe output cut short")
	}
	sections := map[string]string{}
	var statuses []string
	for _, p := range parts[1 : len(parts)-1] {
		head, body, ok := strings.Cut(p, "\n")
		f := strings.Fields(head)
		switch {
		case !ok:
			return nil, nil, fmt.Errorf("unexpected probe section %q", head)
		case len(f) == 3 && f[0] == "r" && body == "":
			statuses = append(statuses, head)
		case len(f) == 2 && (f[0] == "o" || f[0] == "e"):
			sections[head] = body
		default:
			return nil, nil, fmt.Errorf("unexpected probe section %q", head)
		}
	}
	return sections, statuses, nil
}

// parseProbeOutput reads what probeScript printed on stdout and stderr for its n commands.
func parseProbeOutput(stdout, stderr []byte, n int, token string) ([]engine.ExecResult, error) {
	outs, statuses, err := probeSections(stdout, token)
	if err != nil {
		return nil, err
	}
	errs, _, err := probeSections(stderr, token)
	if err != nil {
		return nil, fmt.Errorf("stderr: %w", err)
	}
	if len(statuses) != n || len(outs) != n || len(errs) != n {
		return nil, fmt.Errorf("probe output has %d statuses, %d outputs and %d error outputs, want %d of each", len(statuses), len(outs), len(errs), n)
	}
	results := make([]engine.ExecResult, n)
	for i, st := range statuses {
		f := strings.Fields(st)
		rc, err := strconv.Atoi(f[2])
		if err != nil || f[1] != strconv.Itoa(i) {
			return nil, fmt.Errorf("unexpected probe status %q", st)
		}
		o, ok1 := outs["o "+f[1]]
		e, ok2 := errs["e "+f[1]]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("probe %d has no output section", i)
		}
		results[i] = engine.ExecResult{Stdout: []byte(o), Stderr: []byte(e), ExitCode: rc}
	}
	return results, nil
}

// readSummary is the log line of a host whose probes were read ahead.
func readSummary(checks, batched int) string {
	s := fmt.Sprintf("read the state of %d checks in one round trip", checks)
	if batched > 0 {
		s += fmt.Sprintf(" (%d of them in batches)", batched)
	}
	return s
}

// probeEntry is one command of the read-ahead script: a probe alone, or a batch standing for
// several probes. parts[i] is the probe that args[i] answers (a probe with several parts has
// them side by side, in its order).
type probeEntry struct {
	cmd   string
	batch engine.ProbeBatch
	args  []string
	parts []string
}

// batchKey is the one batch key of a probe's parts; "" when they have none or several.
func batchKey(list []engine.BatchPart) string {
	k := ""
	for i, p := range list {
		if i == 0 {
			k = p.Batch.Key()
		} else if p.Batch.Key() != k {
			return ""
		}
	}
	return k
}

// batchProbes turns a host's probes into the script's commands: the parts of every batch key
// with two or more parts become one command, in the place of the first; the rest run alone.
func batchProbes(cmds []string, parts probeParts) []probeEntry {
	groups := map[string]*probeEntry{}
	count := map[string]int{}
	for _, c := range cmds {
		if k := batchKey(parts[c]); k != "" {
			count[k] += len(parts[c])
		}
	}
	var entries []*probeEntry
	for _, c := range cmds {
		k := batchKey(parts[c])
		if k == "" || count[k] < 2 {
			entries = append(entries, &probeEntry{cmd: c})
			continue
		}
		g := groups[k]
		if g == nil {
			g = &probeEntry{batch: parts[c][0].Batch}
			groups[k] = g
			entries = append(entries, g)
		}
		for _, p := range parts[c] {
			g.args = append(g.args, p.Arg)
			g.parts = append(g.parts, c)
		}
	}
	out := make([]probeEntry, len(entries))
	for i, e := range entries {
		if e.batch != nil {
			e.cmd = e.batch.Command(e.args)
		}
		out[i] = *e
	}
	return out
}

// splitBatches files each result under the probe it answers, splitting the batches' results into
// their parts. A batch that cannot be split leaves its probes out (their modules read them
// themselves); the error says which.
func splitBatches(entries []probeEntry, outs []engine.ExecResult) (map[string]engine.ExecResult, error) {
	results := make(map[string]engine.ExecResult, len(entries))
	var errs []error
	for i, e := range entries {
		if e.batch == nil {
			results[e.cmd] = outs[i]
			continue
		}
		split, err := e.batch.Split(outs[i], e.args)
		if err == nil && len(split) != len(e.parts) {
			err = fmt.Errorf("%d results for %d parts", len(split), len(e.parts))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("batch %s: %w", e.batch.Key(), err))
			continue
		}
		for j := 0; j < len(e.parts); {
			n := 1
			for j+n < len(e.parts) && e.parts[j+n] == e.parts[j] {
				n++
			}
			results[e.parts[j]] = joinParts(split[j : j+n])
			j += n
		}
	}
	return results, errors.Join(errs...)
}

// joinParts is the answer of a probe made of parts: their outputs one after the other, the
// first exit status that is not 0 (see engine.ProbeBatcher).
func joinParts(rs []engine.ExecResult) engine.ExecResult {
	if len(rs) == 1 {
		return rs[0]
	}
	out := engine.ExecResult{Stdout: []byte{}, Stderr: []byte{}}
	for _, r := range rs {
		out.Stdout = append(out.Stdout, r.Stdout...)
		out.Stderr = append(out.Stderr, r.Stderr...)
		if out.ExitCode == 0 {
			out.ExitCode = r.ExitCode
		}
	}
	return out
}
