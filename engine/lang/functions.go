// Package lang holds the expression language shared by playbooks and templates: the functions
// available in expressions and the rendering of HCL templates.
package lang

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Functions returns the functions available in expressions, with file paths resolved against
// baseDir. templatefile renders with the same functions.
func Functions(baseDir string) map[string]function.Function {
	fns := map[string]function.Function{
		"abs":             stdlib.AbsoluteFunc,
		"alltrue":         allTrueFunc,
		"ceil":            stdlib.CeilFunc,
		"chomp":           stdlib.ChompFunc,
		"chunklist":       stdlib.ChunklistFunc,
		"coalesce":        stdlib.CoalesceFunc,
		"coalescelist":    stdlib.CoalesceListFunc,
		"compact":         stdlib.CompactFunc,
		"concat":          stdlib.ConcatFunc,
		"contains":        stdlib.ContainsFunc,
		"csvdecode":       stdlib.CSVDecodeFunc,
		"distinct":        stdlib.DistinctFunc,
		"element":         stdlib.ElementFunc,
		"flatten":         stdlib.FlattenFunc,
		"floor":           stdlib.FloorFunc,
		"format":          stdlib.FormatFunc,
		"formatdate":      stdlib.FormatDateFunc,
		"formatlist":      stdlib.FormatListFunc,
		"indent":          stdlib.IndentFunc,
		"index":           stdlib.IndexFunc,
		"join":            stdlib.JoinFunc,
		"jsondecode":      stdlib.JSONDecodeFunc,
		"jsonencode":      stdlib.JSONEncodeFunc,
		"keys":            stdlib.KeysFunc,
		"length":          stdlib.LengthFunc,
		"log":             stdlib.LogFunc,
		"lookup":          stdlib.LookupFunc,
		"lower":           stdlib.LowerFunc,
		"max":             stdlib.MaxFunc,
		"merge":           stdlib.MergeFunc,
		"min":             stdlib.MinFunc,
		"parseint":        stdlib.ParseIntFunc,
		"pow":             stdlib.PowFunc,
		"range":           stdlib.RangeFunc,
		"regex":           stdlib.RegexFunc,
		"regexall":        stdlib.RegexAllFunc,
		"replace":         stdlib.ReplaceFunc,
		"reverse":         stdlib.ReverseListFunc,
		"setintersection": stdlib.SetIntersectionFunc,
		"setproduct":      stdlib.SetProductFunc,
		"setsubtract":     stdlib.SetSubtractFunc,
		"setunion":        stdlib.SetUnionFunc,
		"signum":          stdlib.SignumFunc,
		"slice":           stdlib.SliceFunc,
		"sort":            stdlib.SortFunc,
		"split":           stdlib.SplitFunc,
		"strlen":          stdlib.StrlenFunc,
		"substr":          stdlib.SubstrFunc,
		"title":           stdlib.TitleFunc,
		"tonumber":        makeToFunc(cty.Number),
		"tostring":        makeToFunc(cty.String),
		"tobool":          makeToFunc(cty.Bool),
		"toset":           makeToCollFunc(cty.Set),
		"tolist":          makeToCollFunc(cty.List),
		"tomap":           makeToCollFunc(cty.Map),
		"trim":            stdlib.TrimFunc,
		"trimprefix":      stdlib.TrimPrefixFunc,
		"trimspace":       stdlib.TrimSpaceFunc,
		"trimsuffix":      stdlib.TrimSuffixFunc,
		"upper":           stdlib.UpperFunc,
		"values":          stdlib.ValuesFunc,
		"zipmap":          stdlib.ZipmapFunc,
	}
	fns["file"] = fileFunc(baseDir)
	fns["fileexists"] = fileExistsFunc(baseDir)
	fns["templatefile"] = templateFileFunc(baseDir, fns)
	return fns
}

// Resolve returns p resolved against baseDir when it is relative.
func Resolve(baseDir, p string) string {
	if filepath.IsAbs(p) || baseDir == "" {
		return p
	}
	return filepath.Join(baseDir, p)
}

func fileFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			b, err := os.ReadFile(Resolve(baseDir, args[0].AsString()))
			if err != nil {
				return cty.NilVal, fmt.Errorf("read file: %w", err)
			}
			return cty.StringVal(string(b)), nil
		},
	})
}

func fileExistsFunc(baseDir string) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "path", Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			_, err := os.Stat(Resolve(baseDir, args[0].AsString()))
			return cty.BoolVal(err == nil), nil
		},
	})
}

func templateFileFunc(baseDir string, fns map[string]function.Function) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{
			{Name: "path", Type: cty.String},
			{Name: "vars", Type: cty.DynamicPseudoType},
		},
		Type: function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			path := Resolve(baseDir, args[0].AsString())
			src, err := os.ReadFile(path)
			if err != nil {
				return cty.NilVal, fmt.Errorf("read template: %w", err)
			}
			vars := map[string]cty.Value{}
			if v := args[1]; !v.IsNull() {
				if !v.Type().IsObjectType() && !v.Type().IsMapType() {
					return cty.NilVal, fmt.Errorf("templatefile: vars must be an object or a map")
				}
				for k, ev := range v.AsValueMap() {
					vars[k] = ev
				}
			}
			out, diags := Render(path, src, vars, fns)
			if diags.HasErrors() {
				return cty.NilVal, diags
			}
			return cty.StringVal(out), nil
		},
	})
}

// Render renders an HCL template (the text in src, named filename in diagnostics) with vars as its
// variables and fns as its functions. A reference to an unknown variable is an error that names the
// template's line.
func Render(filename string, src []byte, vars map[string]cty.Value, fns map[string]function.Function) (string, hcl.Diagnostics) {
	expr, diags := hclsyntax.ParseTemplate(src, filename, hcl.Pos{Line: 1, Column: 1})
	if diags.HasErrors() {
		return "", diags
	}
	for _, tr := range expr.Variables() {
		name := tr.RootName()
		if _, ok := vars[name]; !ok {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unknown template variable",
				Detail:   fmt.Sprintf("The template refers to %q, which is not among the variables passed to it. Pass it in the template's vars, or fix the name.", name),
				Subject:  tr.SourceRange().Ptr(),
			})
		}
	}
	if diags.HasErrors() {
		return "", diags
	}
	val, vdiags := expr.Value(&hcl.EvalContext{Variables: vars, Functions: fns})
	diags = append(diags, vdiags...)
	if diags.HasErrors() {
		return "", diags
	}
	if !val.IsKnown() || val.IsNull() {
		return "", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Template result is not known", Detail: "The template's result depends on a value that is not known yet."}}
	}
	s, err := toString(val)
	if err != nil {
		return "", hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid template result", Detail: err.Error()}}
	}
	return s, diags
}

var allTrueFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for it := args[0].ElementIterator(); it.Next(); {
			_, v := it.Element()
			if v.IsNull() || v.False() {
				return cty.False, nil
			}
		}
		return cty.True, nil
	},
})
