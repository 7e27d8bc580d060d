package config

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// EnvPrefix is the prefix of environment variables that set input variables.
const EnvPrefix = "RUNBOOK_VAR_"

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "sensitive"},
		{Name: "description"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true},
		{Name: "error_message", Required: true},
	},
}

func (p *Playbook) decodeVariables(blocks []*hcl.Block) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, b := range blocks {
		name := b.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid variable name",
				Detail: fmt.Sprintf("%q is not a valid name: use letters, digits, underscores and dashes, starting with a letter.", name), Subject: b.LabelRanges[0].Ptr()})
			continue
		}
		if prev, ok := p.Variables[name]; ok {
			diags = append(diags, duplicate("variable", name, b, prev.DeclRange))
			continue
		}
		v := &Variable{Name: name, Type: cty.DynamicPseudoType, DeclRange: b.DefRange}
		content, d := b.Body.Content(variableSchema)
		diags = append(diags, d...)
		if a, ok := content.Attributes["type"]; ok {
			ty, d := typeexpr.TypeConstraint(a.Expr)
			diags = append(diags, d...)
			if !d.HasErrors() {
				v.Type = ty
			}
		}
		if a, ok := content.Attributes["description"]; ok {
			diags = append(diags, decodeString(a, nil, &v.Description)...)
		}
		if a, ok := content.Attributes["sensitive"]; ok {
			val, d := a.Expr.Value(nil)
			diags = append(diags, d...)
			if !d.HasErrors() {
				if bv, err := convert.Convert(val, cty.Bool); err != nil || bv.IsNull() {
					diags = append(diags, typeErr(a, "a bool"))
				} else {
					v.Sensitive = bv.True()
				}
			}
		}
		if a, ok := content.Attributes["default"]; ok {
			val, d := a.Expr.Value(&hcl.EvalContext{Functions: nil})
			diags = append(diags, d...)
			if !d.HasErrors() {
				cv, err := convert.Convert(val, v.Type)
				if err != nil {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid default value for variable",
						Detail: fmt.Sprintf("The default of variable %q does not fit its type %s: %s.", name, typeexpr.TypeString(v.Type), err), Subject: a.Expr.Range().Ptr()})
				} else {
					v.Default = cv
				}
			}
		}
		for _, vb := range content.Blocks {
			vc, d := vb.Body.Content(validationSchema)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			val := &Validation{Condition: vc.Attributes["condition"].Expr, DeclRange: vb.DefRange}
			diags = append(diags, decodeString(vc.Attributes["error_message"], nil, &val.ErrorMessage)...)
			for _, tr := range val.Condition.Variables() {
				if tr.RootName() != "var" || len(tr) < 2 || attrName(tr[1]) != name {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid validation condition",
						Detail: fmt.Sprintf("A validation condition of variable %q may refer only to var.%s.", name, name), Subject: tr.SourceRange().Ptr()})
				}
			}
			v.Validations = append(v.Validations, val)
		}
		p.Variables[name] = v
	}
	return diags
}

// assignValues sets every variable's value: default < RUNBOOK_VAR_ < var files (in order) < -var.
func (p *Playbook) assignValues(opts Options) hcl.Diagnostics {
	var diags hcl.Diagnostics
	set := map[string]cty.Value{}
	invalid := map[string]bool{} // given, but not valid: reported once, not again as missing
	for _, kv := range opts.Environ {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		name = strings.TrimPrefix(name, EnvPrefix)
		v, declared := p.Variables[name]
		if !declared {
			continue
		}
		val, d := parseRawValue(v, raw, "environment variable "+EnvPrefix+name)
		diags = append(diags, d...)
		if !d.HasErrors() {
			set[name] = val
		}
	}
	for _, path := range opts.VarFiles {
		f, d := p.parse(path)
		diags = append(diags, d...)
		if f == nil || d.HasErrors() {
			continue
		}
		attrs, d := f.Body.JustAttributes()
		diags = append(diags, d...)
		names := make([]string, 0, len(attrs))
		for n := range attrs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			a := attrs[n]
			v, declared := p.Variables[n]
			if !declared {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Value for undeclared variable",
					Detail: fmt.Sprintf("The file sets %q, which the playbook does not declare; it is ignored.%s", n, didYouMean(n, p.variableNames())), Subject: a.NameRange.Ptr()})
				continue
			}
			val, d := a.Expr.Value(nil)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			cv, err := convert.Convert(val, v.Type)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
					Detail: fmt.Sprintf("Variable %q must be %s: %s.", n, typeexpr.TypeString(v.Type), err), Subject: a.Expr.Range().Ptr()})
				invalid[n] = true
				continue
			}
			set[n] = cv
		}
	}
	for _, kv := range opts.Vars {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid -var option",
				Detail: fmt.Sprintf("The option -var %q is not of the form NAME=VALUE.", kv)})
			continue
		}
		v, declared := p.Variables[name]
		if !declared {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Value for undeclared variable",
				Detail: fmt.Sprintf("The option -var sets %q, which the playbook does not declare.%s Declare it with a variable block, or fix the name.", name, didYouMean(name, p.variableNames()))})
			continue
		}
		val, d := parseRawValue(v, raw, "-var "+name)
		diags = append(diags, d...)
		if !d.HasErrors() {
			set[name] = val
		} else {
			invalid[name] = true
		}
	}
	for _, name := range sortedKeys(p.Variables) {
		v := p.Variables[name]
		val, ok := set[name]
		if !ok && invalid[name] {
			p.Values[name] = cty.UnknownVal(v.Type)
			continue
		}
		if !ok {
			if v.Default == cty.NilVal {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No value for required variable",
					Detail:  fmt.Sprintf("Variable %q has no default and no value was given. Set it with -var %s=VALUE, in a -var-file, or with the environment variable %s%s.", name, name, EnvPrefix, name),
					Subject: v.DeclRange.Ptr()})
				p.Values[name] = cty.UnknownVal(v.Type)
				continue
			}
			val = v.Default
		}
		p.Values[name] = val
		if v.Sensitive {
			p.Secrets.Add(stringLeaves(val)...)
		}
	}
	return diags
}

