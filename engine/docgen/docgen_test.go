package docgen

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

type listener struct {
	Name string `hcl:"name,label" doc:"unused for labels"`
	Port int    `hcl:"port,attr" doc:"TCP port."`
}

type tlsBlock struct {
	Cert string `hcl:"cert,attr" doc:"Certificate | PEM."`
}

type sample struct {
	Dest      string            `hcl:"dest,attr" doc:"Where it goes."`
	Mode      string            `hcl:"mode,optional" doc:"Octal mode."`
	Enabled   *bool             `hcl:"enabled" doc:"Pointer means optional."`
	Vars      cty.Value         `hcl:"vars,optional" doc:"Free-form."`
	Names     []string          `hcl:"names,optional" doc:"A list."`
	Codes     []int             `hcl:"codes,optional" doc:"Numbers."`
	Env       map[string]string `hcl:"env,optional" doc:"A map."`
	Listeners []listener        `hcl:"listen,block" doc:"One per port."`
	TLS       *tlsBlock         `hcl:"tls,block" doc:"Optional TLS."`
	internal  int
}

func (*sample) Run(context.Context, *engine.Target) (engine.Outcome, error) {
	return engine.Outcome{}, nil
}

func sampleInfo() engine.ModuleInfo {
	return engine.ModuleInfo{
		Name:    "sample",
		Summary: "A sample module.",
		Doc:     "Does `nothing`.",
		Example: "task \"x\" {\n  sample { dest = \"/x\" }\n}",
		New:     func() engine.Module { return &sample{Mode: "0644", Codes: []int{0, 2}, Names: []string{"a"}} },
	}
}

func TestArgs(t *testing.T) {
	got, err := Args(sampleInfo())
	if err != nil {
		t.Fatal(err)
	}
	want := []Arg{
		{Name: "dest", Type: "string", Required: true, Doc: "Where it goes."},
		{Name: "mode", Type: "string", Default: `"0644"`, Doc: "Octal mode."},
		{Name: "enabled", Type: "bool", Doc: "Pointer means optional."},
		{Name: "vars", Type: "any", Doc: "Free-form."},
		{Name: "names", Type: "list(string)", Default: `["a"]`, Doc: "A list."},
		{Name: "codes", Type: "list(number)", Default: "[0, 2]", Doc: "Numbers."},
		{Name: "env", Type: "map(string)", Doc: "A map."},
		{Name: "listen", Block: true, Repeated: true, Labels: []string{"name"}, Doc: "One per port.", Args: []Arg{
			{Name: "port", Type: "number", Required: true, Doc: "TCP port."},
		}},
		{Name: "tls", Block: true, Doc: "Optional TLS.", Args: []Arg{
			{Name: "cert", Type: "string", Required: true, Doc: "Certificate | PEM."},
		}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Args (-want +got):\n%s", d)
	}
}

func TestMarkdown(t *testing.T) {
	got, err := Markdown(sampleInfo())
	if err != nil {
		t.Fatal(err)
	}
	want := Header + "\n\n# `sample`\n\nA sample module.\n\nDoes `nothing`.\n\n## Example\n\n```hcl\ntask \"x\" {\n  sample { dest = \"/x\" }\n}\n```\n\n## Arguments\n\n" +
		"| Name | Type | Required | Default | Description |\n|---|---|---|---|---|\n" +
		"| `dest` | string | yes |  | Where it goes. |\n" +
		"| `mode` | string | no | `\"0644\"` | Octal mode. |\n" +
		"| `enabled` | bool | no |  | Pointer means optional. |\n" +
		"| `vars` | any | no |  | Free-form. |\n" +
		"| `names` | list(string) | no | `[\"a\"]` | A list. |\n" +
		"| `codes` | list(number) | no | `[0, 2]` | Numbers. |\n" +
		"| `env` | map(string) | no |  | A map. |\n" +
		"| `listen` | blocks | no |  | One per port. |\n" +
		"| `tls` | block | no |  | Optional TLS. |\n" +
		"\n### Block `listen \"name\"`\n\nOne per port.\n\n" +
		"| Name | Type | Required | Default | Description |\n|---|---|---|---|---|\n" +
		"| `port` | number | yes |  | TCP port. |\n" +
		"\n### Block `tls`\n\nOptional TLS.\n\n" +
		"| Name | Type | Required | Default | Description |\n|---|---|---|---|---|\n" +
		"| `cert` | string | yes |  | Certificate \\| PEM. |\n"
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("Markdown (-want +got):\n%s", d)
	}
}

func TestHelp(t *testing.T) {
	got, err := Help(sampleInfo())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"sample - A sample module.\n\nDoes nothing.\n",
		"  dest (string, required)\n      Where it goes.\n",
		"  codes (list(number), optional, default [0, 2])\n",
		"  listen (block, repeatable, optional)\n      One per port.\n      port (number, required)\n          TCP port.\n",
		"Example:\n  task \"x\" {\n    sample { dest = \"/x\" }\n  }\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("help lacks %q:\n%s", want, got)
		}
	}
}

type undocumented struct {
	Dest string `hcl:"dest,attr"`
}

func (*undocumented) Run(context.Context, *engine.Target) (engine.Outcome, error) {
	return engine.Outcome{}, nil
}

func TestMissingDoc(t *testing.T) {
	_, err := Args(engine.ModuleInfo{Name: "u", New: func() engine.Module { return &undocumented{} }})
	if err == nil || err.Error() != "module u: field Dest (dest) has no doc tag" {
		t.Errorf("err = %v, want the undocumented field named", err)
	}
}

func TestWrap(t *testing.T) {
	got := wrap("aa bb cc dddddddddd e", 5)
	want := []string{"aa bb", "cc", "dddddddddd", "e"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("wrap (-want +got):\n%s", d)
	}
}
