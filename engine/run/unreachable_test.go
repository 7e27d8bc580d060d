package run

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
)

// hostGone is a connection's error for a host that could not be reached again.
type hostGone struct{ host string }

func (e hostGone) Error() string           { return e.host + ": connection lost; reconnecting failed" }
func (e hostGone) UnreachableHost() string { return e.host }

// failingConn fails every command with err.
type failingConn struct{ err error }

func (c failingConn) Exec(context.Context, engine.Command) (engine.ExecResult, error) {
	return engine.ExecResult{}, c.err
}

func (c failingConn) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, c.err
}

// runsTrue runs `true` on its host and fails with the connection's error.
type runsTrue struct{}

func (*runsTrue) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	_, err := engine.Run(ctx, t.Conn(), "true")
	return engine.Outcome{Summary: "ran"}, err
}

// A host whose connection is lost during the run and cannot be made again is unreachable in the
// recap, as one that could not be connected at the start is; a task that failed for another
// reason, or because of another host it reached through this one, leaves it reachable.
func TestUnreachableDuringRun(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"its own connection lost", hostGone{"h"}, true},
		{"its own connection lost, wrapped", fmt.Errorf("inspect /etc/x: %w", hostGone{"h"}), true},
		{"another host reached through it", fmt.Errorf("dial node3:6379: %w", hostGone{"node3"}), false},
		{"a command that failed", errors.New("exit status 1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			play := filepath.Join(dir, "play.hcl")
			src := "host \"h\" { address = \"127.0.0.1\" }\ntask \"t\" {\n  runs_true {}\n}\n"
			if err := os.WriteFile(play, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			reg := engine.NewRegistry(engine.ModuleInfo{Name: "runs_true", New: func() engine.Module { return &runsTrue{} }})
			pb := loadPlay(t, play, reg)
			rc, err := New(pb, Options{
				Mode: Apply,
				Sink: SinkFunc(func(Event) {}),
				Connector: ConnectorFunc(func(context.Context, *config.Host) (engine.Conn, error) {
					return failingConn{tt.err}, nil
				}),
			}).Run(context.Background())
			if rc == nil {
				t.Fatal(err)
			}
			if c := rc.PerHost["h"]; c == nil || c.Failed != 1 || c.Unreachable != tt.want {
				t.Errorf("recap of h: %+v, want 1 failure and unreachable %v", c, tt.want)
			}
		})
	}
}
