package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/connect"
	"github.com/runbook/runbook/engine/lock"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules/all"
)

// loadFlags are the flags every command that loads a playbook takes.
type loadFlags struct {
	inventories []string
	vars        []string
	varFiles    []string
}

func (f *loadFlags) register(cmd *cobra.Command, withVars bool) {
	cmd.Flags().StringArrayVarP(&f.inventories, "inventory", "i", nil, "inventory `FILE` (repeatable)")
	if withVars {
		cmd.Flags().StringArrayVar(&f.vars, "var", nil, "set a variable: `NAME=VALUE` (repeatable; wins over files)")
		cmd.Flags().StringArrayVar(&f.varFiles, "var-file", nil, "read variables from `FILE` (repeatable; later files win)")
	}
}

// load reads and validates the playbook, printing diagnostics. It returns nil when there are
// errors (after printing them).
func (a *app) load(path string, f loadFlags, jsonOut bool) (*config.Playbook, error) {
	pb, diags := config.Load(config.Options{
		Playbook:    path,
		Inventories: f.inventories,
		VarFiles:    f.varFiles,
		Vars:        f.vars,
		Environ:     a.environ,
		Registry:    all.Registry(),
	})
	if len(diags) > 0 {
		a.printDiags(pb, diags, jsonOut)
	}
	if diags.HasErrors() {
		return nil, exitError{1}
	}
	return pb, nil
}

func (a *app) printDiags(pb *config.Playbook, diags hcl.Diagnostics, jsonOut bool) {
	var files map[string]*hcl.File
	var secrets *engine.Secrets
	if pb != nil {
		files = pb.Files()
		secrets = pb.Secrets
	}
	if jsonOut {
		for _, d := range diags {
			writeJSON(a.stdout, diagJSON(d, secrets))
		}
	}
	w := hcl.NewDiagnosticTextWriter(redactWriter{a.stderr, secrets}, files, 100, isTerminal(a.stderr))
	w.WriteDiagnostics(diags)
	errs, warns := 0, 0
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs++
		} else {
			warns++
		}
	}
	if errs > 0 {
		fmt.Fprintf(a.stderr, "%d error(s), %d warning(s); nothing was run.\n", errs, warns)
	}
}

func (a *app) validateCommand() *cobra.Command {
	var f loadFlags
	cmd := &cobra.Command{
		Use:   "validate [-i FILE]... PLAYBOOK",
		Short: "Check a playbook and its inventory without connecting to any host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pb, err := a.load(args[0], f, false)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s is valid: %d task(s), %d handler(s), %d host(s).\n", args[0], len(pb.Tasks), len(pb.Handlers), len(pb.Hosts))
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

// runFlags are the flags of plan and apply.
type runFlags struct {
	loadFlags
	limit            []string
	jsonOut          bool
	forks            int
	failFast         bool
	verbose          bool
	detailedExitcode bool
	lockTimeout      time.Duration
	persist          time.Duration
}

func (a *app) planCommand() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "plan [-i FILE]... [-var NAME=VALUE]... [-var-file FILE]... [--limit HOST,...] [--detailed-exitcode] PLAYBOOK",
		Short: "Show what apply would change on each host, changing nothing",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if f.persist, err = a.persistValue(cmd, f.persist); err != nil {
				return err
			}
			return a.execute(cmd.Context(), run.Plan, args[0], f)
		},
	}
	f.register(cmd, true)
	a.registerRunFlags(cmd, &f)
	cmd.Flags().BoolVar(&f.detailedExitcode, "detailed-exitcode", false, "exit 0 when nothing would change, 2 when something would, 1 on error")
	return cmd
}

func (a *app) applyCommand() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "apply [-i FILE]... [-var NAME=VALUE]... [-var-file FILE]... [--limit HOST,...] [--json] [--forks N] PLAYBOOK",
		Short: "Make every host match the playbook",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			if f.persist, err = a.persistValue(cmd, f.persist); err != nil {
				return err
			}
			return a.execute(cmd.Context(), run.Apply, args[0], f)
		},
	}
	f.register(cmd, true)
	a.registerRunFlags(cmd, &f)
	cmd.Flags().BoolVar(&f.failFast, "fail-fast", false, "stop every host after the first failure")
	cmd.Flags().DurationVar(&f.lockTimeout, "lock-timeout", 0, "wait up to this long for another run's lock on a host (0: fail at once, naming the holder)")
	return cmd
}

