package redis_cluster

import (
	"bytes"
	"context"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
)

// countingDial dials loopback addresses directly and counts the dials per address and the writes
// on the connections it opened after their handshake (a pipeline is one write; one write, one
// round trip).
type countingDial struct {
	mu     sync.Mutex
	dials  map[string]int
	writes int
}

func newCountingDial() *countingDial { return &countingDial{dials: map[string]int{}} }

func (d *countingDial) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.dials[addr]++
	d.mu.Unlock()
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, d: d}, nil
}

func (d *countingDial) counts() (dials map[string]int, total, writes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dials = map[string]int{}
	for a, n := range d.dials {
		dials[a] = n
		total += n
	}
	return dials, total, d.writes
}

type countingConn struct {
	net.Conn
	d *countingDial
}

// Write counts the writes, except go-redis's connection handshake (HELLO), which is part of
// opening the connection.
func (c *countingConn) Write(p []byte) (int, error) {
	if !bytes.HasPrefix(p, []byte("*2\r\n$5\r\nhello\r\n")) && !bytes.HasPrefix(p, []byte("*5\r\n$5\r\nhello\r\n")) {
		c.d.mu.Lock()
		c.d.writes++
		c.d.mu.Unlock()
	}
	return c.Conn.Write(p)
}

// instances lists the lab's instances as the module resolves them.
func (l *lab) instances() []Instance {
	var out []Instance
	for _, h := range l.hosts {
		for _, p := range l.ports {
			out = append(out, Instance{Host: h, Port: p, IP: l.ips[h]})
		}
	}
	return out
}

// TestIntegrationObserveOneRoundTrip: an observation opens one connection per instance, keeps it
// for the next observation, and asks everything in one round trip; a down instance costs one
// failed dial (no retries) and is seen again as soon as it is back.
func TestIntegrationObserveOneRoundTrip(t *testing.T) {
	l := newLab(t, 3, 1, 27100)
	insts := l.instances()
	d := newCountingDial()
	c := newClients(insts, d.dial, "", nil)
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	start := time.Now().Unix()
	obs := c.observeAll(ctx)
	for i, o := range obs {
		if !o.Reachable() || !o.ClusterEnabled || o.Myself() == nil || o.Role != "master" || o.ClusterInfo["cluster_state"] == "" {
			t.Fatalf("%s: observation %+v", insts[i].Name(), o)
		}
		if o.Server.RunID == "" || o.Server.PID == "" || o.Server.Started < start-60 || o.Server.Started > start+1 {
			t.Errorf("%s: INFO server read as %+v (test started at %d)", insts[i].Name(), o.Server, start)
		}
	}
	dials, total, _ := d.counts()
	if total != len(insts) {
		t.Errorf("first observation: %d dials %v, want one per instance (%d)", total, dials, len(insts))
	}

	_, _, writesBefore := d.counts()
	c.observeAll(ctx)
	dials, total, writes := d.counts()
	if total != len(insts) {
		t.Errorf("second observation dialed again: %v", dials)
	}
	if n := writes - writesBefore; n != len(insts) {
		t.Errorf("second observation: %d writes, want one pipeline per instance (%d)", n, len(insts))
	}

	// node2 goes down: its kept connection breaks, one new dial fails, and that is all.
	l.kill("node2", 27100)
	down := net.JoinHostPort(l.ips["node2"], "27100")
	obs = c.observeAll(ctx)
	if o := obs[1]; o.Reachable() || !strings.Contains(o.Err.Error(), "connection refused") || !strings.HasPrefix(o.Err.Error(), "node2:27100: ") {
		t.Errorf("down instance observed as %v, want node2:27100: ... connection refused", o.Err)
	}
	if !obs[0].Reachable() || !obs[2].Reachable() {
		t.Errorf("live instances: %v, %v", obs[0].Err, obs[2].Err)
	}
	for k := 0; k < 3; k++ {
		c.observe(ctx, 1)
	}
	dials, _, _ = d.counts()
	if dials[down] != 1+4 {
		t.Errorf("down instance dialed %d times in 4 observations after the first, want one dial each", dials[down]-1)
	}

	// Back: seen at the next observation.
	l.start("node2", 27100, false)
	if o := c.observe(ctx, 1); !o.Reachable() {
		t.Errorf("instance back but observed as %v", o.Err)
	}
}

// TestIntegrationObserveClusterDisabled: an instance without cluster support answers CLUSTER
// NODES with an error, which the observation ignores.
func TestIntegrationObserveClusterDisabled(t *testing.T) {
	l := newLab(t, 1, 1, 27150, "--cluster-enabled", "no")
	c := newClients(l.instances(), newCountingDial().dial, "", nil)
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := c.observe(ctx, 0)
	if !o.Reachable() || o.ClusterEnabled || o.Nodes != nil || o.Role != "master" || o.Server.RunID == "" {
		t.Errorf("observation %+v, want a reachable master without cluster support", o)
	}
	top := Analyze(l.instances(), []Observation{o})
	if len(top.Disabled) != 1 {
		t.Errorf("disabled %v, want [0]", top.Disabled)
	}
}

