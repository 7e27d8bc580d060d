package redis_cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/runbook/runbook/engine"
)

// passwordSettle bounds the wait, after the password is set on the running instances, for the
// replicas whose sync it had kept refused.
const passwordSettle = 15 * time.Second

// authParams are the settings that make an instance's password: what clients must send
// (requirepass) and what it sends to its master as a replica (masterauth).
var authParams = []string{"masterauth", "requirepass"}

// authDrift lists, for each parameter of authParams, the reachable instances whose running value
// is not password. It reads both with CONFIG GET, in one round trip per instance and on all at
// once; the values stay here (they are the password). An instance that refuses CONFIG GET (the
// command renamed away) is left out and named in skipped.
func (c *clients) authDrift(ctx context.Context, top *Topology, password string) (drift map[string][]int, skipped []string) {
	var idx []int
	for i := range c.insts {
		if top.Obs[i].Reachable() {
			idx = append(idx, i)
		}
	}
	values := make([][]string, len(c.insts))
	errs := make([]error, len(c.insts))
	parallel(idx, func(i int) error {
		res, err := c.client(i).Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, param := range authParams {
				p.ConfigGet(ctx, param)
			}
			return nil
		})
		if err != nil {
			c.dialFailed(i, err)
			errs[i] = err
			return nil
		}
		for k, param := range authParams {
			m, _ := res[k].(*redis.MapStringStringCmd).Result()
			values[i] = append(values[i], m[param])
		}
		return nil
	})
	drift = map[string][]int{}
	for _, i := range idx {
		if errs[i] != nil {
			skipped = append(skipped, c.insts[i].Name())
			continue
		}
		for k, param := range authParams {
			if values[i][k] != password {
				drift[param] = append(drift[param], i)
			}
		}
	}
	return drift, skipped
}

// livePassword gives the running instances the module's password when they run without it (or
// with another masterauth), with CONFIG SET and no restart. A configuration that gains a password
// otherwise reaches the instances only through the rolling restart, one at a time, and a replica
// restarted with masterauth cannot sync from a master that has no password yet (its AUTH is
// refused): the restart would wait on it until the timeout, the replica out of sync. masterauth
// goes first on every instance, then requirepass: a replica whose link drops in between connects
// again once its master has the password; connections already authenticated (replication links,
// clients, this module's) stay. The password is sent only inside the Redis protocol.
//
// An instance the module cannot authenticate with (another password) was not observed and is left
// alone: it is reported by the health check as before. It returns whether it set anything (or, in
// a dry run, would).
func (c *Config) livePassword(ctx context.Context, t *engine.Target, s *session) (bool, error) {
	if c.Password == "" {
		return false, nil
	}
	top := Analyze(s.insts, s.firstObservation(ctx, t))
	drift, skipped := s.c.authDrift(ctx, top, c.Password)
	if len(skipped) > 0 {
		t.Logf("could not read the password settings of %s (CONFIG GET refused): left as they are", strings.Join(skipped, ", "))
	}
	set := map[int]bool{}
	for _, param := range authParams {
		for _, i := range drift[param] {
			set[i] = true
		}
	}
	if len(set) == 0 {
		return false, nil
	}
	var names []string
	for i := range s.insts {
		if set[i] {
			names = append(names, s.insts[i].Name())
		}
	}
	sum := fmt.Sprintf("set the password of %s that run without it, without a restart (masterauth on each, then requirepass): %s",
		plural(len(names), "instance"), strings.Join(names, ", "))
	err := t.Change(ctx, engine.Change{Summary: sum}, func(ctx context.Context) error {
		for _, param := range authParams {
			err := parallel(drift[param], func(i int) error {
				_, err := s.c.do(ctx, i, "CONFIG", "SET", param, c.Password)
				return err
			})
			if err != nil {
				return err
			}
		}
		// A replica whose sync was refused for want of its master's password connects again
		// within a second.
		r := &restarter{t: t, s: s, c: c, timeout: passwordSettle}
		if err := r.waitHealthy(ctx, "the replicas to sync with the password set"); err != nil {
			t.Logf("%v", err)
		}
		return nil
	})
	return true, err
}
