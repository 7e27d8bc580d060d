// Command testenv runs the lab: hosts that are network namespaces on this machine, each with its
// own address, hostname, private redis folders and sshd, for trying runbook on real servers.
//
//	testenv up [--nodes N] [--dir DIR] [--ldap]
//	testenv status [--dir DIR] [--json]
//	testenv kill NODE [--dir DIR]
//	testenv revive NODE [--wipe] [--dir DIR]
//	testenv partition NODE [--dir DIR]
//	testenv heal NODE [--dir DIR]
//	testenv down [--dir DIR]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/runbook/runbook/testenv"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
}

// newRoot builds the command tree; output goes to stdout, progress and errors to stderr.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "testenv",
		Short:         "Run a lab of hosts (network namespaces with sshd, redis-server, slapd) on this machine",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	var dir string
	root.PersistentFlags().StringVar(&dir, "dir", testenv.DefaultDir, "lab directory (keys, inventory.hcl, state)")

	var nodes int
	var ldap bool
	up := &cobra.Command{
		Use:   "up",
		Short: "Bring the lab up (a no-op when it is up)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 {
				return fmt.Errorf("--nodes must be at least 1, not %d", nodes)
			}
			lab, err := testenv.Up(cmd.Context(), testenv.Options{Dir: dir, Nodes: nodes, LDAP: ldap, Log: stderr})
			if err != nil {
				return err
			}
			for _, h := range lab.Hosts() {
				fmt.Fprintf(stdout, "%s\t%s\n", h.Name, h.Address)
			}
			fmt.Fprintf(stdout, "inventory\t%s\n", lab.InventoryPath())
			if lab.LDAP() != nil {
				fmt.Fprintf(stdout, "ldap vars\t%s\n", lab.LDAPVarsPath())
			}
			return nil
		},
	}
	up.Flags().IntVar(&nodes, "nodes", testenv.DefaultNodes, "number of redis hosts (node1..nodeN)")
	up.Flags().BoolVar(&ldap, "ldap", false, "also a host \"gluu\" running slapd, and ldap.vars.hcl")

	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the hosts, whether they are alive or partitioned, and their redis-server processes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lab, err := testenv.Open(dir)
			if err != nil {
				return err
			}
			st, err := lab.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				return enc.Encode(st)
			}
			printStatus(stdout, st)
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")

	hostCmd := func(use, short string, fn func(ctx context.Context, lab *testenv.Lab, host string) error) *cobra.Command {
		return &cobra.Command{
			Use:   use + " NODE",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				lab, err := testenv.Open(dir)
				if err != nil {
					return err
				}
				lab.SetLog(stderr)
				return fn(cmd.Context(), lab, args[0])
			},
		}
	}
	kill := hostCmd("kill", "Crash a host: every process of it dies at once and it drops off the network",
		func(ctx context.Context, lab *testenv.Lab, host string) error { return lab.Kill(ctx, host) })
	var wipe bool
	revive := hostCmd("revive", "Boot a killed host: sshd back, nothing else started",
		func(ctx context.Context, lab *testenv.Lab, host string) error { return lab.Revive(ctx, host, wipe) })
	revive.Flags().BoolVar(&wipe, "wipe", false, "empty the host's disk (its redis folders) first")
	partition := hostCmd("partition", "Cut a host off the network (both directions, every peer)",
		func(ctx context.Context, lab *testenv.Lab, host string) error { return lab.Partition(ctx, host) })
	heal := hostCmd("heal", "Put a partitioned host back on the network",
		func(ctx context.Context, lab *testenv.Lab, host string) error { return lab.Heal(ctx, host) })

	down := &cobra.Command{
		Use:   "down",
		Short: "Remove every process, namespace, link and mount of the lab, and its files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := testenv.Down(cmd.Context(), dir); err != nil {
				return err
			}
			fmt.Fprintln(stderr, "lab is down")
			return nil
		},
	}
	root.AddCommand(up, status, kill, revive, partition, heal, down)
	return root
}

// printStatus prints the human status: one line per host, then its redis-server processes.
func printStatus(w io.Writer, st testenv.Status) {
	fmt.Fprintf(w, "lab %s  %s  gateway %s\n", st.ID, st.Subnet, st.Gateway)
	for _, h := range st.Hosts {
		var state []string
		if h.Alive {
			state = append(state, "up")
		} else {
			state = append(state, "down (killed)")
		}
		if h.Partitioned {
			state = append(state, "partitioned")
		}
		fmt.Fprintf(w, "%-8s %-15s %s\n", h.Name, h.Address, strings.Join(state, ", "))
		for _, r := range h.Redis {
			fmt.Fprintf(w, "         redis-server %-21s pid %-7d %s\n", r.Listen, r.PID, r.Role)
		}
	}
	if st.LDAP != nil {
		fmt.Fprintf(w, "ldap     %s  bind %s  password %s\n", st.LDAP.URL, st.LDAP.BindDN, st.LDAP.PasswordFile)
	}
	fmt.Fprintf(w, "inventory   %s\nssh key     %s\nknown_hosts %s\n", st.Inventory, st.SSHKey, st.KnownHosts)
}
