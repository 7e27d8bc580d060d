// Package pkg implements the package module: Debian packages ensured installed with apt-get.
package pkg

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

// Package is the configuration of a package task.
type Package struct {
	Names       []string `hcl:"names,attr" doc:"Debian package names to ensure installed, e.g. [\"redis-server\", \"redis-tools\"]. An architecture suffix such as \":amd64\" is allowed."`
	UpdateCache bool     `hcl:"update_cache,optional" doc:"Run apt-get update before installing missing packages. Without it, apt-get update runs only when the install fails for lack of package lists. Nothing runs when every package is installed."`
}

// Info describes the package module for the registry.
func Info() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "package",
		Summary: "Ensure Debian packages are installed (apt-get).",
		Doc: `Ensures Debian packages are installed. One ` + "`dpkg-query`" + ` call reads the state of every listed
package, so a host that has them all costs one remote command and reports ok. Missing packages are
installed together with ` + "`apt-get install -y`" + ` (non-interactive, keeping existing configuration
files); when that fails because the package lists are missing or stale, ` + "`apt-get update`" + ` runs
and the install is retried once.

Outputs: ` + "`missing`" + ` (the packages that were, or in plan would be, installed).`,
		Example: `task "redis_packages" {
  on = group.redis
  package {
    names = ["redis-server", "redis-tools"]
  }
}`,
		New: func() engine.Module { return &Package{} },
	}
}

var validName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$`)

// Validate checks the configuration before anything runs.
func (m *Package) Validate() error {
	if len(m.Names) == 0 {
		return errors.New("names: must list at least one package")
	}
	var errs []error
	for _, n := range m.Names {
		if !validName.MatchString(n) {
			errs = append(errs, fmt.Errorf("names: %q is not a Debian package name", n))
		}
	}
	return errors.Join(errs...)
}

// QueryCommand returns the read-only command that lists the state of the packages. dpkg-query
// replaces the shell (exec), so the one program it takes costs no fork in any shell (dash forks
// for the last command of sh -c otherwise); nothing may be appended to the command.
func (m *Package) QueryCommand() string {
	return `exec dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' ` + quoteAll(m.Names)
}

// Run installs the missing packages.
func (m *Package) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	if err := m.Validate(); err != nil {
		return engine.Outcome{}, err
	}
	c := t.Conn()
	res, err := c.Exec(ctx, engine.Command{Cmd: m.QueryCommand()})
	if err != nil {
		return engine.Outcome{}, fmt.Errorf("query packages: %w", err)
	}
	// dpkg-query exits 1 when some package is unknown to dpkg: that one is simply missing.
	if res.ExitCode > 1 {
		return engine.Outcome{}, fmt.Errorf("query packages: %w", res.Err())
	}
	missing := Missing(m.Names, string(res.Stdout))
	out := engine.Outcome{Outputs: map[string]cty.Value{"missing": stringList(missing)}}
	if len(missing) == 0 {
		out.Summary = "installed: " + strings.Join(m.Names, ", ")
		return out, nil
	}
	ch := engine.Change{Summary: "install " + strings.Join(missing, ", ")}
	err = t.Change(ctx, ch, func(ctx context.Context) error { return m.install(ctx, c, missing) })
	if t.DryRun() {
		out.Summary = "will install " + strings.Join(missing, ", ")
	} else {
		out.Summary = "installed " + strings.Join(missing, ", ")
	}
	return out, err
}

func (m *Package) install(ctx context.Context, c engine.Conn, names []string) error {
	const update = "DEBIAN_FRONTEND=noninteractive apt-get update -q"
	install := "DEBIAN_FRONTEND=noninteractive apt-get install -y -q " +
		"-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold " + quoteAll(names)
	if m.UpdateCache {
		if _, err := engine.Run(ctx, c, update); err != nil {
			return fmt.Errorf("apt-get update: %w", err)
		}
	}
	res, err := c.Exec(ctx, engine.Command{Cmd: install})
	if err != nil {
		return err
	}
	if res.ExitCode != 0 && !m.UpdateCache && needsUpdate(string(res.Stderr)) {
		if _, err := engine.Run(ctx, c, update); err != nil {
			return fmt.Errorf("apt-get update: %w", err)
		}
		if res, err = c.Exec(ctx, engine.Command{Cmd: install}); err != nil {
			return err
		}
	}
	if err := res.Err(); err != nil {
		return fmt.Errorf("apt-get install: %w", err)
	}
	return nil
}

// needsUpdate reports whether apt-get's stderr says the package lists are missing or stale.
func needsUpdate(stderr string) bool {
	for _, s := range []string{"Unable to locate package", "has no installation candidate", "Failed to fetch", "404  Not Found"} {
		if strings.Contains(stderr, s) {
			return true
		}
	}
	return false
}

// Missing returns the names that the dpkg-query output does not show as installed ("ii"), in the
// order given.
func Missing(names []string, query string) []string {
	installed := map[string]bool{}
	for _, line := range strings.Split(query, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == "ii" {
			installed[f[0]] = true
		}
	}
	var missing []string
	for _, n := range names {
		base, _, _ := strings.Cut(n, ":")
		if !installed[base] && !installed[n] {
			missing = append(missing, n)
		}
	}
	return missing
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = engine.ShellQuote(n)
	}
	return strings.Join(q, " ")
}

func stringList(s []string) cty.Value {
	if len(s) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	v := make([]cty.Value, len(s))
	for i, x := range s {
		v[i] = cty.StringVal(x)
	}
	return cty.ListVal(v)
}

var (
	_ engine.Module    = (*Package)(nil)
	_ engine.Validator = (*Package)(nil)
)

// Probes implements engine.Prober: the dpkg query Run starts with.
func (m *Package) Probes() []string { return []string{m.QueryCommand()} }

var _ engine.Prober = (*Package)(nil)
