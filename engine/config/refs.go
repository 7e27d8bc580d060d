package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/dag"
)

// refScope says which roots a reference may use where it stands.
type refScope struct {
	locals  map[string]*hcl.Attribute // while decoding locals: the pending ones are also valid
	task    *Task                     // inside a task or handler
	each    bool                      // each.* allowed (for_each is set and this is not for_each)
	result  bool                      // result.* allowed (until)
	deps    map[string]bool           // task.X references found (filled in)
	handler bool
}

func (p *Playbook) checkTraversals(expr hcl.Expression, s refScope) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, tr := range expr.Variables() {
		diags = append(diags, p.checkTraversal(tr, s)...)
	}
	return diags
}

func (p *Playbook) checkTraversal(tr hcl.Traversal, s refScope) hcl.Diagnostics {
	root := tr.RootName()
	rng := tr.SourceRange().Ptr()
	next := func() (string, bool) {
		if len(tr) < 2 {
			return "", false
		}
		n := attrName(tr[1])
		return n, n != ""
	}
	undeclared := func(kind, prefix, name string, names []string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: fmt.Sprintf("Reference to undeclared %s", kind),
			Detail:  fmt.Sprintf("%s.%s is not declared.%s", prefix, name, didYouMean(name, names)),
			Subject: rng}}
	}
	needAttr := func(prefix string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid reference",
			Detail: fmt.Sprintf("%s must be followed by a name, like %s.NAME.", prefix, prefix), Subject: rng}}
	}
	roots := []string{"var", "local", "host", "group"}
	if s.task != nil {
		roots = append(roots, "self", "task")
		if s.each {
			roots = append(roots, "each")
		}
		if s.result {
			roots = append(roots, "result")
		}
	}
	switch root {
	case "var":
		n, ok := next()
		if !ok {
			return needAttr("var")
		}
		if _, ok := p.Variables[n]; !ok {
			return undeclared("input variable", "var", n, p.variableNames())
		}
	case "local":
		n, ok := next()
		if !ok {
			return needAttr("local")
		}
		_, done := p.Locals[n]
		_, pending := s.locals[n]
		if !done && !pending {
			names := append(sortedKeys(p.Locals), sortedKeys(s.locals)...)
			return undeclared("local value", "local", n, names)
		}
	case "host":
		n, ok := next()
		if !ok {
			return needAttr("host")
		}
		if _, ok := p.hostIndex[n]; !ok {
			return undeclared("host", "host", n, p.hostNames())
		}
	case "group":
		n, ok := next()
		if !ok {
			return needAttr("group")
		}
		if len(p.Groups) > 0 || len(p.groupIndex) > 0 {
			if _, ok := p.groupIndex[n]; !ok {
				return undeclared("group", "group", n, p.groupNames())
			}
		} else {
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Reference to undeclared group",
				Detail: fmt.Sprintf("group.%s is not declared: the inventory has no groups. Pass the inventory with -i FILE.", n), Subject: rng}}
		}
	case "task":
		if s.task == nil {
			break
		}
		n, ok := next()
		if !ok {
			return needAttr("task")
		}
		if _, ok := p.taskIndex[n]; !ok {
			return undeclared("task", "task", n, sortedKeys(p.taskIndex))
		}
		if s.deps != nil {
			s.deps[n] = true
		}
		return nil
	}
	if contains(roots, root) {
		return nil
	}
	detail := fmt.Sprintf("There is no variable named %q here.%s", root, didYouMean(root, roots))
	switch {
	case root == "each" && s.task != nil:
		detail = "each is only available in a task that sets for_each (and not in for_each itself)."
	case (root == "self" || root == "task") && s.task == nil:
		detail = fmt.Sprintf("%s is only available inside a task or a handler.", root)
	case root == "result":
		detail = "result is only available in a task's until expression."
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unknown variable", Detail: detail, Subject: rng}}
}

