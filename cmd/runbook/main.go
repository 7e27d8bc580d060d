// Command runbook is a declarative runbook engine: it reads an HCL playbook and an inventory, shows
// what would change on each host (plan) and makes it so over SSH (apply).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/runbook/runbook/engine/sshconn"
	"github.com/runbook/runbook/modules/all"
)

// memoryLimit is the soft limit of the Go heap of a run (runtime/debug.SetMemoryLimit).
const memoryLimit = 32 << 20

// exitError carries an exit status through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	if sshconn.MuxRequested() {
		// this process keeps SSH connections open for later runs (--persist)
		os.Exit(sshconn.ServeMux(os.Stdin, os.Stdout))
	}
	if os.Getenv("GOMEMLIMIT") == "" && os.Getenv("GOGC") == "" {
		// A run keeps little alive but reads a lot (every host's checks, every instance's CLUSTER
		// NODES, over and over while a cluster converges). A soft limit on the Go heap keeps the
		// peak resident size of a 30-host run near 39 MB; the default pace of the collector below
		// it costs less CPU than a tighter one (GOGC=50, used before: 41-42 MB at 30 hosts, and
		// 10-15 % more CPU on a 3-host re-run). Past the limit the collector works harder, never
		// failing the run. GOMEMLIMIT or GOGC in the environment win.
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ()))
}

// Main runs the CLI with the given arguments and streams and returns the exit status.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer, environ []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := &app{stdin: stdin, stdout: stdout, stderr: stderr, environ: environ}
	root := app.rootCommand()
	root.SetArgs(normalizeArgs(args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "Error: %s\n", err)
		return 1
	}
}

// normalizeArgs accepts Terraform-style single-dash long options (-var, -var-file, -limit, -json,
// -forks) by turning them into the double-dash form cobra parses.
func normalizeArgs(args []string) []string {
	long := []string{"var", "var-file", "limit", "json", "forks", "detailed-exitcode", "fail-fast", "verbose", "check", "format", "lock-timeout"}
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") {
			name, _, _ := strings.Cut(a[1:], "=")
			for _, l := range long {
				if name == l {
					a = "-" + a
					break
				}
			}
		}
		out = append(out, a)
	}
	return out
}

type app struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	environ []string
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "runbook",
		Short:         "Declarative runbooks over SSH: plan shows what would change, apply makes it so",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `runbook reads a playbook (HCL) and an inventory of hosts, shows exactly what would change on
each host (plan), and makes it so over SSH (apply): idempotent, in parallel, and a second apply
changes nothing.`,
	}
	root.AddCommand(a.validateCommand(), a.planCommand(), a.applyCommand(), a.statusCommand(),
		a.fmtCommand(), a.graphCommand(), a.helpModuleCommand(), a.versionCommand())
	root.SetHelpCommand(a.helpCommand(root))
	return root
}

// helpCommand is `runbook help [COMMAND | MODULE]`: a command's usage, or a module's documentation.
func (a *app) helpCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND | MODULE]",
		Short: "Help about a command or a module",
		Args:  cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return root.Help()
			}
			if c, _, err := root.Find(args); err == nil && c != root {
				return c.Help()
			}
			info, ok := all.Registry().Lookup(args[0])
			if !ok {
				return fmt.Errorf("%q is neither a command nor a module; modules: %s", args[0], strings.Join(all.Registry().Names(), ", "))
			}
			fmt.Fprint(a.stdout, moduleHelp(info))
			return nil
		},
	}
}
