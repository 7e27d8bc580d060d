// Package directory implements the directory module: a directory on a host with given mode and
// ownership, or its recursive removal.
package directory

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/modules/internal/hostfile"
)

// Directory is the configuration of a directory task.
type Directory struct {
	Path  string `hcl:"path,attr" doc:"Absolute path of the directory on the host. Missing parents are created."`
	Owner string `hcl:"owner,optional" doc:"User that owns the directory (not its content)."`
	Group string `hcl:"group,optional" doc:"Group of the directory."`
	Mode  string `hcl:"mode,optional" doc:"Octal permissions, e.g. \"0750\". When unset, a new directory gets the default (0755 with the usual umask) and an existing one keeps its mode."`
	State string `hcl:"state,optional" doc:"\"present\" to ensure the directory, \"absent\" to remove it with everything in it. Removing \"/\", a top-level system directory or a path with \"..\" is refused."`
}

// Info describes the directory module for the registry.
func Info() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "directory",
		Summary: "Ensure a directory with given mode and owner, or remove it recursively.",
		Doc: `Ensures a directory on the host (creating missing parents) and fixes its mode, owner and group
when they drift; one remote command checks it. With ` + "`state = \"absent\"`" + ` the directory and
everything under it are removed; the module refuses to remove ` + "`/`" + `, top-level system directories
such as ` + "`/etc`" + ` or ` + "`/var`" + `, and paths that are not absolute and clean.

A path that exists but is not a directory is an error: the module never replaces a file.

Outputs: ` + "`path`" + `.`,
		Example: `task "redis_dirs" {
  on       = group.redis
  for_each = ["/etc/redis", "/var/lib/redis", "/var/log/redis", "/run/redis"]
  directory {
    path  = each.value
    owner = "redis"
    group = "redis"
    mode  = "0750"
  }
}`,
		New: func() engine.Module { return &Directory{State: "present"} },
	}
}

// protected are directories that state = "absent" refuses to remove, in addition to "/".
var protected = []string{
	"/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt",
	"/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib",
	"/usr/local", "/usr/sbin", "/usr/share", "/var", "/var/lib", "/var/log", "/var/run", "/var/tmp",
}

// Validate checks the configuration before anything runs.
func (m *Directory) Validate() error {
	var errs []error
	if !path.IsAbs(m.Path) {
		errs = append(errs, fmt.Errorf("path: %q is not an absolute path", m.Path))
	}
	switch m.State {
	case "present":
	case "absent":
		if err := checkRemovable(m.Path); err != nil {
			errs = append(errs, err)
		}
		if m.Mode != "" || m.Owner != "" || m.Group != "" {
			errs = append(errs, errors.New(`state = "absent" takes no mode, owner or group`))
		}
	default:
		errs = append(errs, fmt.Errorf(`state: %q is not "present" or "absent"`, m.State))
	}
	if err := m.attrs().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkRemovable refuses paths that must never be removed recursively.
func checkRemovable(p string) error {
	if !path.IsAbs(p) {
		return nil // reported as not absolute
	}
	clean := path.Clean(p)
	if strings.TrimSuffix(p, "/") != clean && p != clean {
		return fmt.Errorf("path: refusing to remove %q: it is not a clean path (use %q)", p, clean)
	}
	if clean == "/" {
		return errors.New(`path: refusing to remove "/"`)
	}
	for _, d := range protected {
		if clean == d {
			return fmt.Errorf("path: refusing to remove the system directory %q", clean)
		}
	}
	return nil
}

// Run converges the directory.
func (m *Directory) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	if err := m.Validate(); err != nil {
		return engine.Outcome{}, err
	}
	out := engine.Outcome{Outputs: map[string]cty.Value{"path": cty.StringVal(m.Path)}}
	st, err := m.probe(ctx, t.Conn())
	if err != nil {
		return out, err
	}
	q := engine.ShellQuote(m.Path)
	if m.State == "absent" {
		switch st.Kind {
		case hostfile.Absent:
			out.Summary = m.Path + " is absent"
			return out, nil
		case hostfile.Directory:
		default:
			return out, fmt.Errorf("%s exists and is not a directory; refusing to remove it", m.Path)
		}
		err := t.Change(ctx, engine.Change{Summary: "remove directory " + m.Path + " recursively", Removes: []string{m.Path}}, func(ctx context.Context) error {
			_, err := engine.Run(ctx, t.Conn(), "rm -rf -- "+q)
			return err
		})
		out.Summary = hostfile.Did(t, "removed "+m.Path, "will remove "+m.Path)
		return out, err
	}

	switch st.Kind {
	case hostfile.Absent:
		cmd := "mkdir -p -- " + q
		if fix := m.attrs().FixCommand(m.Path); fix != "" {
			cmd += " && " + fix
		}
		err := t.Change(ctx, engine.Change{Summary: "create directory " + m.Path, Writes: []string{m.Path}}, func(ctx context.Context) error {
			_, err := engine.Run(ctx, t.Conn(), cmd)
			return err
		})
		out.Summary = hostfile.Did(t, "created "+m.Path, "will create "+m.Path)
		return out, err
	case hostfile.Directory:
		if fixed, err := hostfile.FixDrift(ctx, t, m.Path, st, m.attrs()); err != nil || fixed {
			out.Summary = hostfile.Did(t, "fixed attributes of "+m.Path, "will fix attributes of "+m.Path)
			return out, err
		}
		out.Summary = m.Path + " is up to date"
		return out, nil
	}
	return out, fmt.Errorf("%s exists on the host and is not a directory", m.Path)
}

// ProbeCommand returns the one read-only command that reads the path: for a directory, one stat
// that replaces the shell (exec: no fork), printing what hostfile.ParseProbe reads (the "-" stands
// where a file's digest would be); "absent" when
// nothing is there, and "other" for anything else, which the module refuses alike whatever it is,
// so a file in the way is neither stat'ed nor hashed. The tests are shell builtins.
func (m *Directory) ProbeCommand() string { return hostfile.DirectoryProbeCommand(m.Path) }

// probe reads the state of the path with ProbeCommand.
func (m *Directory) probe(ctx context.Context, c engine.Conn) (hostfile.State, error) {
	out, err := engine.Run(ctx, c, m.ProbeCommand())
	if err != nil {
		return hostfile.State{}, fmt.Errorf("inspect %s: %w", m.Path, err)
	}
	st, err := hostfile.ParseProbe(string(out))
	if err != nil {
		return hostfile.State{}, fmt.Errorf("inspect %s: %w", m.Path, err)
	}
	return st, nil
}

func (m *Directory) attrs() hostfile.Attrs {
	return hostfile.Attrs{Mode: m.Mode, Owner: m.Owner, Group: m.Group}
}

var (
	_ engine.Module    = (*Directory)(nil)
	_ engine.Validator = (*Directory)(nil)
)

// Probes implements engine.Prober: the one read of the path Run starts with.
func (m *Directory) Probes() []string { return []string{m.ProbeCommand()} }

// ProbePaths implements engine.PathProber: the probe reads the directory alone.
func (m *Directory) ProbePaths() []string { return []string{m.Path} }

// BatchParts implements engine.ProbeBatcher: the probe can be read with other paths'.
func (m *Directory) BatchParts() []engine.BatchPart {
	return []engine.BatchPart{hostfile.DirectoryPart(m.Path)}
}

var _ engine.PathProber = (*Directory)(nil)
