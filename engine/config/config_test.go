package config

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/runbook/runbook/engine"
)

// echoModule is a test module with a required and an optional argument and a nested block.
type echoModule struct {
	Msg   string    `hcl:"msg,attr"`
	Count int       `hcl:"count,optional"`
	Vars  cty.Value `hcl:"vars,optional"`
}

func (e *echoModule) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	return engine.Outcome{Summary: e.Msg}, nil
}

func (e *echoModule) Validate() error {
	if e.Count < 0 {
		return errors.New("count must not be negative")
	}
	return nil
}

func testRegistry() *engine.Registry {
	return engine.NewRegistry(engine.ModuleInfo{Name: "echo", New: func() engine.Module { return &echoModule{} }})
}

var errorMarker = regexp.MustCompile(`#\s*ERROR:\s*(.+)$`)

// TestErrors loads each testdata/errors/*.hcl and compares the error diagnostics (line → summary)
// with the `# ERROR: summary` markers on the lines they must point at.
func TestErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, ".inv.hcl") || strings.HasSuffix(f, ".vars.hcl") {
			continue
		}
		t.Run(filepath.Base(f), func(t *testing.T) {
			opts := Options{Playbook: f, Registry: testRegistry()}
			inv := strings.TrimSuffix(f, ".hcl") + ".inv.hcl"
			if _, err := os.Stat(inv); err == nil {
				opts.Inventories = []string{inv}
			}
			vf := strings.TrimSuffix(f, ".hcl") + ".vars.hcl"
			if _, err := os.Stat(vf); err == nil {
				opts.VarFiles = []string{vf}
			}
			_, diags := Load(opts)
			want := markers(t, append([]string{f}, append(opts.Inventories, opts.VarFiles...)...))
			got := map[string]string{}
			for _, d := range diags {
				if d.Severity != hcl.DiagError {
					continue
				}
				key := "(no location)"
				if d.Subject != nil {
					key = filepath.Base(d.Subject.Filename) + ":" + itoa(d.Subject.Start.Line)
				}
				if prev, ok := got[key]; ok {
					got[key] = prev + " | " + d.Summary
				} else {
					got[key] = d.Summary
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s\nall: %s", diff, diags.Error())
			}
		})
	}
}

func markers(t *testing.T, paths []string) map[string]string {
	want := map[string]string{}
	for _, p := range paths {
		fh, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		line := 0
		for sc.Scan() {
			line++
			if m := errorMarker.FindStringSubmatch(sc.Text()); m != nil {
				want[filepath.Base(p)+":"+itoa(line)] = strings.TrimSpace(m[1])
			}
		}
		fh.Close()
	}
	return want
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestLoadValid(t *testing.T) {
	p, diags := Load(Options{
		Playbook:    "testdata/ok/site.hcl",
		Inventories: []string{"testdata/ok/inventory.hcl"},
		Vars:        []string{"ports={a=1,b=2}"},
		Environ:     []string{"RUNBOOK_VAR_greeting=hi", "RUNBOOK_VAR_password=s3cret-pw"},
		Registry:    testRegistry(),
	})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if got := p.Values["greeting"].AsString(); got != "hi" {
		t.Errorf("greeting = %q, want hi (from the environment)", got)
	}
	if got := p.Secrets.Redact("pw is s3cret-pw"); got != "pw is (sensitive)" {
		t.Errorf("redact = %q", got)
	}
	n1, n2 := p.hostIndex["node1"], p.hostIndex["node2"]
	if n1.PrivateKey != "/keys/id" || n1.Port != 22 || n1.User != "root" {
		t.Errorf("node1 connection = %q %d %q, want the defaults", n1.PrivateKey, n1.Port, n1.User)
	}
	if want, _ := filepath.Abs("testdata/ok/keys/node2"); n2.PrivateKey != want || n2.Port != 2222 {
		t.Errorf("node2 key = %q port %d, want %q (relative to the inventory) and 2222", n2.PrivateKey, n2.Port, want)
	}
	hosts, d := p.TaskHosts(p.taskIndex["configure"])
	if d.HasErrors() {
		t.Fatal(d.Error())
	}
	if diff := cmp.Diff([]string{"node1", "node2"}, hosts); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	insts, err, d := p.Expand(p.taskIndex["configure"], "node2", cty.NilVal)
	if err != nil || d.HasErrors() {
		t.Fatal(err, d)
	}
	var names []string
	for _, in := range insts {
		m, err, d := p.Decode(in, cty.NilVal)
		if err != nil || d.HasErrors() {
			t.Fatal(err, d)
		}
		names = append(names, in.Name()+"="+m.(*echoModule).Msg)
	}
	sort.Strings(names)
	want := []string{"configure[a]=node2:1 zone-b", "configure[b]=node2:2 zone-b"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("instances (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"configure"}, p.Graph.DependenciesOf("report")); diff != "" {
		t.Errorf("implicit dependency (-want +got):\n%s", diff)
	}
	// the output reference is unknown at plan time
	_, err, _ = p.Decode(Instance{Task: p.taskIndex["report"], Host: "node1"}, p.unknownTaskOutputs())
	if !errors.Is(err, ErrUnknown) {
		t.Errorf("decode with unknown outputs: err = %v, want ErrUnknown", err)
	}
}
