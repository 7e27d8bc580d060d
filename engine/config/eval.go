package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/runbook/runbook/engine/lang"
)

// functions returns the expression functions for files in dir, made once per directory.
func (p *Playbook) functions(dir string) map[string]function.Function {
	p.cacheMu.Lock()
	defer p.cacheMu.Unlock()
	if p.funcs == nil {
		p.funcs = map[string]map[string]function.Function{}
	}
	f, ok := p.funcs[dir]
	if !ok {
		f = lang.Functions(dir)
		p.funcs[dir] = f
	}
	return f
}

// HostValue returns the object a host is seen as in expressions (host.NAME, self): kind, name,
// address, port, user, vars and groups.
func (p *Playbook) HostValue(h *Host) cty.Value {
	groups := make([]cty.Value, len(h.Groups))
	for i, g := range h.Groups {
		groups[i] = cty.StringVal(g)
	}
	vars := h.Vars
	if vars == nil {
		vars = h.ownVars
	}
	return cty.ObjectVal(map[string]cty.Value{
		"kind":    cty.StringVal("host"),
		"name":    cty.StringVal(h.Name),
		"address": cty.StringVal(h.Address),
		"port":    cty.NumberIntVal(int64(h.Port)),
		"user":    cty.StringVal(h.User),
		"vars":    objectOrEmpty(vars),
		"groups":  tupleOrEmpty(groups),
	})
}

func (p *Playbook) groupValue(g *Group) cty.Value {
	hosts := make([]cty.Value, 0, len(g.Hosts))
	names := make([]cty.Value, 0, len(g.Hosts))
	for _, n := range g.Hosts {
		if h, ok := p.hostIndex[n]; ok {
			hosts = append(hosts, p.HostValue(h))
			names = append(names, cty.StringVal(n))
		}
	}
	return cty.ObjectVal(map[string]cty.Value{
		"kind":  cty.StringVal("group"),
		"name":  cty.StringVal(g.Name),
		"hosts": tupleOrEmpty(hosts),
		"names": tupleOrEmpty(names),
		"vars":  objectOrEmpty(g.Vars),
	})
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

func tupleOrEmpty(v []cty.Value) cty.Value {
	if len(v) == 0 {
		return cty.EmptyTupleVal
	}
	return cty.TupleVal(v)
}

// evalContext returns the context for expressions outside tasks: var, host, group and, when
// withLocals, local. extra adds or overrides variables.
func (p *Playbook) evalContext(extra map[string]cty.Value, withLocals bool) *hcl.EvalContext {
	vars := map[string]cty.Value{
		"var": p.valuesObject(),
	}
	hosts, groups := p.inventoryValues()
	vars["host"] = hosts
	vars["group"] = groups
	if withLocals {
		vars["local"] = p.localsObject()
	}
	for k, v := range extra {
		vars[k] = v
	}
	return &hcl.EvalContext{Variables: vars, Functions: p.functions(p.Dir)}
}

// valuesObject is the var object: built once the values are final (the inventory is decoded
// after them).
func (p *Playbook) valuesObject() cty.Value {
	return p.finalObject(&p.inventoryDone, &p.varObj, p.Values)
}

// localsObject is the local object: built once every local is decoded.
func (p *Playbook) localsObject() cty.Value {
	return p.finalObject(&p.localsDone, &p.localObj, p.Locals)
}

// finalObject returns the object of m, kept in *cache once *final says m will not change.
func (p *Playbook) finalObject(final *bool, cache *cty.Value, m map[string]cty.Value) cty.Value {
	p.cacheMu.Lock()
	defer p.cacheMu.Unlock()
	if *final && *cache != cty.NilVal {
		return *cache
	}
	v := objectOrEmpty(m)
	if *final {
		*cache = v
	}
	return v
}

// inventoryValues returns the host and group objects. Once the inventory is complete (tasks are
// being decoded) they never change, so they are built once.
func (p *Playbook) inventoryValues() (cty.Value, cty.Value) {
	p.cacheMu.Lock()
	defer p.cacheMu.Unlock()
	if p.inventoryDone && p.hostObj != cty.NilVal {
		return p.hostObj, p.groupObj
	}
	hosts := map[string]cty.Value{}
	for _, h := range p.Hosts {
		hosts[h.Name] = p.HostValue(h)
	}
	groups := map[string]cty.Value{}
	for _, g := range p.Groups {
		groups[g.Name] = p.groupValue(g)
	}
	ho, gr := objectOrEmpty(hosts), objectOrEmpty(groups)
	if p.inventoryDone {
		p.hostObj, p.groupObj = ho, gr
	}
	return ho, gr
}

// EvalContext returns the context for a task's expressions on one host: var, local, host, group,
// self (the host), each (when eachKey is not cty.NilVal) and task (outputs of earlier tasks).
func (p *Playbook) EvalContext(t *Task, host string, each *Each, tasks cty.Value) *hcl.EvalContext {
	extra := map[string]cty.Value{}
	if h, ok := p.hostIndex[host]; ok {
		extra["self"] = p.selfValue(h)
	}
	if each != nil {
		extra["each"] = cty.ObjectVal(map[string]cty.Value{"key": each.Key, "value": each.Value})
	}
	if tasks == cty.NilVal {
		tasks = cty.EmptyObjectVal
	}
	extra["task"] = tasks
	ctx := p.evalContext(extra, true)
	if t != nil && t.Dir != "" {
		ctx.Functions = p.functions(t.Dir)
	}
	return ctx
}

// selfValue is HostValue, cached once the inventory is complete.
func (p *Playbook) selfValue(h *Host) cty.Value {
	p.cacheMu.Lock()
	defer p.cacheMu.Unlock()
	if !p.inventoryDone {
		return p.HostValue(h)
	}
	if p.hostVals == nil {
		p.hostVals = map[string]cty.Value{}
	}
	v, ok := p.hostVals[h.Name]
	if !ok {
		v = p.HostValue(h)
		p.hostVals[h.Name] = v
	}
	return v
}

// Each is the current element of a for_each.
type Each struct {
	Key   cty.Value
	Value cty.Value
}

func (p *Playbook) decodeLocals(blocks []*hcl.Block) hcl.Diagnostics {
	var diags hcl.Diagnostics
	pending := map[string]*hcl.Attribute{}
	for _, b := range blocks {
		attrs, d := b.Body.JustAttributes()
		diags = append(diags, d...)
		for name, a := range attrs {
			if prev, ok := pending[name]; ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate local %q", name),
					Detail: fmt.Sprintf("local.%s was already defined at %s.", name, prev.NameRange), Subject: a.NameRange.Ptr()})
				continue
			}
			pending[name] = a
		}
	}
	for _, name := range sortedKeys(pending) {
		diags = append(diags, p.checkTraversals(pending[name].Expr, refScope{locals: pending})...)
	}
	if diags.HasErrors() {
		return diags
	}
	for len(pending) > 0 {
		progress := false
		for _, name := range sortedKeys(pending) {
			a := pending[name]
			ready := true
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() == "local" && len(tr) > 1 {
					if _, waiting := pending[attrName(tr[1])]; waiting {
						ready = false
						break
					}
				}
			}
			if !ready {
				continue
			}
			val, d := a.Expr.Value(p.evalContext(nil, true))
			diags = append(diags, d...)
			p.Locals[name] = val
			delete(pending, name)
			progress = true
		}
		if !progress {
			for _, name := range sortedKeys(pending) {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Cycle in locals",
					Detail: fmt.Sprintf("local.%s depends on itself through other locals. Break the cycle.", name), Subject: pending[name].NameRange.Ptr()})
			}
			break
		}
	}
	return diags
}
