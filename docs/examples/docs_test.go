// Package examples_test checks that every example of the documentation is a valid playbook: the
// playbooks in this directory, and every ```hcl block of the hand-written pages in docs/.
package examples_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/modules/all"
)

// inventory is the example inventory the playbooks are checked with.
const inventory = "inventory.hcl"

// pages are the hand-written documentation pages whose hcl blocks are checked.
var pages = []string{"language.md", "cli.md", "ssh.md", "node-replacement.md", "gluu.md", "troubleshooting.md", "lab.md"}

// load loads a playbook the way `runbook validate` does and returns its diagnostics.
func load(t *testing.T, playbook string, inventories []string, varFiles []string) hcl.Diagnostics {
	t.Helper()
	_, diags := config.Load(config.Options{
		Playbook:    playbook,
		Inventories: inventories,
		VarFiles:    varFiles,
		Registry:    all.Registry(),
	})
	return diags
}

// declaresHosts reports whether HCL source declares hosts of its own (it is then checked alone).
var declaresHosts = regexp.MustCompile(`(?m)^\s*host\s+"`)

// isInventory reports whether a file of this directory is an inventory or a var-file, not a playbook.
func isInventory(name string) bool {
	return strings.HasPrefix(name, "inventory") || strings.HasSuffix(name, ".vars.hcl")
}

func TestExamplePlaybooks(t *testing.T) {
	files, err := filepath.Glob("*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, f := range files {
		if isInventory(f) {
			continue
		}
		checked++
		t.Run(f, func(t *testing.T) {
			var invs []string
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if !declaresHosts.Match(src) {
				invs = []string{inventory}
			}
			var varFiles []string
			if vf := strings.TrimSuffix(f, ".hcl") + ".vars.hcl"; fileExists(vf) {
				varFiles = []string{vf}
			}
			if diags := load(t, f, invs, varFiles); len(diags) > 0 {
				t.Errorf("%s is not a clean playbook:\n%s", f, diags.Error())
			}
		})
	}
	if checked < 3 {
		t.Fatalf("found %d example playbooks, want at least 3 (run the test in docs/examples)", checked)
	}
}

func TestExampleInventories(t *testing.T) {
	files, err := filepath.Glob("inventory*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example inventory")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			// An inventory alone is a valid playbook without tasks.
			if diags := load(t, f, nil, nil); diags.HasErrors() {
				t.Errorf("%s:\n%s", f, diags.Error())
			}
		})
	}
}

// fence matches a fenced block of HCL: ```hcl ... ```.
var fence = regexp.MustCompile("(?ms)^```hcl\n(.*?)^```")

func TestPageExamples(t *testing.T) {
	total := 0
	for _, page := range pages {
		src, err := os.ReadFile(filepath.Join("..", page))
		if err != nil {
			t.Errorf("read page: %v", err)
			continue
		}
		blocks := fence.FindAllSubmatchIndex(src, -1)
		for _, m := range blocks {
			total++
			body := src[m[2]:m[3]]
			line := 1 + strings.Count(string(src[:m[2]]), "\n")
			name := page + ":" + strconv.Itoa(line)
			t.Run(name, func(t *testing.T) {
				// Written here, relative paths in the block resolve as in the example playbooks.
				f, err := os.CreateTemp(".", ".page-*.hcl")
				if err != nil {
					t.Fatal(err)
				}
				defer os.Remove(f.Name())
				if _, err := f.Write(body); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				var invs []string
				if !declaresHosts.Match(body) {
					invs = []string{inventory}
				}
				if diags := load(t, f.Name(), invs, nil); len(diags) > 0 {
					t.Errorf("the hcl block at %s is not a clean playbook:\n%s\n%s", name, diags.Error(), body)
				}
			})
		}
	}
	if total < 10 {
		t.Fatalf("found %d hcl blocks in the pages, want at least 10", total)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
