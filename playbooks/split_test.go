package playbooks_test

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// site.hcl configures and starts every host's first instance in tasks of their own
// (redis_config_first, redis_start_first) ahead of the others (redis_config, redis_start): the
// pairs must configure and start instances alike, so their module blocks must stay the same
// token for token (comments aside).
func TestSiteSplitTasksAlike(t *testing.T) {
	src, err := os.ReadFile("site.hcl")
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, "site.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	blocks := map[string]*hclsyntax.Block{}
	for _, b := range f.Body.(*hclsyntax.Body).Blocks {
		if b.Type == "task" && len(b.Labels) == 1 {
			blocks[b.Labels[0]] = b
		}
	}
	forEach := map[string]string{} // task -> for_each expression
	for _, b := range blocks {
		if a := b.Body.Attributes["for_each"]; a != nil {
			forEach[b.Labels[0]] = string(a.Expr.Range().SliceBytes(src))
		}
	}
	for _, tc := range []struct{ first, others, module string }{
		{"redis_config_first", "redis_config", "template"},
		{"redis_start_first", "redis_start", "service"},
	} {
		t.Run(tc.others, func(t *testing.T) {
			a := moduleTokens(t, src, blocks[tc.first], tc.module)
			b := moduleTokens(t, src, blocks[tc.others], tc.module)
			if a != b {
				t.Errorf("the %s blocks of tasks %s and %s differ:\n%s\n---\n%s", tc.module, tc.first, tc.others, a, b)
			}
			if got := forEach[tc.first]; got != "local.first" {
				t.Errorf("task %s: for_each = %q, want local.first", tc.first, got)
			}
			if got := forEach[tc.others]; got != "local.others" {
				t.Errorf("task %s: for_each = %q, want local.others", tc.others, got)
			}
		})
	}
}

// moduleTokens is the text of task's block of type module, without comments and layout.
func moduleTokens(t *testing.T, src []byte, task *hclsyntax.Block, module string) string {
	t.Helper()
	if task == nil {
		t.Fatalf("site.hcl has no such task")
	}
	for _, b := range task.Body.Blocks {
		if b.Type != module {
			continue
		}
		toks, diags := hclsyntax.LexConfig(b.Range().SliceBytes(src), "site.hcl", b.Range().Start)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		var out []string
		for _, tok := range toks {
			switch tok.Type {
			case hclsyntax.TokenComment, hclsyntax.TokenNewline, hclsyntax.TokenEOF:
				continue
			}
			out = append(out, string(tok.Bytes))
		}
		return strings.Join(out, " ")
	}
	t.Fatalf("task %s has no %s block", task.Labels[0], module)
	return ""
}
