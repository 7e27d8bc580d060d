package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/runbook/runbook/playbooks/reliability"
)

func TestReadRows(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int
		wantErr string
	}{
		{name: "two rows and a blank line", in: `{"scenario":"a","passed":true}` + "\n\n" + `{"scenario":"b"}` + "\n", want: 2},
		{name: "not JSON", in: `{"scenario":"a"}` + "\nnope\n", wantErr: "line 2:"},
		{name: "unknown field", in: `{"scenario":"a","keyz":1}`, wantErr: `unknown field "keyz"`},
		{name: "no scenario", in: `{"passed":true}`, wantErr: "line 1: no scenario"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := ReadRows(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != tc.want {
				t.Errorf("got %d rows, want %d", len(rows), tc.want)
			}
		})
	}
}

func TestRender(t *testing.T) {
	rows := []reliability.Row{
		{Scenario: "kill during upload", Fault: "node2 killed", Recovery: "node2 revived, disk kept",
			FaultRun: "apply exited 1 | node2 failed\nsecond line", Reapply: "converged in 9.0 s (12 changed)",
			Keys: 10000, ClientOps: 500, ClientErrors: 3, FirstError: "ConnectionError: `refused`", ConvergeSec: 31.25, Passed: true},
		{Scenario: "kill during create", Fault: "node3 killed", FaultRun: "apply exited 1", NoData: true, Passed: false},
		{Scenario: "stuck", Fault: "node2 killed", FaultRun: "apply exited 1", Reapply: "did not converge", Passed: false},
	}
	var b bytes.Buffer
	Render(&b, rows, 200*time.Second+300*time.Millisecond)
	page := b.String()
	for _, want := range []string{
		"1 of 3 scenarios passed; the test run took 3m20s.",
		"| kill during upload | node2 killed | node2 revived, disk kept | apply exited 1 \\| node2 failed second line | converged in 9.0 s (12 changed) | 0 of 10000 | 3 of 500 | 31.2 s | pass |",
		"| kill during create | node3 killed | - | apply exited 1 | not reached | n/a (no data before the fault) | n/a | - | **FAIL** |",
		"| stuck | node2 killed | - | apply exited 1 | did not converge | not checked | not measured | - | **FAIL** |",
		"- kill during upload: first client error: `ConnectionError: 'refused'`",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "rows.jsonl")
	out := filepath.Join(dir, "reliability.md")
	if err := os.WriteFile(in, []byte(`{"scenario":"sigint","keys":10000,"keys_lost":0,"passed":true}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"-o", out, in}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "| sigint |") || !strings.HasPrefix(string(b), "# Reliability under faults\n") {
		t.Errorf("page:\n%s", b)
	}
	empty := filepath.Join(dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{empty}, nil); err == nil || !strings.Contains(err.Error(), "no rows") {
		t.Errorf("empty input: err = %v, want no rows", err)
	}
}
