// Package docgen generates a module's user documentation from its ModuleInfo and the `hcl` and
// `doc` tags of its configuration struct: the Markdown of docs/modules/NAME.md and the text of
// `runbook help MODULE`.
package docgen

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

// Arg describes one argument of a module: an attribute or a nested block.
type Arg struct {
	// Name is the attribute or block type name in HCL.
	Name string
	// Block is true for a nested block, false for an attribute.
	Block bool
	// Type is the HCL type of an attribute, e.g. "string", "list(string)", "any".
	Type string
	// Required reports whether the attribute or block must be present.
	Required bool
	// Repeated is true for a block that may appear several times.
	Repeated bool
	// Labels are the names of a block's labels.
	Labels []string
	// Default is the value used when the attribute is absent, in HCL syntax ("" when none).
	Default string
	// Doc is the field's `doc` tag.
	Doc string
	// Args are a block's own arguments.
	Args []Arg
}

var (
	ctyValueType = reflect.TypeOf(cty.Value{})
	exprType     = reflect.TypeOf((*hcl.Expression)(nil)).Elem()
)

// Args returns the arguments of the module described by info, in the order of its struct's fields.
// Every field with an hcl tag must have a doc tag.
func Args(info engine.ModuleInfo) ([]Arg, error) {
	if info.New == nil {
		return nil, fmt.Errorf("module %s: no constructor", info.Name)
	}
	v := reflect.ValueOf(info.New())
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("module %s: configuration is a %s, not a struct", info.Name, v.Kind())
	}
	args, err := structArgs(v)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", info.Name, err)
	}
	return args, nil
}

func structArgs(v reflect.Value) ([]Arg, error) {
	t := v.Type()
	var args []Arg
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, ok := f.Tag.Lookup("hcl")
		if !ok {
			continue
		}
		name, kind, _ := strings.Cut(tag, ",")
		if kind == "" {
			kind = "attr"
		}
		if kind == "label" || kind == "remain" || kind == "body" {
			continue
		}
		doc := strings.TrimSpace(f.Tag.Get("doc"))
		if doc == "" {
			return nil, fmt.Errorf("field %s (%s) has no doc tag", f.Name, name)
		}
		a := Arg{Name: name, Doc: doc}
		switch kind {
		case "attr", "optional":
			a.Type = typeName(f.Type)
			a.Required = kind == "attr" && f.Type.Kind() != reflect.Pointer && !f.Type.AssignableTo(exprType)
			a.Default = defaultValue(v.Field(i))
		case "block":
			a.Block = true
			bt := f.Type
			switch bt.Kind() {
			case reflect.Slice:
				a.Repeated = true
				bt = bt.Elem()
			case reflect.Pointer:
			default:
				a.Required = true
			}
			if bt.Kind() == reflect.Pointer {
				bt = bt.Elem()
			}
			if bt.Kind() != reflect.Struct {
				return nil, fmt.Errorf("block %s is a %s, not a struct", name, bt.Kind())
			}
			for j := 0; j < bt.NumField(); j++ {
				if l, ok := bt.Field(j).Tag.Lookup("hcl"); ok && strings.HasSuffix(l, ",label") {
					a.Labels = append(a.Labels, strings.TrimSuffix(l, ",label"))
				}
			}
			nested, err := structArgs(reflect.New(bt).Elem())
			if err != nil {
				return nil, fmt.Errorf("block %s: %w", name, err)
			}
			a.Args = nested
		default:
			return nil, fmt.Errorf("field %s: unknown hcl tag kind %q", f.Name, kind)
		}
		args = append(args, a)
	}
	return args, nil
}

// typeName returns the HCL type of a Go field type.
func typeName(t reflect.Type) string {
	if t == ctyValueType || t.AssignableTo(exprType) {
		return "any"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "list(" + typeName(t.Elem()) + ")"
	case reflect.Map:
		return "map(" + typeName(t.Elem()) + ")"
	case reflect.Struct:
		return "object"
	}
	return t.String()
}

