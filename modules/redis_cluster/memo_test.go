package redis_cluster

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/runbook/runbook/engine"
)

// refusingDial counts dials and refuses them all: every instance is down, and every observation
// of an instance costs exactly one dial.
type refusingDial struct {
	mu sync.Mutex
	n  int
}

func (d *refusingDial) dial(context.Context, string, string) (net.Conn, error) {
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
	return nil, errors.New("connection refused")
}

func (d *refusingDial) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

func TestFirstObservationShared(t *testing.T) {
	insts := grid(3, 3)
	hosts := fakeHosts{"node1": "127.0.0.11", "node2": "127.0.0.12", "node3": "127.0.0.13"}
	base := &Config{}
	for _, in := range insts {
		base.Instances = append(base.Instances, InstanceConfig{Host: in.Host, Port: in.Port})
	}
	withPassword := *base
	withPassword.Password = "s3cret"
	tests := []struct {
		name      string
		memo      func() *engine.Memo
		second    *Config
		between   func(*engine.Memo) // what happens between the two tasks
		wantDials int                // after both tasks observed
	}{
		{"shared", engine.NewMemo, base, nil, len(insts)},
		{"no memo", func() *engine.Memo { return nil }, base, nil, 2 * len(insts)},
		{"a change between the tasks", engine.NewMemo, base, (*engine.Memo).Changed, 2 * len(insts)},
		{"a change before both", func() *engine.Memo { m := engine.NewMemo(); m.Changed(); return m }, base, nil, len(insts)},
		{"other password", engine.NewMemo, &withPassword, nil, 2 * len(insts)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			memo := tt.memo()
			d := &refusingDial{}
			observe := func(c *Config) []Observation {
				target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Hosts: hosts, Memo: memo})
				s := &session{insts: insts, c: newClients(insts, d.dial, c.Password, nil), memoKey: c.memoKey(target, insts)}
				defer s.c.close()
				return s.firstObservation(context.Background(), target)
			}
			first := observe(base)
			if d.count() != len(insts) {
				t.Fatalf("first task: %d dials, want %d", d.count(), len(insts))
			}
			// A task changes its copy; the next one must not see it.
			first[0].Sample = &KeySample{Slots: []int{1}}
			first[1] = Observation{}
			if tt.between != nil {
				tt.between(memo)
			}
			second := observe(tt.second)
			if got := d.count(); got != tt.wantDials {
				t.Errorf("after the second task: %d dials, want %d", got, tt.wantDials)
			}
			if second[0].Sample != nil || second[1].Err == nil || len(second) != len(insts) {
				t.Errorf("the second task sees the first task's changes: %+v, %+v", second[0], second[1])
			}
			for i, o := range second {
				if o.Reachable() {
					t.Errorf("%s observed as reachable", insts[i].Name())
				}
			}
		})
	}
}

func TestMemoKeyHoldsNoPassword(t *testing.T) {
	c := &Config{Password: "s3cret", TLS: &TLSBlock{CAFile: "ca.pem", ServerName: "redis"}}
	insts := grid(1, 2)
	target := engine.NewTarget(engine.TargetOptions{})
	k := c.memoKey(target, insts)
	if strings.Contains(k, "s3cret") {
		t.Errorf("memo key %q holds the password", k)
	}
	other := *c
	other.TLS = &TLSBlock{CAFile: "other.pem", ServerName: "redis"}
	if other.memoKey(target, insts) == k {
		t.Error("another CA gives the same memo key")
	}
	if c.memoKey(target, insts[:1]) == k {
		t.Error("other instances give the same memo key")
	}
}
