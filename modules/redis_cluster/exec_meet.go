package redis_cluster

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// pipeline sends cmds, which may be sent twice (CLUSTER MEET), to instance i in one pipeline (one
// round trip) and returns the first error, a refused command's or the connection's. When the kept
// connection broke under it (see doAgain), it sends them once more on a new one.
func (c *clients) pipeline(ctx context.Context, i int, cmds [][]any) error {
	if len(cmds) == 0 {
		return nil
	}
	send := func() ([]redis.Cmder, error) {
		return c.client(i).Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, args := range cmds {
				p.Do(ctx, args...)
			}
			return nil
		})
	}
	res, err := send()
	if brokenConn(ctx, err) {
		res, err = send()
	}
	if err == nil {
		return nil
	}
	c.dialFailed(i, err)
	for k, r := range res {
		if r.Err() != nil && k < len(cmds) {
			return fmt.Errorf("%s: %s: %w", c.insts[i].Name(), cmdName(cmds[k]), r.Err())
		}
	}
	return fmt.Errorf("%s: %s: %w", c.insts[i].Name(), cmdName(cmds[0]), err)
}

// meetPeers returns the instances that the k-th instance of meet step s sends CLUSTER MEET to.
func meetPeers(s Step, k int) []int {
	if s.Peers != nil {
		return s.Peers[k]
	}
	return []int{s.Peer}
}

// meet has every instance of s send its CLUSTER MEETs, each instance's in one round trip, all
// instances at once.
func (e *executor) meet(ctx context.Context, s Step) error {
	idx := make([]int, len(s.Insts))
	for k := range idx {
		idx[k] = k
	}
	return parallel(idx, func(k int) error {
		var cmds [][]any
		for _, j := range meetPeers(s, k) {
			peer := e.top.Instances[j]
			cmds = append(cmds, []any{"CLUSTER", "MEET", peer.IP, peer.Port})
		}
		return e.c.pipeline(ctx, s.Insts[k], cmds)
	})
}