// TestIntegrationReadProcs: the rolling restart's view of a process comes from the observation
// (INFO server) and from one command on its host: a configuration file modified after the
// process started makes it stale, one from the second of its start or before does not.
func TestIntegrationReadProcs(t *testing.T) {
	if _, err := osexec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "a.conf")
	if err := os.WriteFile(conf, []byte("bind 127.0.0.21\nport 27160\nsave \"\"\nappendonly no\ndir "+dir+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := osexec.Command("redis-server", conf)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	insts := []Instance{{Host: "node1", Port: 27160, IP: "127.0.0.21"}}
	c := newClients(insts, newCountingDial().dial, "", nil)
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var o Observation
	for o = c.observe(ctx, 0); !o.Reachable(); o = c.observe(ctx, 0) {
		select {
		case <-ctx.Done():
			t.Fatalf("redis-server did not answer: %v", o.Err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if o.Server.ConfigFile != conf || o.Server.PID != strconv.Itoa(srv.Process.Pid) || o.Server.Started == 0 {
		t.Fatalf("INFO server read as %+v, want config_file %s, pid %d and a start", o.Server, conf, srv.Process.Pid)
	}
	conn := enginetest.NewConn().On(".", func(call enginetest.Call) (engine.ExecResult, error) {
		out, err := osexec.CommandContext(ctx, "sh", "-c", call.Cmd).Output()
		return engine.ExecResult{Stdout: out}, err
	})
	hosts := hostConns{fakeHosts: fakeHosts{"node1": "127.0.0.21"}, conn: conn}
	target := engine.NewTarget(engine.TargetOptions{Host: engine.Host{Name: "node1"}, Hosts: hosts})
	s := &session{insts: insts, c: c}
	top := Analyze(insts, []Observation{o})
	for _, tt := range []struct {
		mtime int64
		stale bool
	}{
		{o.Server.Started - 1, false},
		{o.Server.Started, false},
		{o.Server.Started + 1, true},
	} {
		mt := time.Unix(tt.mtime, 0)
		if err := os.Chtimes(conf, mt, mt); err != nil {
			t.Fatal(err)
		}
		procs, err := readProcs(ctx, target, s, top)
		if err != nil {
			t.Fatal(err)
		}
		if procs[0].ConfigMtime != tt.mtime || procs[0].Stale() != tt.stale {
			t.Errorf("config modified at start%+d: %+v stale %v, want %v", tt.mtime-o.Server.Started, procs[0], procs[0].Stale(), tt.stale)
		}
	}
	if n := len(conn.Calls()); n != 3 {
		t.Errorf("%d commands for 3 reads of one host, want 3", n)
	}
}

// hostConns gives every host the same fake connection.
type hostConns struct {
	fakeHosts
	conn engine.Conn
}

func (h hostConns) Conn(context.Context, string) (engine.Conn, error) { return h.conn, nil }

// droppingDial is countingDial whose open connections can all be closed at once, as when the SSH
// connection their tunnels ran over drops.
type droppingDial struct {
	*countingDial
	mu    sync.Mutex
	conns []net.Conn
}

func (d *droppingDial) dial(ctx context.Context, host, addr string) (net.Conn, error) {
	c, err := d.countingDial.dial(ctx, host, addr)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *droppingDial) drop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
}

// TestIntegrationCommandsAfterDroppedConnection: when the kept connection to an instance broke
// (its tunnel dropped), the commands that may be sent twice (reads, CLUSTER FORGET, CLUSTER MEET)
// go out again on a new connection and succeed; any other command fails, sent once.
func TestIntegrationCommandsAfterDroppedConnection(t *testing.T) {
	l := newLab(t, 2, 1, 27250)
	insts := l.instances()
	d := &droppingDial{countingDial: newCountingDial()}
	c := newClients(insts, d.dial, "", nil)
	defer c.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := &executor{c: c, top: &Topology{Instances: insts}}
	addr := net.JoinHostPort(insts[0].IP, strconv.Itoa(insts[0].Port))
	dials := func() int {
		n, _, _ := d.counts()
		return n[addr]
	}

	if _, err := c.text(ctx, 0, "CLUSTER", "NODES"); err != nil || dials() != 1 {
		t.Fatalf("first read: %v, %d dials", err, dials())
	}
	d.drop()
	if text, err := c.text(ctx, 0, "CLUSTER", "NODES"); err != nil || !strings.Contains(text, "myself") {
		t.Errorf("read after the drop: %v (%q)", err, text)
	}
	if dials() != 2 {
		t.Errorf("read after the drop: %d dials, want 2", dials())
	}

	// Each time, a connection in use is dropped.
	dropKept := func() {
		t.Helper()
		if _, err := c.do(ctx, 0, "PING"); err != nil {
			t.Fatalf("PING before the drop: %v", err)
		}
		d.drop()
	}
	dropKept()
	forget := Step{Kind: StepForget, Insts: []int{0}, NodeID: strings.Repeat("f", 40)}
	if err := e.do(ctx, forget); err != nil {
		t.Errorf("forget after the drop: %v", err)
	}
	dropKept()
	meet := Step{Kind: StepMeet, Insts: []int{0}, Peer: 1}
	if err := e.do(ctx, meet); err != nil {
		t.Errorf("meet after the drop: %v", err)
	}
	// The MEET was sent: node1 comes to know node2.
	if waitFor(func() bool {
		text, err := c.text(ctx, 0, "CLUSTER", "NODES")
		return err == nil && strings.Count(text, "\n") >= 2
	}) != nil {
		t.Errorf("node1 did not learn of node2 within 10 s of the MEET")
	}

	// A command that must not be sent twice is not.
	dropKept()
	before := dials()
	if _, err := c.do(ctx, 0, "PING"); err == nil {
		t.Errorf("PING over the dropped connection succeeded; do must not send a command twice")
	}
	if dials() != before {
		t.Errorf("do dialed %d times after the drop, want none", dials()-before)
	}
}
