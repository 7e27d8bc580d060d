package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/connect"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/modules/all"
)

func (a *app) statusCommand() *cobra.Command {
	var f loadFlags
	var format string
	var persist time.Duration
	cmd := &cobra.Command{
		Use:   "status [-i FILE]... PLAYBOOK",
		Short: "Show the live state of what the playbook manages (e.g. the Redis Cluster layout)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pb, err := a.load(args[0], f, false)
			if err != nil {
				return err
			}
			if persist, err = a.persistValue(cmd, persist); err != nil {
				return err
			}
			return a.status(cmd.Context(), pb, format, persist)
		},
	}
	f.register(cmd, true)
	registerPersist(cmd, &persist)
	cmd.Flags().StringVar(&format, "format", "text", "output `FORMAT`: text, svg or dot")
	return cmd
}

// status asks every task whose module can describe live state (engine.StatusReporter) to do so.
func (a *app) status(ctx context.Context, pb *config.Playbook, format string, persist time.Duration) error {
	switch format {
	case "text", "svg", "dot":
	default:
		return fmt.Errorf("unknown --format %q: use text, svg or dot", format)
	}
	found := 0
	shown := map[string]bool{}
	// status is what an operator looks at while a host is down: do not wait long for it
	ssh := connect.NewSSH(pb)
	ssh.ConnectTimeout = 3 * time.Second
	ssh.Persist = persist
	pool := run.NewPool(pb, ssh)
	defer pool.Close()
	for _, t := range pb.Tasks {
		if _, ok := t.Module.New().(engine.StatusReporter); !ok {
			continue
		}
		hosts, diags := pb.TaskHosts(t)
		if diags.HasErrors() || len(hosts) == 0 {
			continue
		}
		var mod engine.Module
		var host string
		for _, h := range hosts {
			insts, _, d := pb.Expand(t, h, cty.NilVal)
			if d.HasErrors() || len(insts) == 0 {
				continue
			}
			m, err, d := pb.Decode(insts[0], cty.NilVal)
			if err == nil && !d.HasErrors() {
				mod, host = m, h
				break
			}
		}
		if mod == nil {
			continue
		}
		found++
		conn, err := pool.Conn(ctx, host)
		if err != nil {
			// the module may still reach the other hosts; give it a conn that reports the failure
			conn = failedConn{err}
		}
		h, _ := pool.Lookup(host)
		target := engine.NewTarget(engine.TargetOptions{Host: h, Task: t.Name, Conn: conn, Hosts: pool, DryRun: true, Secrets: pb.Secrets, Dir: t.Dir})
		var buf bytes.Buffer
		serr := mod.(engine.StatusReporter).Status(ctx, target, &buf, engine.StatusOptions{Color: isTerminal(a.stdout) && format == "text", Format: format})
		// several tasks may manage the same thing (redis_cluster in prepare and converge mode):
		// show each distinct picture once
		if shown[buf.String()] {
			continue
		}
		shown[buf.String()] = true
		fmt.Fprint(redactWriter{a.stdout, pb.Secrets}, buf.String())
		if serr != nil {
			return fmt.Errorf("status of task %q: %s", t.Name, pb.Secrets.Redact(serr.Error()))
		}
	}
	if found == 0 {
		return fmt.Errorf("no task in this playbook has a module that reports status (such as redis_cluster)")
	}
	return nil
}

func (a *app) fmtCommand() *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "fmt [--check] FILE...",
		Short: "Rewrite HCL files in the canonical format",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			unformatted := 0
			for _, path := range args {
				src, err := os.ReadFile(path)
				if err != nil {
					return fmt.Errorf("read %s: %w", path, err)
				}
				_, diags := hclwrite.ParseConfig(src, path, hcl.Pos{Line: 1, Column: 1})
				if diags.HasErrors() {
					a.printDiags(nil, diags, false)
					return exitError{1}
				}
				out := hclwrite.Format(src)
				if bytes.Equal(out, src) {
					continue
				}
				unformatted++
				if check {
					fmt.Fprintln(a.stdout, path)
					continue
				}
				if err := writeFileAtomic(path, out); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, path)
			}
			if check && unformatted > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "list files that are not formatted and exit 1, changing nothing")
	return cmd
}

func writeFileAtomic(path string, data []byte) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(fi.Mode()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (a *app) graphCommand() *cobra.Command {
	var f loadFlags
	cmd := &cobra.Command{
		Use:   "graph [-i FILE]... PLAYBOOK",
		Short: "Print the task graph in Graphviz DOT",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pb, err := a.load(args[0], f, false)
			if err != nil {
				return err
			}
			var b strings.Builder
			b.WriteString("digraph runbook {\n  rankdir=LR;\n  node [shape=box, fontname=\"sans-serif\"];\n")
			for _, t := range pb.Tasks {
				fmt.Fprintf(&b, "  %q [label=%q];\n", "task."+t.Name, t.Name+"\\n("+t.Module.Name+")")
			}
			for _, h := range pb.Handlers {
				fmt.Fprintf(&b, "  %q [label=%q, style=dashed];\n", "handler."+h.Name, h.Name+"\\n("+h.Module.Name+")")
			}
			for _, t := range pb.Tasks {
				for _, d := range pb.Graph.DependenciesOf(t.Name) {
					fmt.Fprintf(&b, "  %q -> %q;\n", "task."+d, "task."+t.Name)
				}
				for _, n := range t.Notify {
					fmt.Fprintf(&b, "  %q -> %q [style=dashed, label=\"notify\"];\n", "task."+t.Name, "handler."+n)
				}
			}
			b.WriteString("}\n")
			fmt.Fprint(a.stdout, b.String())
			return nil
		},
	}
	f.register(cmd, true)
	return cmd
}

func (a *app) helpModuleCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "module [NAME]",
		Short: "Describe a module (or list them all)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg := all.Registry()
			if len(args) == 0 {
				for _, n := range reg.Names() {
					info, _ := reg.Lookup(n)
					fmt.Fprintf(a.stdout, "%-16s %s\n", n, info.Summary)
				}
				return nil
			}
			info, ok := reg.Lookup(args[0])
			if !ok {
				return fmt.Errorf("no module named %q; modules: %s", args[0], strings.Join(reg.Names(), ", "))
			}
			fmt.Fprint(a.stdout, moduleHelp(info))
			return nil
		},
	}
}

// failedConn is an engine.Conn whose every call fails with err.
type failedConn struct{ err error }

func (f failedConn) Exec(context.Context, engine.Command) (engine.ExecResult, error) {
	return engine.ExecResult{}, f.err
}

func (f failedConn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, f.err
}