func parseRawValue(v *Variable, raw, where string) (cty.Value, hcl.Diagnostics) {
	if v.Type == cty.String || v.Type == cty.DynamicPseudoType {
		return cty.StringVal(raw), nil
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), where, hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	val, diags := expr.Value(nil)
	if diags.HasErrors() {
		return cty.NilVal, diags
	}
	cv, err := convert.Convert(val, v.Type)
	if err != nil {
		return cty.NilVal, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid value for variable",
			Detail: fmt.Sprintf("The value from %s for variable %q must be %s: %s.", where, v.Name, typeexpr.TypeString(v.Type), err)}}
	}
	return cv, nil
}

func (p *Playbook) checkValidations() hcl.Diagnostics {
	var diags hcl.Diagnostics
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(p.Values)}, Functions: p.functions(p.Dir)}
	for _, name := range sortedKeys(p.Variables) {
		v := p.Variables[name]
		for _, val := range v.Validations {
			res, d := val.Condition.Value(ctx)
			diags = append(diags, d...)
			if d.HasErrors() {
				continue
			}
			if bv, err := convert.Convert(res, cty.Bool); err != nil || bv.IsNull() || !bv.IsKnown() {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid validation condition", Detail: "The condition must be true or false.", Subject: val.Condition.Range().Ptr()})
			} else if bv.False() {
				diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid value for variable",
					Detail: p.Secrets.Redact(val.ErrorMessage) + fmt.Sprintf(" (variable %q, checked at %s)", name, val.DeclRange), Subject: v.DeclRange.Ptr()})
			}
		}
	}
	return diags
}

func (p *Playbook) variableNames() []string { return sortedKeys(p.Variables) }

func stringLeaves(v cty.Value) []string {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	switch {
	case v.Type() == cty.String:
		return []string{v.AsString()}
	case v.Type().IsPrimitiveType():
		return nil
	case v.CanIterateElements():
		var out []string
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			out = append(out, stringLeaves(ev)...)
		}
		return out
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func dirOf(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		return filepath.Dir(path)
	}
	return filepath.Dir(abs)
}

func duplicate(kind, name string, b *hcl.Block, prev hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("Duplicate %s %q", kind, name),
		Detail:  fmt.Sprintf("A %s named %q was already declared at %s. Names must be unique; rename or remove one of them.", kind, name, prev),
		Subject: b.DefRange.Ptr()}
}

func typeErr(a *hcl.Attribute, want string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incorrect attribute value type",
		Detail: fmt.Sprintf("The argument %q must be %s.", a.Name, want), Subject: a.Expr.Range().Ptr()}
}

func decodeString(a *hcl.Attribute, ctx *hcl.EvalContext, out *string) hcl.Diagnostics {
	val, diags := a.Expr.Value(ctx)
	if diags.HasErrors() {
		return diags
	}
	sv, err := convert.Convert(val, cty.String)
	if err != nil || sv.IsNull() || !sv.IsKnown() {
		return hcl.Diagnostics{typeErr(a, "a string")}
	}
	*out = sv.AsString()
	return nil
}

func attrName(s hcl.Traverser) string {
	switch t := s.(type) {
	case hcl.TraverseAttr:
		return t.Name
	case hcl.TraverseIndex:
		if t.Key.Type() == cty.String {
			return t.Key.AsString()
		}
	}
	return ""
}
