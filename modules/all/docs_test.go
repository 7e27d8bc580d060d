package all

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/runbook/runbook/engine/docgen"
)

var update = flag.Bool("update", false, "rewrite docs/modules/*.md from the modules' source")

const docsDir = "../../docs/modules"

// TestDocs fails when docs/modules is stale: every module in Infos has its generated NAME.md and
// the index lists them all. `go test ./modules/all -update` rewrites the files.
func TestDocs(t *testing.T) {
	want := map[string][]byte{"README.md": docgen.Index(Infos())}
	for _, info := range Infos() {
		md, err := docgen.Markdown(info)
		if err != nil {
			t.Fatal(err)
		}
		want[info.Name+".md"] = md
	}
	if *update {
		if err := os.MkdirAll(docsDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range want {
		path := filepath.Join(docsDir, name)
		if *update {
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (run go test ./modules/all -update)", path, err)
			continue
		}
		if !bytes.Equal(got, content) {
			t.Errorf("%s is stale: run go test ./modules/all -update", path)
		}
	}
	// A generated file whose module is gone is stale too.
	entries, err := os.ReadDir(docsDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; ok || !strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		path := filepath.Join(docsDir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, []byte(docgen.Header)) {
			continue // written by hand
		}
		if *update {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s documents a module that is not in modules/all: run go test ./modules/all -update", path)
	}
}

func TestHelp(t *testing.T) {
	for _, info := range Infos() {
		text, err := docgen.Help(info)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(text, info.Name+" - "+info.Summary+"\n") {
			t.Errorf("help for %s starts %q", info.Name, strings.SplitN(text, "\n", 2)[0])
		}
	}
}

func TestRegistry(t *testing.T) {
	r := Registry()
	for _, name := range []string{"template", "file", "directory", "command", "package", "service", "wait_for"} {
		info, ok := r.Lookup(name)
		if !ok {
			t.Errorf("module %s not registered", name)
			continue
		}
		if info.Summary == "" || info.Doc == "" || info.Example == "" {
			t.Errorf("module %s lacks a summary, doc or example", name)
		}
	}
}

// TestExamples checks that every module's example is valid HCL whose module block uses only the
// module's arguments.
func TestExamples(t *testing.T) {
	for _, info := range Infos() {
		f, diags := hclsyntax.ParseConfig([]byte(info.Example), info.Name+" example", hcl.InitialPos)
		if diags.HasErrors() {
			t.Errorf("%s: %s", info.Name, diags)
			continue
		}
		blocks := 0
		for _, top := range f.Body.(*hclsyntax.Body).Blocks {
			for _, b := range top.Body.Blocks {
				if b.Type != info.Name {
					continue
				}
				blocks++
				schema, _ := gohcl.ImpliedBodySchema(info.New())
				if _, diags := b.Body.Content(schema); diags.HasErrors() {
					t.Errorf("%s: %s", info.Name, diags)
				}
			}
		}
		if blocks == 0 {
			t.Errorf("%s: the example has no %s block inside a task", info.Name, info.Name)
		}
	}
}
