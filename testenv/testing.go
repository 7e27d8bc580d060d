package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds bringing a lab up for a test (package installation included).
const startTimeout = 10 * time.Minute

// Start brings up a lab for one test and downs it when the test ends. It skips the test where
// the lab cannot run (not Linux, not root, no ip or namespaces). The lab lives in a temporary
// directory unless opts.Dir says otherwise; a lab left by a test binary that died is removed by
// the next Start on the machine.
func Start(tb testing.TB, opts Options) *Lab {
	tb.Helper()
	if reason := Unsupported(); reason != "" {
		tb.Skip("testenv: " + reason)
	}
	if opts.Dir == "" {
		opts.Dir = tb.TempDir()
	}
	opts.owner = os.Getpid()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	lab, err := Up(ctx, opts)
	if lab != nil {
		tb.Cleanup(func() {
			if err := lab.Down(context.Background()); err != nil {
				tb.Errorf("testenv down: %v", err)
			}
		})
	}
	if err != nil {
		tb.Fatalf("testenv up: %v", err)
	}
	return lab
}

// Down removes the lab (see the function Down) and waits for the processes it booted.
func (l *Lab) Down(ctx context.Context) error {
	err := Down(ctx, l.dir)
	l.boots.Wait()
	return err
}

// Shared is one lab for a whole test package, brought up by the first test that asks for it
// and downed when the package's tests end:
//
//	var lab = testenv.NewShared(testenv.Options{Nodes: 3})
//
//	func TestMain(m *testing.M) { os.Exit(lab.Run(m)) }
//
//	func TestSomething(t *testing.T) { l := lab.Lab(t); ... }
//
// Tests that kill, partition or wipe a host put it back (Revive, Heal) before they end.
type Shared struct {
	opts Options

	once sync.Once
	lab  *Lab
	dir  string
	err  error
	skip string
}

// NewShared returns a Shared lab with opts; nothing starts until Lab is called.
func NewShared(opts Options) *Shared { return &Shared{opts: opts} }

// Run runs the package's tests, then downs the lab if a test brought it up; it returns m.Run's
// exit code (or 1 when the lab could not be removed).
func (s *Shared) Run(m *testing.M) int {
	code := m.Run()
	if s.lab != nil {
		if err := s.lab.Down(context.Background()); err != nil {
			fmt.Fprintf(os.Stderr, "testenv down: %v\n", err)
			code = 1
		}
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
	return code
}

// Lab returns the shared lab, bringing it up on first use; it skips tb where the lab cannot run
// and fails tb when it could not be brought up.
func (s *Shared) Lab(tb testing.TB) *Lab {
	tb.Helper()
	s.once.Do(func() {
		if s.skip = Unsupported(); s.skip != "" {
			return
		}
		opts := s.opts
		if opts.Dir == "" {
			if s.dir, s.err = os.MkdirTemp("", "testenv-"); s.err != nil {
				return
			}
			opts.Dir = s.dir
		}
		opts.owner = os.Getpid()
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		s.lab, s.err = Up(ctx, opts)
	})
	if s.skip != "" {
		tb.Skip("testenv: " + s.skip)
	}
	if s.err != nil {
		tb.Fatalf("testenv up: %v", s.err)
	}
	return s.lab
}
