package config

import (
	"errors"
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/runbook/runbook/engine"
)

// Instance is one run of a task on one host (one element of its for_each, if any).
type Instance struct {
	Task *Task
	Host string
	// Key is the for_each key as a string ("" without for_each).
	Key  string
	Each *Each
}

// Name is the instance's display name: the task name, with [key] for for_each elements.
func (i Instance) Name() string {
	if i.Each == nil {
		return i.Task.Name
	}
	return fmt.Sprintf("%s[%s]", i.Task.Name, i.Key)
}

// TaskHosts returns the hosts a task runs on, in order: those its `on` selects, or every host.
func (p *Playbook) TaskHosts(t *Task) ([]string, hcl.Diagnostics) {
	if t.On == nil {
		return p.hostNames(), nil
	}
	return p.hostsOf(t.On, p.EvalContext(t, "", nil, cty.NilVal))
}

// ErrUnknown reports that a value depends on outputs of tasks that have not run yet (in plan).
var ErrUnknown = errors.New("depends on values known only after apply")

// Expand returns the instances of t on host: one, or one per for_each element, without those whose
// `when` is false. tasks holds the outputs of earlier tasks. It returns ErrUnknown (wrapped in a
// diagnostic-free error) when for_each cannot be known yet.
func (p *Playbook) Expand(t *Task, host string, tasks cty.Value) ([]Instance, error, hcl.Diagnostics) {
	var insts []Instance
	if t.ForEach == nil {
		insts = []Instance{{Task: t, Host: host}}
	} else {
		val, diags := t.ForEach.Value(p.EvalContext(t, host, nil, tasks))
		if diags.HasErrors() {
			return nil, nil, diags
		}
		if !val.IsWhollyKnown() {
			return nil, ErrUnknown, nil
		}
		if val.IsNull() {
			return nil, nil, nil
		}
		ty := val.Type()
		switch {
		case ty.IsMapType() || ty.IsObjectType():
			m := val.AsValueMap()
			for _, k := range sortedKeys(m) {
				insts = append(insts, Instance{Task: t, Host: host, Key: k, Each: &Each{Key: cty.StringVal(k), Value: m[k]}})
			}
		case ty.IsSetType() || ty.IsListType() || ty.IsTupleType():
			seen := map[string]bool{}
			for it := val.ElementIterator(); it.Next(); {
				_, ev := it.Element()
				sv, err := convert.Convert(ev, cty.String)
				if err != nil || sv.IsNull() {
					return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid for_each",
						Detail: "A list or set in for_each must hold strings (they become each.key). Use a map to iterate over other values.", Subject: t.ForEach.Range().Ptr()}}
				}
				k := sv.AsString()
				if seen[k] {
					continue
				}
				seen[k] = true
				insts = append(insts, Instance{Task: t, Host: host, Key: k, Each: &Each{Key: sv, Value: sv}})
			}
			sort.Slice(insts, func(i, j int) bool { return insts[i].Key < insts[j].Key })
		default:
			return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid for_each",
				Detail: fmt.Sprintf("for_each must be a map, an object, or a set or list of strings, not %s.", ty.FriendlyName()), Subject: t.ForEach.Range().Ptr()}}
		}
	}
	if t.When == nil {
		return insts, nil, nil
	}
	var out []Instance
	for _, in := range insts {
		ok, err, diags := p.When(in, tasks)
		if diags.HasErrors() || err != nil {
			return nil, err, diags
		}
		if ok {
			out = append(out, in)
		}
	}
	return out, nil, nil
}

// When evaluates the task's `when` for an instance (true when there is none).
func (p *Playbook) When(in Instance, tasks cty.Value) (bool, error, hcl.Diagnostics) {
	if in.Task.When == nil {
		return true, nil, nil
	}
	val, diags := in.Task.When.Value(p.EvalContext(in.Task, in.Host, in.Each, tasks))
	if diags.HasErrors() {
		return false, nil, diags
	}
	if !val.IsWhollyKnown() {
		return false, ErrUnknown, nil
	}
	bv, err := convert.Convert(val, cty.Bool)
	if err != nil || bv.IsNull() {
		return false, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid when", Detail: "when must be true or false.", Subject: in.Task.When.Range().Ptr()}}
	}
	return bv.True(), nil, nil
}

// Decode decodes the instance's module block with the instance's context. It returns ErrUnknown
// when an argument depends on outputs not known yet (plan).
func (p *Playbook) Decode(in Instance, tasks cty.Value) (engine.Module, error, hcl.Diagnostics) {
	ctx := p.EvalContext(in.Task, in.Host, in.Each, tasks)
	for _, e := range bodyExprs(in.Task.ModuleBody) {
		v, diags := e.Value(ctx)
		if diags.HasErrors() {
			return nil, nil, diags
		}
		if !v.IsWhollyKnown() {
			return nil, ErrUnknown, nil
		}
	}
	m := in.Task.Module.New()
	diags := gohcl.DecodeBody(in.Task.ModuleBody, ctx, m)
	if diags.HasErrors() {
		return nil, nil, diags
	}
	if v, ok := m.(engine.Validator); ok {
		if err := v.Validate(); err != nil {
			return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf("Invalid %s configuration", in.Task.Module.Name),
				Detail: p.Secrets.Redact(capitalize(err.Error())) + ".", Subject: in.Task.ModuleRange.Ptr()}}
		}
	}
	return m, nil, nil
}

// checkInstances expands every task on its hosts and decodes its module, so that wrong types and
// invalid settings are reported before anything runs. Outputs of other tasks are unknown here.
func (p *Playbook) checkInstances(skip map[*Task]bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	unknownTasks := p.unknownTaskOutputs()
	seen := map[string]bool{}
	add := func(ds hcl.Diagnostics) {
		for _, d := range ds {
			key := d.Summary + d.Detail
			if d.Subject != nil {
				key += d.Subject.String()
			}
			if !seen[key] {
				seen[key] = true
				diags = append(diags, d)
			}
		}
	}
	for _, t := range append(append([]*Task(nil), p.Tasks...), p.Handlers...) {
		if skip[t] || t.ModuleBody == nil {
			continue
		}
		hosts, d := p.TaskHosts(t)
		add(d)
		if d.HasErrors() {
			continue
		}
		if len(hosts) == 0 {
			add(hcl.Diagnostics{{Severity: hcl.DiagWarning, Summary: "Task selects no host",
				Detail: fmt.Sprintf("%s %q runs on no host: its `on` selects none. Check the inventory (-i FILE).", kind(t), t.Name), Subject: t.DeclRange.Ptr()}})
		}
		for _, h := range hosts {
			insts, _, d := p.Expand(t, h, unknownTasks)
			add(d)
			for _, in := range insts {
				_, _, d := p.Decode(in, unknownTasks)
				add(d)
			}
			if t.RunOnce {
				break
			}
		}
	}
	return diags
}

// unknownTaskOutputs is the `task` object as seen before anything ran: every output unknown.
func (p *Playbook) unknownTaskOutputs() cty.Value {
	m := map[string]cty.Value{}
	for _, t := range p.Tasks {
		m[t.Name] = cty.DynamicVal
	}
	return objectOrEmpty(m)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	if s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-32) + s[1:]
	}
	return s
}
