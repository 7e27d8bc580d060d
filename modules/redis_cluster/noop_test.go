package redis_cluster

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
)

// countingHosts routes every connection through a per-host fake engine.Conn (as the ssh connect
// mode does) that dials loopback and counts dials and writes.
type countingHosts struct {
	fakeHosts
	d *countingDial
}

func (h countingHosts) Conn(ctx context.Context, host string) (engine.Conn, error) {
	c := enginetest.NewConn()
	c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) { return h.d.dial(ctx, host, addr) }
	return c, nil
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
