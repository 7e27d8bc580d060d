package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

func TestStartRemovesLabsOfDeadTestBinaries(t *testing.T) {
	if reason := Unsupported(); reason != "" {
		t.Skip(reason)
	}
	// A test binary that died before its cleanup: a lab whose owner process is gone.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dir := t.TempDir()
	stale, err := Up(ctx, Options{Dir: dir, Nodes: 1, owner: dead.Process.Pid})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Down(ctx, dir) })
	ns := stale.st.Hosts[0].Netns
	if !netnsExists(ns) {
		t.Fatalf("no namespace %s", ns)
	}
	Start(t, Options{Nodes: 1})
	if netnsExists(ns) {
		t.Errorf("the stale lab's namespace %s is still there", ns)
	}
	if _, err := os.Stat(statePath(dir)); !os.IsNotExist(err) {
		t.Errorf("the stale lab's state is still there: %v", err)
	}
}
