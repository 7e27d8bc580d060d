package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// Host describes one inventory host as modules see it.
type Host struct {
	// Name is the inventory name, e.g. "node1".
	Name string
	// Address is the host's network address (IP or DNS name) as written in the inventory.
	Address string
	// Vars are the host's variables merged from its groups and its own block (strings only here;
	// the full values are available to expressions as self.vars).
	Vars map[string]string
}

// Change describes one mutation a module makes (or, in plan mode, would make).
type Change struct {
	// Summary is a one-line description in the imperative: "upload /etc/redis/a.conf".
	Summary string
	// Diff is an optional unified diff or multi-line detail shown by plan. It is redacted before
	// it is shown.
	Diff string
	// Writes and Removes, when either is set, are the only things the change alters, as absolute
	// paths on the target's own host: Writes the paths it creates (with any missing parent) or
	// writes, or whose owner or mode it sets, and not what lies under them; Removes the paths it
	// removes with everything under them. What the engine read ahead of other paths, and of
	// other hosts, then stays true and is not read again. A change that may alter anything else
	// (start a process, talk to other hosts, run an arbitrary command) leaves both empty.
	Writes  []string
	Removes []string
	// HostOnly, for a change that names no paths, says that it may alter anything on the target's
	// own host but nothing elsewhere: it starts, stops or installs something there, which may
	// write files of its own, and sends nothing to other hosts. What the engine read ahead of
	// the other hosts then stays true. A change that talks to other hosts, or runs an arbitrary
	// command, leaves it false.
	HostOnly bool
}

// Hosts gives modules that act on several hosts at once (redis_cluster) the connections to the
// other hosts of the run.
type Hosts interface {
	// Conn returns the connection to the named inventory host, connecting if needed.
	Conn(ctx context.Context, host string) (Conn, error)
	// Lookup returns the inventory description of the named host.
	Lookup(host string) (Host, bool)
}

// Reporter receives what a module says while it runs. The engine renders it (a line per event,
// a live progress line on a terminal, JSON with --json); modules never print.
type Reporter interface {
	// Log records a detail line (shown with --verbose).
	Log(host, task, msg string)
	// Progress replaces the current "waiting for ..." line; an empty msg clears it.
	Progress(host, task, msg string)
	// Change records a change as it is planned or done.
	Change(host, task string, c Change, dryRun bool)
	// Warn records something the operator should know even without --verbose.
	Warn(host, task, msg string)
}

// Target is what a module runs against: one host of one task instance, in plan or apply mode.
type Target struct {
	host    Host
	task    string
	conn    Conn
	hosts   Hosts
	dryRun  bool
	rep     Reporter
	secrets *Secrets
	dir     string
	before  func(Change)
	memo    *Memo

	mu      sync.Mutex
	changes []Change
}

// TargetOptions are the parts of a Target the engine fills in.
type TargetOptions struct {
	Host     Host
	Task     string
	Conn     Conn
	Hosts    Hosts
	DryRun   bool
	Reporter Reporter
	Secrets  *Secrets
	// Dir is the directory of the playbook file that defines the task; relative local paths in
	// module configuration are resolved against it.
	Dir string
	// BeforeChange, when set, is called in apply mode right before a change is made (the engine
	// drops what it read ahead that the change may make untrue).
	BeforeChange func(Change)
	// Memo is shared by every Target of the run (nil: nothing is shared).
	Memo *Memo
}

// NewTarget returns a Target. Only the engine (and tests) create Targets.
func NewTarget(o TargetOptions) *Target {
	if o.Reporter == nil {
		o.Reporter = nopReporter{}
	}
	if o.Secrets == nil {
		o.Secrets = NewSecrets()
	}
	return &Target{host: o.Host, task: o.Task, conn: o.Conn, hosts: o.Hosts, dryRun: o.DryRun, rep: o.Reporter, secrets: o.Secrets, dir: o.Dir, before: o.BeforeChange, memo: o.Memo}
}

// Host returns the host this target runs on.
func (t *Target) Host() Host { return t.host }

// Task returns the task's display name (with its for_each key when it has one).
func (t *Target) Task() string { return t.task }

// Conn returns the host's connection. Outside Change, modules use it only for commands that change
// nothing.
func (t *Target) Conn() Conn { return t.conn }

// Hosts returns access to the other hosts of the run; nil when the engine gave none.
func (t *Target) Hosts() Hosts { return t.hosts }

// Path resolves a local path from the playbook against the playbook's directory.
func (t *Target) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || t.dir == "" {
		return p
	}
	return filepath.Join(t.dir, p)
}

