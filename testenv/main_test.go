package testenv_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/runbook/runbook/testenv"
)

// shared is the one lab TestSharedLab* use; TestMain downs it when the package's tests end.
var shared = testenv.NewShared(testenv.Options{Nodes: 1})

func TestMain(m *testing.M) {
	code := shared.Run(m)
	// Run must have downed the shared lab.
	if sharedID != "" {
		out, _ := exec.Command("ip", "netns", "list").Output()
		if strings.Contains(string(out), "rbl"+sharedID) {
			fmt.Fprintf(os.Stderr, "shared lab %s left namespaces:\n%s", sharedID, out)
			code = 1
		}
	}
	os.Exit(code)
}

// sharedID is set by the tests that use the shared lab.
var sharedID string

func TestSharedLabIsOneLab(t *testing.T) {
	a := shared.Lab(t)
	b := shared.Lab(t)
	if a != b {
		t.Fatal("Shared.Lab returned two labs")
	}
	sharedID = a.ID()
	h := a.Hosts()[0]
	if out, err := sshRun(a, h.Address, "hostname"); err != nil || out != "node1\n" {
		t.Errorf("ssh: %q, %v", out, err)
	}
}
