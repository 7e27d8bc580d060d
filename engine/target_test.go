package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPoll(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name string
		// cond is called with the number of earlier calls
		cond    func(n int) (bool, error)
		wantErr string // "" : no error
		wantIs  error
	}{
		{name: "met at once", cond: func(int) (bool, error) { return true, nil }},
		{name: "met on the third call", cond: func(n int) (bool, error) { return n == 2, nil }},
		{name: "met after not-yet reasons", cond: func(n int) (bool, error) {
			if n < 2 {
				return false, NotYet("try %d", n)
			}
			return true, nil
		}},
		{name: "error ends the wait", cond: func(int) (bool, error) { return false, boom }, wantErr: "boom", wantIs: boom},
		{name: "timeout without a reason", cond: func(int) (bool, error) { return false, nil },
			wantErr: "timed out after 50ms waiting for the thing"},
		{name: "timeout names the last reason", cond: func(n int) (bool, error) { return false, NotYet("link is down (call %d)", min(n, 1)) },
			wantErr: "timed out after 50ms waiting for the thing (last: link is down (call 1))"},
		{name: "a later false without a reason keeps the last reason", cond: func(n int) (bool, error) {
			if n == 0 {
				return false, NotYet("first reason")
			}
			return false, nil
		}, wantErr: "timed out after 50ms waiting for the thing (last: first reason)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tg := NewTarget(TargetOptions{Host: Host{Name: "h"}})
			n := 0
			err := tg.Poll(context.Background(), "the thing", 5*time.Millisecond, 50*time.Millisecond, func(context.Context) (bool, error) {
				defer func() { n++ }()
				return tt.cond(n)
			})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Fatalf("err = %v, want one that wraps %v", err, tt.wantIs)
			}
		})
	}

	t.Run("cancelled by the caller", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		tg := NewTarget(TargetOptions{Host: Host{Name: "h"}})
		err := tg.Poll(ctx, "the thing", 5*time.Millisecond, time.Minute, func(context.Context) (bool, error) {
			cancel()
			return false, NotYet("not yet")
		})
		if err == nil || err.Error() != "stopped waiting for the thing: context canceled" || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want one that wraps context.Canceled and does not say timed out", err)
		}
	})
}