// Dir returns the directory of the playbook file that defines the task ("" when unknown).
func (t *Target) Dir() string { return t.dir }

// Memo returns what the tasks of this run share while nothing changes (see Memo). It may be nil,
// which Memo's methods accept.
func (t *Target) Memo() *Memo { return t.memo }

// DryRun reports whether this is a plan: Change records instead of doing.
func (t *Target) DryRun() bool { return t.dryRun }

// Secrets returns the run's secret registry; modules Add secrets they read (from files, from
// the host) so that they are redacted everywhere.
func (t *Target) Secrets() *Secrets { return t.secrets }

// Change is the only path for a mutation. In plan mode it records c and returns nil without calling
// fn; in apply mode it calls fn and records c if fn succeeds. An error from fn is returned wrapped
// with c.Summary.
func (t *Target) Change(ctx context.Context, c Change, fn func(ctx context.Context) error) error {
	c.Summary = t.secrets.Redact(c.Summary)
	c.Diff = t.secrets.Redact(c.Diff)
	if !t.dryRun {
		if t.before != nil {
			t.before(c)
		}
		err := fn(ctx)
		// what was read while fn ran may predate its effect: not shared (BeforeChange dropped
		// what was read before)
		t.memo.Changed()
		if err != nil {
			return fmt.Errorf("%s: %w", c.Summary, err)
		}
	}
	t.mu.Lock()
	t.changes = append(t.changes, c)
	t.mu.Unlock()
	t.rep.Change(t.host.Name, t.task, c, t.dryRun)
	return nil
}

// Changes returns the changes recorded so far.
func (t *Target) Changes() []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Change(nil), t.changes...)
}

// Logf records a detail line, redacted.
func (t *Target) Logf(format string, args ...any) {
	t.rep.Log(t.host.Name, t.task, t.secrets.Redact(fmt.Sprintf(format, args...)))
}

// Warnf records a warning, shown to the operator in every output mode, redacted.
func (t *Target) Warnf(format string, args ...any) {
	t.rep.Warn(t.host.Name, t.task, t.secrets.Redact(fmt.Sprintf(format, args...)))
}

// Progress shows what the module is waiting for; call Progress("") when the wait is over.
func (t *Target) Progress(format string, args ...any) {
	t.rep.Progress(t.host.Name, t.task, t.secrets.Redact(fmt.Sprintf(format, args...)))
}

// NotYetError is what a Poll condition returns to say "not yet, and here is why": Poll waits on,
// and names the last reason when its time runs out.
type NotYetError struct{ Reason string }

// Error returns the reason.
func (e *NotYetError) Error() string { return e.Reason }

// NotYet returns a *NotYetError whose reason is formatted as by fmt.Sprintf.
func NotYet(format string, args ...any) error {
	return &NotYetError{Reason: fmt.Sprintf(format, args...)}
}

// Poll calls cond every interval until it returns true, an error, or ctx/timeout ends. While it
// waits it shows what as progress. When ctx ends first, the error wraps ctx's cause. A condition
// that returns a *NotYetError (see NotYet) is not met yet: Poll waits on and, if its time runs
// out, says what the last such reason was. It is the one way modules wait for a condition.
func (t *Target) Poll(ctx context.Context, what string, interval, timeout time.Duration, cond func(ctx context.Context) (bool, error)) error {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	defer t.Progress("")
	var notYet *NotYetError // the condition's last reason for not being met
	for {
		ok, err := cond(ctx)
		var ny *NotYetError
		switch {
		case errors.As(err, &ny):
			notYet, ok = ny, false
		case err != nil:
			if ctx.Err() != nil && parent.Err() == nil {
				// the condition failed only because this wait's own time ran out
				return fmt.Errorf("timed out after %s waiting for %s (last: %v)", timeout, what, err)
			}
			return err
		case ok:
			return nil
		}
		t.Progress("waiting for %s (%.1fs)", what, time.Since(start).Seconds())
		select {
		case <-ctx.Done():
			switch {
			case parent.Err() != nil: // not this wait's timeout: the caller gave up (interrupted)
				return fmt.Errorf("stopped waiting for %s: %w", what, context.Cause(parent))
			case notYet != nil:
				return fmt.Errorf("timed out after %s waiting for %s (last: %v)", timeout, what, notYet)
			}
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		case <-time.After(interval):
		}
	}
}

type nopReporter struct{}

func (nopReporter) Log(string, string, string)          {}
func (nopReporter) Progress(string, string, string)     {}
func (nopReporter) Change(string, string, Change, bool) {}
func (nopReporter) Warn(string, string, string)         {}
