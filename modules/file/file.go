// Package file implements the file module: a file on a host with given content, mode and
// ownership, or no file at all.
package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/modules/internal/hostfile"
)

// File is the configuration of a file task.
type File struct {
	Dest    string  `hcl:"dest,attr" doc:"Absolute path of the file on the host."`
	Content *string `hcl:"content,optional" doc:"Exact content of the file (not a template). At most one of content and source; with neither, a missing file is created empty and an existing file keeps its content."`
	Source  string  `hcl:"source,optional" doc:"Path of a local file, relative to the playbook's directory, copied to the host as is."`
	Owner   string  `hcl:"owner,optional" doc:"User that owns the file. When unset, a new file belongs to the connecting user and an updated file keeps its owner."`
	Group   string  `hcl:"group,optional" doc:"Group of the file. When unset, a new file gets the connecting user's group (or the owner's login group when owner is set) and an updated file keeps its group."`
	Mode    string  `hcl:"mode,optional" doc:"Octal permissions, e.g. \"0600\". When unset, a new file gets 0644 and an updated file keeps its mode."`
	State   string  `hcl:"state,optional" doc:"\"present\" to ensure the file, \"absent\" to remove it (a directory at dest is an error, not removed)."`
}

// Info describes the file module for the registry.
func Info() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "file",
		Summary: "Ensure a file with given content, mode and owner, or its absence.",
		Doc: `Ensures a regular file on the host. Its content comes from ` + "`content`" + ` (inline, used
verbatim) or ` + "`source`" + ` (a local file copied byte for byte); for templates use the
` + "`template`" + ` module. The SHA-256 of the wanted content is compared with the one computed on
the host, so an unchanged file costs one remote command; a changed one is uploaded atomically, with
a unified diff in plan. Mode, owner and group drift is fixed without rewriting the file.

With ` + "`state = \"absent\"`" + ` the file is removed when it exists.

Outputs: ` + "`path`" + ` and, when the content is managed, ` + "`sha256`" + `.`,
		Example: `task "motd" {
  on = group.all
  file {
    dest    = "/etc/motd"
    content = "Managed by runbook.\n"
    mode    = "0644"
  }
}`,
		New: func() engine.Module { return &File{State: "present"} },
	}
}

// Validate checks the configuration before anything runs.
func (m *File) Validate() error {
	var errs []error
	if !filepath.IsAbs(m.Dest) {
		errs = append(errs, fmt.Errorf("dest: %q is not an absolute path", m.Dest))
	}
	if m.Content != nil && m.Source != "" {
		errs = append(errs, errors.New("content and source are mutually exclusive"))
	}
	switch m.State {
	case "present":
	case "absent":
		if m.Content != nil || m.Source != "" || m.Mode != "" || m.Owner != "" || m.Group != "" {
			errs = append(errs, errors.New(`state = "absent" takes no content, source, mode, owner or group`))
		}
	default:
		errs = append(errs, fmt.Errorf(`state: %q is not "present" or "absent"`, m.State))
	}
	if err := m.attrs().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run converges the file.
func (m *File) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	if err := m.Validate(); err != nil {
		return engine.Outcome{}, err
	}
	switch {
	case m.State == "absent":
		return m.remove(ctx, t)
	case m.Content != nil:
		return hostfile.EnsureFile(ctx, t, m.Dest, []byte(*m.Content), m.attrs())
	case m.Source != "":
		b, err := os.ReadFile(t.Path(m.Source))
		if err != nil {
			return engine.Outcome{}, fmt.Errorf("read source: %w", err)
		}
		return hostfile.EnsureFile(ctx, t, m.Dest, b, m.attrs())
	}
	return m.exists(ctx, t)
}

// exists ensures the file exists without managing its content.
func (m *File) exists(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	out := engine.Outcome{Outputs: map[string]cty.Value{"path": cty.StringVal(m.Dest)}}
	st, err := hostfile.Probe(ctx, t.Conn(), m.Dest)
	if err != nil {
		return out, err
	}
	switch st.Kind {
	case hostfile.Absent:
		spec := engine.FileSpec{Path: m.Dest, Mode: m.Mode, Owner: m.Owner, Group: m.Group}
		err := t.Change(ctx, engine.Change{Summary: "create empty " + m.Dest, Writes: []string{m.Dest}}, func(ctx context.Context) error {
			return engine.WriteFile(ctx, t.Conn(), spec)
		})
		out.Summary = hostfile.Did(t, "created "+m.Dest, "will create "+m.Dest)
		return out, err
	case hostfile.File:
		if fixed, err := hostfile.FixDrift(ctx, t, m.Dest, st, m.attrs()); err != nil || fixed {
			out.Summary = hostfile.Did(t, "fixed attributes of "+m.Dest, "will fix attributes of "+m.Dest)
			return out, err
		}
		out.Summary = m.Dest + " is up to date"
		return out, nil
	}
	return out, fmt.Errorf("%s exists on the host and is not a regular file", m.Dest)
}

func (m *File) remove(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	out := engine.Outcome{Outputs: map[string]cty.Value{"path": cty.StringVal(m.Dest)}}
	st, err := hostfile.Probe(ctx, t.Conn(), m.Dest)
	if err != nil {
		return out, err
	}
	switch st.Kind {
	case hostfile.Absent:
		out.Summary = m.Dest + " is absent"
		return out, nil
	case hostfile.Directory:
		return out, fmt.Errorf("%s is a directory; remove it with the directory module", m.Dest)
	}
	err = t.Change(ctx, engine.Change{Summary: "remove " + m.Dest, Removes: []string{m.Dest}}, func(ctx context.Context) error {
		_, err := engine.Run(ctx, t.Conn(), "rm -f -- "+engine.ShellQuote(m.Dest))
		return err
	})
	out.Summary = hostfile.Did(t, "removed "+m.Dest, "will remove "+m.Dest)
	return out, err
}

func (m *File) attrs() hostfile.Attrs {
	return hostfile.Attrs{Mode: m.Mode, Owner: m.Owner, Group: m.Group}
}

var (
	_ engine.Module    = (*File)(nil)
	_ engine.Validator = (*File)(nil)
)

// Probes implements engine.Prober: the one read of the destination Run starts with.
func (m *File) Probes() []string { return []string{hostfile.ProbeCommand(m.Dest)} }

// ProbePaths implements engine.PathProber: the probe reads the file alone.
func (m *File) ProbePaths() []string { return []string{m.Dest} }

// BatchParts implements engine.ProbeBatcher: the probe can be read with other paths'.
func (m *File) BatchParts() []engine.BatchPart { return []engine.BatchPart{hostfile.FilePart(m.Dest)} }

var _ engine.PathProber = (*File)(nil)
