package enginetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// ChainPlaybook writes into dir a playbook of n tasks on 3 hosts (group "all") for benchmarks:
// every task depends on the one before, every tenth has a for_each of three keys, and each task's
// single module block sets attr to a string interpolating a variable, the host's name and, with
// for_each, the element, as real playbooks do. It returns the file's path.
func ChainPlaybook(tb testing.TB, dir string, n int, module, attr string) string {
	tb.Helper()
	var b strings.Builder
	b.WriteString(`variable "prefix" {
  type    = string
  default = "/srv/bench"
}

host "node1" { address = "10.0.0.1" }
host "node2" { address = "10.0.0.2" }
host "node3" { address = "10.0.0.3" }

group "all" {
  hosts = [host.node1, host.node2, host.node3]
}
`)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "\ntask \"t%04d\" {\n  on = group.all\n", i)
		if i > 0 {
			fmt.Fprintf(&b, "  depends_on = [task.t%04d]\n", i-1)
		}
		value := fmt.Sprintf(`"${var.prefix}-%d-${self.name}"`, i)
		if i%10 == 0 {
			b.WriteString("  for_each = { a = 6379, b = 6380, c = 6381 }\n")
			value = fmt.Sprintf(`"${var.prefix}-%d-${self.name}-${each.key}:${each.value}"`, i)
		}
		fmt.Fprintf(&b, "  %s {\n    %s = %s\n  }\n}\n", module, attr, value)
	}
	path := filepath.Join(dir, "bench.hcl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}