// bodyExprs returns every attribute expression of a native-syntax body, nested blocks included.
func bodyExprs(b hcl.Body) []hcl.Expression {
	sb, ok := b.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	var out []hcl.Expression
	names := make([]string, 0, len(sb.Attributes))
	for n := range sb.Attributes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		out = append(out, sb.Attributes[n].Expr)
	}
	for _, nb := range sb.Blocks {
		out = append(out, bodyExprs(nb.Body)...)
	}
	return out
}

// checkReferences checks every reference of every task, builds the task graph and checks it for
// cycles. It returns the tasks with errors, which are not checked further.
func (p *Playbook) checkReferences() (hcl.Diagnostics, map[*Task]bool) {
	var diags hcl.Diagnostics
	bad := map[*Task]bool{}
	all := append(append([]*Task(nil), p.Tasks...), p.Handlers...)
	for _, t := range all {
		before := len(diags)
		deps := map[string]bool{}
		refs := map[string]bool{}
		base := refScope{task: t, deps: refs, handler: t.Handler}
		withEach := base
		withEach.each = t.ForEach != nil
		for _, e := range []hcl.Expression{t.On, t.ForEach} {
			if e != nil {
				diags = append(diags, p.checkTraversals(e, base)...)
			}
		}
		if t.When != nil {
			diags = append(diags, p.checkTraversals(t.When, withEach)...)
		}
		if t.Until != nil {
			s := withEach
			s.result = true
			diags = append(diags, p.checkTraversals(t.Until, s)...)
		}
		for _, e := range bodyExprs(t.ModuleBody) {
			diags = append(diags, p.checkTraversals(e, withEach)...)
		}
		t.Refs = sortedKeys(refs)
		for n := range refs {
			deps[n] = true
		}
		for _, n := range t.DependsOn {
			if _, ok := p.taskIndex[n]; !ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Reference to undeclared task",
					Detail: fmt.Sprintf("%s %q depends on task.%s, which is not declared.%s", kind(t), t.Name, n, didYouMean(n, sortedKeys(p.taskIndex))), Subject: t.DeclRange.Ptr()})
				continue
			}
			deps[n] = true
		}
		for _, n := range t.Notify {
			if _, ok := p.handlerIdx[n]; !ok {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Reference to undeclared handler",
					Detail: fmt.Sprintf("Task %q notifies handler.%s, which is not declared.%s", t.Name, n, didYouMean(n, sortedKeys(p.handlerIdx))), Subject: t.DeclRange.Ptr()})
			}
		}
		if hcl.Diagnostics(diags[before:]).HasErrors() {
			bad[t] = true
		}
		if !t.Handler {
			for _, n := range sortedKeys(deps) {
				p.Graph.Connect(t.Name, n)
			}
		}
	}
	if err := p.Graph.Validate(); err != nil {
		for _, e := range unwrapJoined(err) {
			ce, ok := e.(*dag.CycleError)
			if !ok {
				continue
			}
			path := make([]string, len(ce.Path))
			for i, n := range ce.Path {
				path[i] = "task." + n
			}
			t := p.taskIndex[ce.Path[0]]
			for _, n := range ce.Path {
				bad[p.taskIndex[n]] = true
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Dependency cycle",
				Detail:  fmt.Sprintf("These tasks depend on each other: %s. Remove one of the dependencies (depends_on or a reference to task.NAME).", strings.Join(path, " → ")),
				Subject: t.DeclRange.Ptr()})
		}
	}
	return diags, bad
}

func kind(t *Task) string {
	if t.Handler {
		return "Handler"
	}
	return "Task"
}

func unwrapJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// checkModuleSchema reports unknown and missing arguments of a module block.
func checkModuleSchema(body hcl.Body, m engine.Module) hcl.Diagnostics {
	schema, _ := gohcl.ImpliedBodySchema(m)
	_, diags := body.Content(schema)
	return diags
}
