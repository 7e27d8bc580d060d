package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/runbook/runbook/engine/sshconn"
	"github.com/runbook/runbook/testenv"
)

var lab = testenv.NewShared(testenv.Options{Nodes: 3})

func TestMain(m *testing.M) {
	if sshconn.MuxRequested() {
		os.Exit(sshconn.ServeMux(os.Stdin, os.Stdout))
	}
	os.Exit(testscript.RunMain(sharedLabMain{m}, map[string]func() int{
		"runbook": func() int { return Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Environ()) },
	}))
}

// sharedLabMain downs the shared lab after the package's tests.
type sharedLabMain struct{ m *testing.M }

func (s sharedLabMain) Run() int { return lab.Run(s.m) }

// TestScripts runs the CLI scenarios that need no host: validation, diagnostics, fmt, graph, help.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{Dir: "testdata/script", RequireExplicitExec: true})
}

// TestLabScripts runs the CLI scenarios against the lab's real hosts (real sshd), side by side.
func TestLabScripts(t *testing.T) { runLabScripts(t, "testdata/lab") }

// TestLabSerialScripts runs, after the others, the scenarios that must have the lab to themselves
// (they hold the run lock of every host).
func TestLabSerialScripts(t *testing.T) { runLabScripts(t, "testdata/lab-serial") }

// runLabScripts runs the scripts of dir against the shared lab. The scripts of testdata/lab run in
// parallel on the same hosts, so each of their runbook commands passes --lock-timeout: without it
// a command that meets another script's run lock fails at once, and the script with it.
func runLabScripts(t *testing.T, dir string) {
	l := lab.Lab(t)
	testscript.Run(t, testscript.Params{
		Dir:                 dir,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("INVENTORY", l.InventoryPath())
			env.Setenv("KNOWN_HOSTS", l.KnownHostsPath())
			env.Setenv("SSH_KEY", l.KeyPath())
			for _, h := range l.Nodes() {
				env.Setenv("ADDR_"+h.Name, h.Address)
			}
			env.Setenv("TEMPLATES", filepath.Join(mustAbs(t, "../../templates")))
			return nil
		},
	})
}

func mustAbs(t *testing.T, p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}
