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
		Doc: `Ensures Debian packages are installed. One remote command reads the state of every listed
package, so a host that has them all costs one command and reports ok: ` + "`awk`" + ` reads dpkg's
status file, or ` + "`dpkg-query`" + ` does when dpkg's journal holds changes not yet in that file or a
name has an architecture (awk takes a fifth of the CPU time dpkg-query takes to load the database). Missing packages are
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

// QueryCommand returns the read-only command that lists the state of the packages, one line
// "NAME ABBREV" per package dpkg knows (ABBREV as dpkg-query's ${db:Status-Abbrev}: "ii" is
// installed). See queryCommand.
func (m *Package) QueryCommand() string { return queryCommand("/var/lib/dpkg", m.Names) }

// statusAwk prints, for the packages in names, what dpkg-query -W -f='${Package}
// ${db:Status-Abbrev}\n' prints, reading the status file (dpkg's own format: stanzas of
// "Field: value" lines; continuation lines start with a space). Like dpkg, it forgets what is
// wanted of a package that is not installed and is to be removed or purged ("un").
const statusAwk = `BEGIN { n = split(names, a, " "); for (i = 1; i <= n; i++) want[a[i]] = 1
  W["unknown"] = "u"; W["install"] = "i"; W["hold"] = "h"; W["deinstall"] = "r"; W["purge"] = "p"
  S["not-installed"] = "n"; S["config-files"] = "c"; S["half-installed"] = "H"; S["unpacked"] = "U"
  S["half-configured"] = "F"; S["triggers-awaited"] = "W"; S["triggers-pending"] = "t"; S["installed"] = "i"
  E["ok"] = " "; E["reinstreq"] = "R" }
function flush() { if (p in want && st != "") print p " " st; p = ""; st = "" }
/^Package: / { p = $2 }
/^Status: / { w = ($4 == "not-installed" && ($2 == "deinstall" || $2 == "purge")) ? "u" : W[$2]; st = w S[$4] E[$3] }
/^$/ { flush() }
END { flush() }`

// queryCommand reads the packages' state from dpkg's database in admindir. dpkg-query parses the
// whole database and takes tens of milliseconds of CPU (about 5 times what awk takes to scan the
// status file for the names), on every host of every run: when no name has an architecture and
// dpkg's journal of recent changes (updates/) is empty, so that the status file is the whole
// truth, awk reads it; otherwise dpkg-query does. Either replaces the shell (exec: no fork), and
// nothing may be appended to the command.
func queryCommand(admindir string, names []string) string {
	dq := `exec dpkg-query --admindir=` + engine.ShellQuote(admindir) + ` -W -f='${Package} ${db:Status-Abbrev}\n' ` + quoteAll(names)
	for _, n := range names {
		if strings.Contains(n, ":") {
			return dq
		}
	}
	return `d=` + engine.ShellQuote(admindir) + `; set -- "$d"/updates/[0-9]*; ` +
		`if [ ! -e "$1" ] && [ -r "$d/status" ] && command -v awk >/dev/null 2>&1; then ` +
		`exec awk -v names=` + engine.ShellQuote(strings.Join(names, " ")) + ` ` + engine.ShellQuote(statusAwk) + ` "$d/status"; fi; ` + dq
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
	ch := engine.Change{Summary: "install " + strings.Join(missing, ", "), HostOnly: true}
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
		// installed, whatever is wanted of it (held: "hi"), and not broken ("iiR" needs a reinstall)
		if len(f) >= 2 && len(f[1]) == 2 && f[1][1] == 'i' {
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

// ProbePaths implements engine.PathProber: the query reads dpkg's database alone.
func (m *Package) ProbePaths() []string { return []string{"/var/lib/dpkg"} }

var _ engine.PathProber = (*Package)(nil)
