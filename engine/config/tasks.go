package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

var taskAttrs = []string{"on", "for_each", "depends_on", "when", "run_once", "serial", "retries", "until", "delay", "notify"}

func (p *Playbook) decodeTasks(blocks []located, handler bool) hcl.Diagnostics {
	var diags hcl.Diagnostics
	kind := "task"
	index := p.taskIndex
	if handler {
		kind = "handler"
		index = p.handlerIdx
	}
	for _, lb := range blocks {
		b := lb.block
		name := b.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Invalid %s name", kind),
				Detail: fmt.Sprintf("%q is not a valid name: use letters, digits, underscores and dashes, starting with a letter.", name), Subject: b.LabelRanges[0].Ptr()})
			continue
		}
		if prev, ok := index[name]; ok {
			diags = append(diags, duplicate(kind, name, b, prev.DeclRange))
			continue
		}
		t := &Task{Name: name, Handler: handler, Dir: lb.dir, DeclRange: b.DefRange}
		body, ok := b.Body.(*hclsyntax.Body)
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported syntax", Detail: "Tasks must be written in HCL native syntax.", Subject: b.DefRange.Ptr()})
			continue
		}
		attrs := map[string]*hclsyntax.Attribute{}
		for an, a := range body.Attributes {
			if !contains(taskAttrs, an) || (handler && (an == "notify" || an == "depends_on")) {
				allowed := taskAttrs
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unsupported argument",
					Detail: fmt.Sprintf("An argument named %q is not expected in a %s.%s The module's own arguments go inside its block, e.g. template { dest = ... }.", an, kind, didYouMean(an, allowed)), Subject: a.NameRange.Ptr()})
				continue
			}
			attrs[an] = a
		}
		var modBlocks []*hclsyntax.Block
		for _, mb := range body.Blocks {
			info, ok := p.registry.Lookup(mb.Type)
			if !ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown module",
					Detail: fmt.Sprintf("There is no module named %q.%s Modules: %s.", mb.Type, didYouMean(mb.Type, p.registry.Names()), strings.Join(p.registry.Names(), ", ")), Subject: mb.TypeRange.Ptr()})
				continue
			}
			if len(mb.Labels) > 0 {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unexpected label", Detail: fmt.Sprintf("A %s block takes no label.", mb.Type), Subject: mb.LabelRanges[0].Ptr()})
				continue
			}
			modBlocks = append(modBlocks, mb)
			t.Module = info
			t.ModuleBody = mb.Body
			t.ModuleRange = mb.TypeRange
		}
		switch {
		case len(modBlocks) == 0 && !diags.HasErrors():
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("%s without a module", strings.Title(kind)), //nolint:staticcheck
				Detail: fmt.Sprintf("%s %q has no module block. Add one, e.g. command { cmd = \"...\" }. Modules: %s.", strings.Title(kind), name, strings.Join(p.registry.Names(), ", ")), Subject: b.DefRange.Ptr()}) //nolint:staticcheck
		case len(modBlocks) > 1:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "More than one module",
				Detail: fmt.Sprintf("%s %q has %d module blocks; a %s has exactly one. Split it into several.", kind, name, len(modBlocks), kind), Subject: modBlocks[1].TypeRange.Ptr()})
		}
		if len(modBlocks) == 1 {
			schemaBody := hcl.Body(t.ModuleBody)
			diags = append(diags, checkModuleSchema(schemaBody, t.Module.New())...)
		}
		if a, ok := attrs["on"]; ok {
			t.On = a.Expr
		}
		if a, ok := attrs["for_each"]; ok {
			t.ForEach = a.Expr
		}
		if a, ok := attrs["when"]; ok {
			t.When = a.Expr
		}
		if a, ok := attrs["until"]; ok {
			t.Until = a.Expr
		}
		if a, ok := attrs["run_once"]; ok {
			diags = append(diags, constBool(a, &t.RunOnce)...)
		}
		if t.Module.RunOnce {
			t.RunOnce = true
		}
		if a, ok := attrs["serial"]; ok {
			diags = append(diags, constInt(a, &t.Serial, 1)...)
		}
		if a, ok := attrs["retries"]; ok {
			diags = append(diags, constInt(a, &t.Retries, 0)...)
		}
		if a, ok := attrs["delay"]; ok {
			var s string
			diags = append(diags, decodeString(a.AsHCLAttribute(), p.evalContext(nil, false), &s)...)
			if s != "" {
				d, err := time.ParseDuration(s)
				if err != nil || d < 0 {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid duration", Detail: fmt.Sprintf("%q is not a duration like \"500ms\", \"2s\" or \"1m\".", s), Subject: a.Expr.Range().Ptr()})
				}
				t.Delay = d
			}
		}
		if a, ok := attrs["depends_on"]; ok {
			names, d := refList(a, "task")
			diags = append(diags, d...)
			t.DependsOn = names
		}
		if a, ok := attrs["notify"]; ok {
			names, d := refList(a, "handler")
			diags = append(diags, d...)
			t.Notify = names
		}
		index[name] = t
		if handler {
			p.Handlers = append(p.Handlers, t)
		} else {
			p.Tasks = append(p.Tasks, t)
			p.Graph.Add(name)
		}
	}
	return diags
}

func refList(a *hclsyntax.Attribute, root string) ([]string, hcl.Diagnostics) {
	exprs, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf("Invalid %s", a.Name),
			Detail: fmt.Sprintf("%s must be a list of references like [%s.NAME].", a.Name, root), Subject: a.Expr.Range().Ptr()}}
	}
	var names []string
	for _, e := range exprs {
		tr, d := hcl.AbsTraversalForExpr(e)
		if d.HasErrors() || len(tr) != 2 || tr.RootName() != root {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Invalid %s", a.Name),
				Detail: fmt.Sprintf("Each element of %s must be a reference like %s.NAME.", a.Name, root), Subject: e.Range().Ptr()})
			continue
		}
		names = append(names, attrName(tr[1]))
	}
	return names, diags
}

func constBool(a *hclsyntax.Attribute, out *bool) hcl.Diagnostics {
	val, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + a.Name, Detail: a.Name + " must be a constant true or false.", Subject: a.Expr.Range().Ptr()}}
	}
	bv, err := convert.Convert(val, cty.Bool)
	if err != nil || bv.IsNull() {
		return hcl.Diagnostics{typeErr(a.AsHCLAttribute(), "a bool")}
	}
	*out = bv.True()
	return nil
}

func constInt(a *hclsyntax.Attribute, out *int, min int) hcl.Diagnostics {
	val, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + a.Name, Detail: a.Name + " must be a constant number.", Subject: a.Expr.Range().Ptr()}}
	}
	nv, err := convert.Convert(val, cty.Number)
	if err != nil || nv.IsNull() || !nv.AsBigFloat().IsInt() {
		return hcl.Diagnostics{typeErr(a.AsHCLAttribute(), "a whole number")}
	}
	i, _ := nv.AsBigFloat().Int64()
	if int(i) < min {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + a.Name, Detail: fmt.Sprintf("%s must be at least %d.", a.Name, min), Subject: a.Expr.Range().Ptr()}}
	}
	*out = int(i)
	return nil
}
