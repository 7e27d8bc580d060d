package redis_cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/runbook/runbook/engine"
)

// retryReplicate reports whether CLUSTER REPLICATE's err says to try again: the instance does not
// know the master yet (the node is unknown, or still in handshake under a name of its own, or not
// yet seen as a master), or the command got no answer (sending it again is harmless: the same
// master is set again). Any other refusal is final.
func retryReplicate(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true
	}
	msg := rerr.Error()
	return strings.Contains(msg, "Unknown node") || strings.Contains(msg, "I can only replicate a master")
}

// replicate makes s.Inst a replica of s.NodeID once it knows that node as a master. The server
// itself checks what the step waits for (REPLICATE refuses a node it does not know, one still in
// handshake and one it sees as a replica), so the step sends REPLICATE until it is accepted: one
// short round trip per try instead of reading CLUSTER NODES, which many steps at once would make
// the instances answer while they are busy meeting. Any other refusal ends the step at once.
func (e *executor) replicate(ctx context.Context, s Step) error {
	return e.t.Poll(ctx, fmt.Sprintf("%s to learn of %s", e.name(s.Inst), shortID(s.NodeID)), pollInterval, e.stepTimeout,
		func(ctx context.Context) (bool, error) {
			_, err := e.c.do(ctx, s.Inst, "CLUSTER", "REPLICATE", s.NodeID)
			if err != nil && retryReplicate(err) && ctx.Err() == nil {
				return false, engine.NotYet("%v", err)
			}
			return true, err
		})
}
