// Package template implements the template module: render an HCL template locally and upload the
// result to a host when it differs from what is there.
package template

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/lang"
	"github.com/runbook/runbook/modules/internal/hostfile"
)

// Template is the configuration of a template task.
type Template struct {
	Source  string    `hcl:"source,optional" doc:"Path of the template file on the machine running runbook, relative to the playbook's directory. Exactly one of source and content is required."`
	Content string    `hcl:"content,optional" doc:"Inline template text, instead of source. The playbook evaluates its own expressions in this string first, so write $${name} for a reference that the template's vars should resolve."`
	Vars    cty.Value `hcl:"vars,optional" doc:"Object whose attributes are the template's variables, e.g. { port = 6379 }. A reference to a variable that is not here is an error naming the template's line."`
	Dest    string    `hcl:"dest,attr" doc:"Absolute path of the file on the host."`
	Owner   string    `hcl:"owner,optional" doc:"User that owns the file. When unset, a new file belongs to the connecting user and an updated file keeps its owner."`
	Group   string    `hcl:"group,optional" doc:"Group of the file. When unset, a new file gets the connecting user's group (or the owner's login group when owner is set) and an updated file keeps its group."`
	Mode    string    `hcl:"mode,optional" doc:"Octal permissions, e.g. \"0640\". When unset, a new file gets 0644 and an updated file keeps its mode."`
}

// Info describes the template module for the registry.
func Info() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "template",
		Summary: "Render an HCL template and upload it to the host when it differs.",
		Doc: `Renders a template written in HCL template syntax (` + "`${var}`, `%{ if }`, `%{ for }`" + ` and the
playbook's functions) on the machine running runbook, then compares the SHA-256 of the result with
the one computed on the host. Only when they differ is the old content read (to show a unified
diff in plan) and the new content uploaded, atomically: written to a temporary file beside the
destination and renamed over it. A file whose content is already right but whose mode, owner or
group drifted gets only those fixed.

One remote command checks an unchanged file, so a re-run is cheap.

Outputs: ` + "`path`" + ` (the destination) and ` + "`sha256`" + ` (of the rendered content).`,
		Example: `task "redis_conf" {
  on       = group.redis
  for_each = { a = 6379, b = 6380, c = 6381 }
  template {
    source = "templates/redis.conf"
    dest   = "/etc/redis/${each.key}.conf"
    vars   = { name = each.key, port = each.value, address = self.address }
    owner  = "redis"
    mode   = "0640"
  }
  notify = [handler.restart_redis]
}`,
		New: func() engine.Module { return &Template{} },
	}
}

// Validate checks the configuration before anything runs.
func (m *Template) Validate() error {
	var errs []error
	if (m.Source == "") == (m.Content == "") {
		errs = append(errs, errors.New("exactly one of source and content must be set"))
	}
	if !filepath.IsAbs(m.Dest) {
		errs = append(errs, fmt.Errorf("dest: %q is not an absolute path", m.Dest))
	}
	if !m.Vars.IsNull() && m.Vars.IsKnown() && !m.Vars.Type().IsObjectType() && !m.Vars.Type().IsMapType() {
		errs = append(errs, fmt.Errorf("vars: must be an object, not %s", m.Vars.Type().FriendlyName()))
	}
	if err := m.attrs().Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Run renders the template and converges the destination file.
func (m *Template) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	if err := m.Validate(); err != nil {
		return engine.Outcome{}, err
	}
	content, err := m.Render(t.Dir())
	if err != nil {
		return engine.Outcome{}, err
	}
	return hostfile.EnsureFile(ctx, t, m.Dest, content, m.attrs())
}

// Render returns the rendered template, resolving source and file functions against dir.
func (m *Template) Render(dir string) ([]byte, error) {
	name, src := "content", []byte(m.Content)
	if m.Source != "" {
		name = lang.Resolve(dir, m.Source)
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read template: %w", err)
		}
		src = b
	}
	vars := map[string]cty.Value{}
	if !m.Vars.IsNull() {
		if !m.Vars.IsWhollyKnown() {
			return nil, errors.New("vars: not known yet (it depends on a value computed during apply)")
		}
		// Sensitive values are registered secrets, redacted from diffs by the engine.
		plain, _ := m.Vars.UnmarkDeep()
		for k, v := range plain.AsValueMap() {
			vars[k] = v
		}
	}
	out, diags := lang.Render(name, src, vars, lang.Functions(dir))
	if diags.HasErrors() {
		return nil, fmt.Errorf("render template: %w", diags)
	}
	return []byte(out), nil
}

func (m *Template) attrs() hostfile.Attrs {
	return hostfile.Attrs{Mode: m.Mode, Owner: m.Owner, Group: m.Group}
}

var (
	_ engine.Module    = (*Template)(nil)
	_ engine.Validator = (*Template)(nil)
)

// Probes implements engine.Prober: the one read of the destination Run starts with.
func (m *Template) Probes() []string { return []string{hostfile.ProbeCommand(m.Dest)} }

// ProbePaths implements engine.PathProber: the probe reads the file alone.
func (m *Template) ProbePaths() []string { return []string{m.Dest} }

// BatchParts implements engine.ProbeBatcher: the probe can be read with other paths'.
func (m *Template) BatchParts() []engine.BatchPart {
	return []engine.BatchPart{hostfile.FilePart(m.Dest)}
}

var _ engine.PathProber = (*Template)(nil)
