// Package engine holds the contracts between runbook's core and its modules: the Module interface,
// the Target a module runs against, the Conn to a host, and the Registry of modules.
//
// The module lifecycle, documented once here:
//
//  1. The engine decodes the module's block of a task into a fresh value from ModuleInfo.New, with
//     gohcl, once per host (and per for_each element). Fields carry `hcl` tags for decoding and a
//     `doc` tag whose text is the user documentation (docs/modules/NAME.md is generated from it).
//  2. The engine calls Run with a Target. In plan mode and in apply mode the very same code runs:
//     a module reads state through Target.Conn (commands that change nothing) and performs every
//     mutation through Target.Change, which in plan mode records "would do" and in apply mode does it.
//     So plan can never drift from apply.
//  3. The result status is derived by the engine: failed if Run returned an error, changed if any
//     Change was recorded, skipped if Run returned ErrSkipped, ok otherwise.
package engine

import (
	"context"
	"errors"
	"io"

	"github.com/zclconf/go-cty/cty"
)

// Module is one kind of desired state (a file, a service, a Redis Cluster...). A Module value is the
// decoded configuration of one task instance on one host; Run converges the host towards it.
type Module interface {
	// Run reads the current state through t.Conn and brings it to the desired state, doing every
	// mutation through t.Change. It must be safe to call in plan mode (t.DryRun() is true), where
	// Change does not run its function.
	Run(ctx context.Context, t *Target) (Outcome, error)
}

// Validator is implemented by modules that check their decoded configuration beyond types (required
// combinations, ranges). It runs before anything touches a host; errors name the attribute.
type Validator interface {
	Validate() error
}

// Outcome is what a module reports after Run.
type Outcome struct {
	// Summary is a one-line description of what was found or done, e.g. "uploaded /etc/redis/a.conf".
	Summary string
	// Outputs become readable by later tasks as task.NAME.HOST.KEY (and task.NAME.HOST["key"]).
	Outputs map[string]cty.Value
}

// ErrSkipped is returned by a module's Run when there was nothing for it to do on this host for a
// reason the operator should see as "skipped" rather than "ok".
var ErrSkipped = errors.New("skipped")

// ModuleInfo describes a module for the registry: its name in playbooks, its documentation and a
// constructor for an empty configuration value that gohcl decodes into.
type ModuleInfo struct {
	// Name is the block type used in a task, e.g. "template".
	Name string
	// Summary is a one-line description shown by `runbook help`.
	Summary string
	// Doc is the long description in Markdown, rendered at the top of docs/modules/NAME.md.
	Doc string
	// Example is an HCL snippet showing a typical task using the module.
	Example string
	// New returns a pointer to a zero configuration struct with gohcl tags.
	New func() Module
	// RunOnce marks modules that act on a whole group at once (like redis_cluster); the engine
	// runs such a task a single time, on the first host of its `on` list, as if run_once were set.
	RunOnce bool
}

// StatusReporter is implemented by modules that can describe the live state of what they manage
// for `runbook status` (redis_cluster draws its host x instance grid). Status only reads.
type StatusReporter interface {
	Status(ctx context.Context, t *Target, w io.Writer, opts StatusOptions) error
}

// StatusOptions control how a module renders its status.
type StatusOptions struct {
	// Color allows ANSI colours (the output is a terminal).
	Color bool
	// Format is "text" (default), "svg" or "dot".
	Format string
}

// Prober is implemented by modules whose read-only check is a fixed set of remote commands that
// Run executes verbatim (no stdin) before it decides anything. The engine may run the probes of
// every task of a host in one remote command before the tasks start, and answer the modules'
// identical Exec calls from those results for as long as nothing they read has changed (see
// PathProber and Change.Writes), so an unchanged host costs one round trip instead of one per task.
type Prober interface {
	Probes() []string
}

// PathProber is a Prober whose probes read nothing on their host but the files under the paths
// it names (absolute; a directory stands for everything under it). A change whose Writes are
// all elsewhere cannot alter what they print, so the engine keeps answering them from what it
// read ahead. A Prober that is not a PathProber is read again after any change on its host.
//
// Paths are compared as written: two tasks that reach one file by different names (through a
// symbolic link) manage the same thing twice, which a playbook must not do anyway.
type PathProber interface {
	Prober
	ProbePaths() []string
}

// HostsProber is implemented by the module of a run-once task that, before it decides anything,
// reads other hosts of the run (through Target.Hosts) with fixed commands. The engine reads them
// ahead with each host's own checks and answers the module's identical commands from the
// results, as it does a Prober's, for as long as nothing they read has changed.
type HostsProber interface {
	HostProbes() []HostProbe
}

// HostProbe is one command a HostsProber runs verbatim (no stdin) on Host, an inventory host name.
// Paths, when set, are the only things it reads there (absolute; a directory stands for
// everything under it), as a PathProber's; without them it may read anything on that host.
// Parts, when set, are the batch parts that answer Cmd, as a ProbeBatcher's (each with Probe
// equal to Cmd).
type HostProbe struct {
	Host  string
	Cmd   string
	Paths []string
	Parts []BatchPart
}

// ProbeBatcher is a Prober some of whose probes a host can answer for several tasks at once with
// fewer processes than one by one: one stat(1) for many paths rather than one per path. When the
// engine reads a host's probes ahead and two or more parts share a batch Key, it runs the batch's
// Command once in their place and files each part of the answer under the probe it stands for.
//
// A probe may have several parts (one per path it reads, say), all of one batch: its answer is
// then theirs joined in their order: the outputs one after the other, the exit status the first
// that is not 0 (else 0). The probe alone must print exactly that.
type ProbeBatcher interface {
	Prober
	// BatchParts returns the parts of Probes() that can be batched; the others run alone.
	BatchParts() []BatchPart
}

// BatchPart says that Probe, one of a ProbeBatcher's probes, can be answered by Batch given Arg.
type BatchPart struct {
	Probe string
	Batch ProbeBatch
	Arg   string
}

// ProbeBatch reads what several probes of one kind read, in one command. Its Split must give each
// part exactly what the part's probe alone would have printed, since the module reads it as its
// own; when it cannot (the output does not line up, a path changed between two reads), it returns
// an error and the modules read for themselves.
type ProbeBatch interface {
	// Key names the batch: parts whose batches have equal keys are merged (by the first one).
	Key() string
	// Command is one shell command that answers for every arg.
	Command(args []string) string
	// Split returns, from Command's result, each arg's result in order.
	Split(res ExecResult, args []string) ([]ExecResult, error)
}

// RootProber is a Prober whose probes are arbitrary queries (a readonly command) rather than reads
// of the state the module itself manages: what they answer may depend on what earlier tasks waited
// for. The engine reads them ahead only for a task that depends on no other task, which the run
// could have started with anyway.
type RootProber interface {
	Prober
	// ProbesAtRootOnly is a marker; it does nothing.
	ProbesAtRootOnly()
}
