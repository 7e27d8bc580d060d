package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// loadDeadline bounds one Load of fuzzed text: a playbook of a few kilobytes loads in
// milliseconds, so a Load that takes this long is a hang.
const loadDeadline = 10 * time.Second

// FuzzLoad feeds arbitrary playbook and inventory text to Load, which must never panic or hang;
// the hosts of every task of a playbook it accepts must be computable too.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.hcl")
	seeds = append(seeds, "../../playbooks/site.hcl")
	inventory, err := os.ReadFile("testdata/ok/inventory.hcl")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), string(inventory))
	}
	f.Add(`task "x" { echo { msg = "${" } }`, "")
	f.Add(`locals { a = local.a }`, "")
	f.Add(`task "a" { for_each = toset(["x"]) echo { msg = each.key } }`, `host "h" {}`)
	f.Fuzz(func(t *testing.T, playbook, inv string) {
		dir := t.TempDir()
		pbPath := filepath.Join(dir, "play.hcl")
		invPath := filepath.Join(dir, "inventory.hcl")
		if err := os.WriteFile(pbPath, []byte(playbook), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(invPath, []byte(inv), 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var pb *Playbook
		go func() {
			defer close(done)
			p, d := Load(Options{Playbook: pbPath, Inventories: []string{invPath}, Registry: testRegistry()})
			if d.HasErrors() {
				return
			}
			pb = p
			// what the runner asks of every loaded playbook first
			for _, task := range append(append([]*Task(nil), p.Tasks...), p.Handlers...) {
				p.TaskHosts(task)
			}
		}()
		select {
		case <-done:
		case <-time.After(loadDeadline):
			t.Fatalf("Load did not return within %s on:\n%s\n---\n%s", loadDeadline, playbook, inv)
		}
		if pb != nil && pb.Graph == nil {
			t.Errorf("Load returned a playbook without a task graph and no error")
		}
	})
}