func (a *app) registerRunFlags(cmd *cobra.Command, f *runFlags) {
	cmd.Flags().StringSliceVar(&f.limit, "limit", nil, "run only on these hosts (`HOST,...`)")
	cmd.Flags().BoolVar(&f.jsonOut, "json", false, "print one JSON object per line instead of text")
	cmd.Flags().IntVar(&f.forks, "forks", 20, "hosts worked on at once")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "show every detail line of every module (secrets redacted)")
	registerPersist(cmd, &f.persist)
}

// registerPersist adds --persist, whose default is $RUNBOOK_PERSIST (persistValue).
func registerPersist(cmd *cobra.Command, p *time.Duration) {
	cmd.Flags().DurationVar(p, "persist", 0, "keep each host's SSH connection open for `DURATION` (e.g. 60s) after the run, for the next runs to use instead of connecting (default $RUNBOOK_PERSIST, else off)")
}

// persistValue is --persist when given, else $RUNBOOK_PERSIST, else 0.
func (a *app) persistValue(cmd *cobra.Command, flag time.Duration) (time.Duration, error) {
	if flag < 0 {
		return 0, fmt.Errorf("--persist must not be negative")
	}
	if cmd.Flags().Changed("persist") {
		return flag, nil
	}
	for _, kv := range a.environ {
		if v, ok := strings.CutPrefix(kv, "RUNBOOK_PERSIST="); ok && v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				return 0, fmt.Errorf("RUNBOOK_PERSIST=%q is not a duration like 60s", v)
			}
			return d, nil
		}
	}
	return 0, nil
}

func (a *app) execute(ctx context.Context, mode run.Mode, path string, f runFlags) error {
	pb, err := a.load(path, f.loadFlags, f.jsonOut)
	if err != nil {
		return err
	}
	if f.forks < 1 {
		return fmt.Errorf("--forks must be at least 1")
	}
	var sink run.Sink
	var ui *humanUI
	if f.jsonOut {
		sink = &jsonUI{w: a.stdout}
	} else {
		ui = newHumanUI(a.stdout, mode, path, f.verbose)
		sink = ui
	}
	for _, h := range pb.Hosts {
		if h.HostKeyChecking == "off" {
			msg := fmt.Sprintf("host key checking is off for %s: anyone on the network path can impersonate it", h.Name)
			if f.jsonOut {
				writeJSON(a.stdout, map[string]any{"type": "warning", "host": h.Name, "message": msg})
			} else {
				fmt.Fprintf(a.stderr, "Warning: %s\n", msg)
			}
		}
	}
	r := run.New(pb, run.Options{
		Mode:      mode,
		Limit:     f.limit,
		Forks:     f.forks,
		FailFast:  f.failFast,
		Connector: &connect.SSH{Playbook: pb, ConnectTimeout: 10 * time.Second, Persist: f.persist},
		Sink:      sink,
		Trace:     f.verbose,
		Lock: &lock.Options{
			Timeout: f.lockTimeout,
			Holder:  lock.Holder{Playbook: path},
			Hint:    "wait for that run to end, or retry with --lock-timeout=10m to wait for it (a lock whose run died frees itself within 15s)",
		},
	})
	rc, err := r.Run(ctx)
	if rc == nil && err != nil {
		return err
	}
	if err != nil || rc.Failed > 0 {
		return exitError{1}
	}
	if mode == run.Plan && f.detailedExitcode && rc.Changed > 0 {
		return exitError{2}
	}
	return nil
}

func (a *app) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintln(a.stdout, "runbook", version)
		},
	}
}

// version is the release version; builds may set it with -ldflags "-X main.version=...".
var version = "0.1.0-dev"
