package redis_cluster

import (
	"context"
	"errors"
	"net"
	osexec "os/exec"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
)

// countingHosts routes every connection through a per-host fake engine.Conn (as the ssh connect
// mode does) that dials loopback and counts dials and writes, and answers commands with exec.
type countingHosts struct {
	fakeHosts
	d    *countingDial
	exec enginetest.Responder
}

func (h countingHosts) Conn(ctx context.Context, host string) (engine.Conn, error) {
	c := enginetest.NewConn()
	c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) { return h.d.dial(ctx, host, addr) }
	if h.exec != nil {
		c.On(".", h.exec)
	}
	return c, nil
}

// TestIntegrationNoopRunSharesObservation: the three redis_cluster tasks of a no-op run (prepare,
// converge, restart) observe the instances once between them; the rolling restart then only
// looks at the configuration files, with one command per host, on every host at once.
func TestIntegrationNoopRunSharesObservation(t *testing.T) {
	l := newLabWithConfigFiles(t, 3, 2, 27250)
	c := l.config(1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, _, err := l.run(ctx, c, false); err != nil {
		t.Fatal(err)
	}
	l.assertPerfect(ctx, c)

	var mu sync.Mutex
	var execs []string
	all := make(chan struct{})
	// Each host's command waits until every host has sent its own: run one after the other,
	// they would time out here.
	exec := func(call enginetest.Call) (engine.ExecResult, error) {
		mu.Lock()
		execs = append(execs, call.Cmd)
		if len(execs) == len(l.hosts) {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-time.After(5 * time.Second):
			return engine.ExecResult{}, errors.New("the hosts' commands did not run at once")
		}
		out, err := osexec.CommandContext(ctx, "sh", "-c", call.Cmd).Output()
		var ee *osexec.ExitError
		if errors.As(err, &ee) {
			return engine.ExecResult{Stdout: out, ExitCode: ee.ExitCode()}, nil
		}
		return engine.ExecResult{Stdout: out}, err
	}
	memo := engine.NewMemo()
	d := newCountingDial()
	hosts := countingHosts{fakeHosts: l.ips, d: d, exec: exec}
	for _, mode := range []string{ModePrepare, ModeConverge, ModeRestart} {
		task := *c
		task.Connect, task.Mode = "ssh", mode
		if mode == ModeRestart {
			task.RestartCommand = "false"
		}
		target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Task: "redis_" + mode, Hosts: hosts, Memo: memo})
		out, err := task.Run(ctx, target)
		if err != nil {
			t.Fatalf("mode %s: %v", mode, err)
		}
		if len(target.Changes()) > 0 {
			t.Fatalf("mode %s changed %v", mode, target.Changes())
		}
		t.Logf("mode %s: %s", mode, out.Summary)
	}
	n := len(l.hosts) * len(l.ports)
	dials, total, writes := d.counts()
	if total != n || writes != n {
		t.Errorf("3 no-op tasks: %d dials %v and %d writes, want one of each per instance (%d)", total, dials, writes, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(execs) != len(l.hosts) {
		t.Errorf("commands %q, want one per host", execs)
	}
}

// TestIntegrationNoopConvergeObservesOnce: converging a cluster that is as declared reads every
// instance once, in one round trip each.
func TestIntegrationNoopConvergeObservesOnce(t *testing.T) {
	l := newLab(t, 3, 1, 27200)
	c := l.config(0)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, _, err := l.run(ctx, c, false); err != nil {
		t.Fatal(err)
	}
	l.assertPerfect(ctx, c)

	c.Connect = "ssh"
	hosts := countingHosts{fakeHosts: l.ips, d: newCountingDial()}
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Task: "redis_cluster", Hosts: hosts})
	out, err := c.Run(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if out.Summary != "cluster as declared: 3 masters, 0 replicas, 0 changes" || len(out.Outputs["masters"].AsValueSlice()) != 3 {
		t.Errorf("outcome %q, outputs %v", out.Summary, out.Outputs)
	}
	dials, total, writes := hosts.d.counts()
	if total != 3 || writes != 3 {
		t.Errorf("no-op converge: %d dials %v and %d writes, want one of each per instance (3)", total, dials, writes)
	}
}

// TestIntegrationCreateSharesSettledObservation: after a create, the rolling restart that follows
// starts from the observation that found the cluster settled (no instance is read again), and it
// looks at the configuration files with one command per host.
func TestIntegrationCreateSharesSettledObservation(t *testing.T) {
	l := newLabWithConfigFiles(t, 3, 1, 27300)
	c := l.config(0)
	c.Connect = "ssh"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var execs []string
	exec := func(call enginetest.Call) (engine.ExecResult, error) {
		mu.Lock()
		execs = append(execs, call.Cmd)
		mu.Unlock()
		out, err := osexec.CommandContext(ctx, "sh", "-c", call.Cmd).Output()
		return engine.ExecResult{Stdout: out}, err
	}
	memo := engine.NewMemo()
	d := newCountingDial()
	hosts := countingHosts{fakeHosts: l.ips, d: d, exec: exec}
	create := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Task: "redis_cluster", Hosts: hosts, Memo: memo})
	if _, err := c.Run(ctx, create); err != nil {
		t.Fatal(err)
	}
	if len(create.Changes()) == 0 {
		t.Fatal("the create changed nothing")
	}
	_, created, _ := d.counts()

	restart := *c
	restart.Mode, restart.RestartCommand = ModeRestart, "false"
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Task: "redis_rolling_restart", Hosts: hosts, Memo: memo})
	out, err := restart.Run(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	if len(target.Changes()) > 0 {
		t.Fatalf("restart changed %v", target.Changes())
	}
	if _, total, _ := d.counts(); total != created {
		t.Errorf("the restart dialed %d instances again; want it to start from the create's settled observation", total-created)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(execs) != len(l.hosts) {
		t.Errorf("commands %q, want one per host", execs)
	}
	t.Logf("restart: %s", out.Summary)
}
