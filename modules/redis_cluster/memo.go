package redis_cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/runbook/runbook/engine"
)

// memoAge is how long one observation of the instances serves the redis_cluster tasks of a run
// that follow it, as long as nothing changed in the run (engine.Memo).
const memoAge = 2 * time.Second

// memoKey names what an observation depends on: the instances, how they are reached, and the
// credentials (hashed: the key holds no secret), so that two tasks share an observation only
// when they would have read the same.
func (c *Config) memoKey(t *engine.Target, insts []Instance) string {
	var b strings.Builder
	b.WriteString("redis_cluster/observe")
	fmt.Fprintf(&b, "\x00connect=%s", c.Connect)
	for _, in := range insts {
		fmt.Fprintf(&b, "\x00%s=%s", in.Name(), joinAddr(in.IP, in.Port))
	}
	h := sha256.New()
	fmt.Fprintf(h, "password\x00%s\x00", c.Password)
	if c.TLS != nil {
		fmt.Fprintf(h, "tls\x00%s\x00%s\x00%s\x00%s\x00", t.Path(c.TLS.CAFile), t.Path(c.TLS.CertFile), t.Path(c.TLS.KeyFile), c.TLS.ServerName)
	}
	b.WriteString("\x00auth=")
	b.WriteString(hex.EncodeToString(h.Sum(nil)))
	return b.String()
}

// firstObservation returns the observations a task starts from: those another redis_cluster task
// of the run made of the same instances in the last memoAge, when nothing changed since, or new
// ones. The caller owns the returned slice (a copy of the shared one, which nobody modifies).
func (s *session) firstObservation(ctx context.Context, t *engine.Target) []Observation {
	// The read always returns the observations; an error only keeps them from being shared.
	v, _ := t.Memo().Load(s.memoKey, memoAge, func() (any, error) {
		obs := s.c.observeAll(ctx)
		if err := ctx.Err(); err != nil {
			return obs, fmt.Errorf("observe the instances: %w", err)
		}
		return obs, nil
	})
	return append([]Observation(nil), v.([]Observation)...)
}
