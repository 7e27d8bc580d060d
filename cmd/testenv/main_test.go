package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/runbook/runbook/testenv"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"testenv": main,
	})
}

// TestScripts runs testdata/*.txtar: the CLI contract, driven as users and other tests drive it.
func TestScripts(t *testing.T) {
	unsupported := testenv.Unsupported()
	testscript.Run(t, testscript.Params{
		Dir: "testdata",
		Condition: func(cond string) (bool, error) {
			if cond == "lab" {
				return unsupported == "", nil
			}
			return false, nil
		},
		Setup: func(env *testscript.Env) error {
			// Whatever a failing script leaves is removed.
			lab := filepath.Join(env.WorkDir, "lab")
			env.Defer(func() { _ = testenv.Down(context.Background(), lab) })
			env.Setenv("LAB", lab)
			return nil
		},
	})
}