// defaultValue renders a non-zero value of the constructor's struct in HCL syntax.
func defaultValue(v reflect.Value) string {
	if v.IsZero() {
		return ""
	}
	if v.Type() == ctyValueType {
		return ""
	}
	switch v.Kind() {
	case reflect.Pointer:
		return defaultValue(v.Elem())
	case reflect.String:
		return fmt.Sprintf("%q", v.String())
	case reflect.Slice, reflect.Array:
		items := make([]string, v.Len())
		for i := range items {
			items[i] = fmt.Sprint(v.Index(i).Interface())
			if v.Index(i).Kind() == reflect.String {
				items[i] = fmt.Sprintf("%q", v.Index(i).String())
			}
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}

// Header is the first line of every generated Markdown file.
const Header = "<!-- Generated from the module's source by `go test ./modules/all -update`. Do not edit. -->"

// Markdown returns the content of docs/modules/NAME.md for the module.
func Markdown(info engine.ModuleInfo) ([]byte, error) {
	args, err := Args(info)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n\n# `%s`\n\n%s\n", Header, info.Name, info.Summary)
	if info.RunOnce {
		b.WriteString("\nThis module acts on a whole group at once: a task using it runs a single time, on the first host of its `on` list.\n")
	}
	if d := strings.TrimSpace(info.Doc); d != "" {
		fmt.Fprintf(&b, "\n%s\n", d)
	}
	if ex := strings.TrimSpace(info.Example); ex != "" {
		fmt.Fprintf(&b, "\n## Example\n\n```hcl\n%s\n```\n", ex)
	}
	fmt.Fprintf(&b, "\n## Arguments\n")
	writeTable(&b, args)
	writeBlocks(&b, args, "###", "")
	return b.Bytes(), nil
}

func writeTable(b *bytes.Buffer, args []Arg) {
	if len(args) == 0 {
		b.WriteString("\nNone.\n")
		return
	}
	b.WriteString("\n| Name | Type | Required | Default | Description |\n|---|---|---|---|---|\n")
	for _, a := range args {
		typ, req := a.Type, "no"
		if a.Block {
			typ = "block"
			if a.Repeated {
				typ = "blocks"
			}
		}
		if a.Required {
			req = "yes"
		}
		def := ""
		if a.Default != "" {
			def = "`" + a.Default + "`"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", a.Name, typ, req, cell(def), cell(a.Doc))
	}
}

func writeBlocks(b *bytes.Buffer, args []Arg, level, parent string) {
	for _, a := range args {
		if !a.Block {
			continue
		}
		path := parent + a.Name
		head := path
		for _, l := range a.Labels {
			head += " \"" + l + "\""
		}
		fmt.Fprintf(b, "\n%s Block `%s`\n\n%s\n", level, head, a.Doc)
		writeTable(b, a.Args)
		writeBlocks(b, a.Args, level+"#", path+".")
	}
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

// Help returns the text of `runbook help MODULE`: summary, description, arguments and example,
// wrapped for a terminal.
func Help(info engine.ModuleInfo) (string, error) {
	args, err := Args(info)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s - %s\n", info.Name, info.Summary)
	if d := strings.TrimSpace(info.Doc); d != "" {
		fmt.Fprintf(&b, "\n%s\n", plain(d))
	}
	b.WriteString("\nArguments:\n")
	writeHelpArgs(&b, args, "  ")
	if ex := strings.TrimSpace(info.Example); ex != "" {
		b.WriteString("\nExample:\n")
		for _, line := range strings.Split(ex, "\n") {
			fmt.Fprintf(&b, "  %s\n", line)
		}
	}
	return b.String(), nil
}

func writeHelpArgs(b *strings.Builder, args []Arg, indent string) {
	if len(args) == 0 {
		fmt.Fprintf(b, "%s(none)\n", indent)
	}
	for _, a := range args {
		var props []string
		if a.Block {
			props = append(props, "block")
			if a.Repeated {
				props = append(props, "repeatable")
			}
		} else {
			props = append(props, a.Type)
		}
		if a.Required {
			props = append(props, "required")
		} else {
			props = append(props, "optional")
		}
		if a.Default != "" {
			props = append(props, "default "+a.Default)
		}
		fmt.Fprintf(b, "%s%s (%s)\n", indent, a.Name, strings.Join(props, ", "))
		for _, line := range wrap(plain(a.Doc), 80-len(indent)-4) {
			fmt.Fprintf(b, "%s    %s\n", indent, line)
		}
		if a.Block {
			writeHelpArgs(b, a.Args, indent+"    ")
		}
	}
}

// plain drops the Markdown code and emphasis markers that read badly in a terminal.
func plain(s string) string {
	return strings.NewReplacer("`", "", "**", "").Replace(s)
}

// wrap splits text into lines of at most width columns (longer words stay whole).
func wrap(text string, width int) []string {
	var lines []string
	var line string
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) > width:
			lines = append(lines, line)
			line = w
		default:
			line += " " + w
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// Index returns the content of docs/modules/README.md: one line per module with its summary.
func Index(infos []engine.ModuleInfo) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\n\n# Modules\n\nA task uses one module, written as a block named after it. Run `runbook help MODULE` for the same\ndocumentation in a terminal.\n\n| Module | Summary |\n|---|---|\n", Header)
	for _, m := range infos {
		fmt.Fprintf(&b, "| [`%s`](%s.md) | %s |\n", m.Name, m.Name, cell(m.Summary))
	}
	return b.Bytes()
}
