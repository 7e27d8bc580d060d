// Command benchmark measures runbook side by side with what users run instead of it: the
// seed's Redis Cluster as an Ansible playbook and as a hand-written ssh/redis-cli script.
//
// For each host count it brings up a lab (package testenv), then repeats, interleaved so that
// machine noise hits every tool alike, the procedures below and times each one's wall clock:
//
//   - runbook: fresh apply of the site playbook from hosts that run sshd only, until every
//     replica is synced; a re-apply that changes nothing; a node replacement (node2 killed, the
//     cluster failed over, node2 back with an empty disk, then the same apply);
//   - ansible: the peer playbook fresh and re-run, with FORKS=5 and FORKS=<hosts>;
//   - manual: the peer create script, and at 3 hosts the peer replace script.
//
// The results of every host count measured are kept in docs/benchmarks/results.json, from which
// the report (docs/benchmarks.md) and the chart (docs/benchmarks/wall-time.svg) are written.
//
// Usage:
//
//	go run ./cmd/benchmark --peers DIR [--hosts 3,10,30] [--runs 5] [--out docs/benchmarks.md]
//	go run ./cmd/benchmark --profile DIR [--hosts 3]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options is what the command line asks for.
type options struct {
	hosts    []int
	runs     int
	out      string
	runbook  string
	playbook string
	peers    string
	tools    map[string]bool
	labDir   string
	profile  string
	timeout  time.Duration
	verbose  bool
	commit   string
	report   bool
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case cfg.report:
		err = rewriteReport(cfg)
	case cfg.profile != "":
		err = runProfile(ctx, cfg, os.Stdout)
	default:
		err = runComparison(ctx, cfg, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmark:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("benchmark", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hosts := fs.String("hosts", "3,10,30", "host counts to measure, comma-separated")
	tools := fs.String("tools", "runbook,ansible,manual", "procedures to measure, comma-separated")
	cfg := options{}
	fs.IntVar(&cfg.runs, "runs", 5, "repetitions of every measurement")
	fs.StringVar(&cfg.out, "out", "docs/benchmarks.md", "report to write; results and chart go to its folder benchmarks/")
	fs.StringVar(&cfg.runbook, "runbook", "bin/runbook", "runbook binary to measure")
	fs.StringVar(&cfg.playbook, "playbook", "playbooks/site.hcl", "playbook to apply")
	fs.StringVar(&cfg.peers, "peers", "", "folder holding the peers ansible/run.sh, manual/create.sh, manual/replace.sh (required for ansible and manual)")
	fs.StringVar(&cfg.labDir, "lab", "", "lab directory (default: a new temporary directory)")
	fs.StringVar(&cfg.profile, "profile", "", "instead of the comparison, profile runbook's fresh and no-op apply in-process and write the profiles to this folder")
	fs.DurationVar(&cfg.timeout, "timeout", 15*time.Minute, "bound on every single procedure")
	fs.BoolVar(&cfg.verbose, "v", false, "print the output of every procedure")
	fs.BoolVar(&cfg.report, "report-only", false, "measure nothing: write the report and chart again from results.json")
	fs.StringVar(&cfg.commit, "commit", "", "commit of the runbook binary, recorded in the report (default: git HEAD of the current folder)")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() != 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if cfg.hosts, err = parseHosts(*hosts); err != nil {
		return cfg, err
	}
	if cfg.runs < 1 {
		return cfg, fmt.Errorf("--runs must be at least 1, not %d", cfg.runs)
	}
	cfg.tools = map[string]bool{}
	for _, t := range strings.Split(*tools, ",") {
		t = strings.TrimSpace(t)
		switch t {
		case toolRunbook, toolAnsible, toolManual:
			cfg.tools[t] = true
		case "":
		default:
			return cfg, fmt.Errorf("unknown tool %q in --tools (want runbook, ansible, manual)", t)
		}
	}
	if cfg.profile == "" && !cfg.report && (cfg.tools[toolAnsible] || cfg.tools[toolManual]) && cfg.peers == "" {
		return cfg, errors.New("--peers DIR is required to measure ansible and manual (or pass --tools runbook)")
	}
	for _, p := range []*string{&cfg.runbook, &cfg.playbook, &cfg.peers, &cfg.out} {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return cfg, fmt.Errorf("path %s: %w", *p, err)
			}
		}
	}
	return cfg, nil
}

// parseHosts reads a comma-separated list of host counts.
func parseHosts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 3 || n > 240 {
			return nil, fmt.Errorf("host count %q: want a number from 3 to 240", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("--hosts is empty")
	}
	return out, nil
}
