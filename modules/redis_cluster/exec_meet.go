package redis_cluster

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// pipeline sends cmds to instance i in one pipeline (one round trip) and returns the first error,
// a refused command's or the connection's.
func (c *clients) pipeline(ctx context.Context, i int, cmds [][]any) error {
	if len(cmds) == 0 {
		return nil
	}
	res, err := c.client(i).Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, args := range cmds {
			p.Do(ctx, args...)
		}
		return nil
	})
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

// meetPeers returns the instances that instance i sends CLUSTER MEET to in a meet step: s.Peer,
// or with s.Peer -1 (every instance of s.Insts meets the others) every instance of s.Insts after
// i, so that each pair meets once.
func meetPeers(s Step, i int) []int {
	if s.Peer >= 0 {
		return []int{s.Peer}
	}
	var peers []int
	for _, j := range s.Insts {
		if j > i {
			peers = append(peers, j)
		}
	}
	return peers
}

// meet has every instance of s send its CLUSTER MEETs, each instance's in one round trip, all
// instances at once.
func (e *executor) meet(ctx context.Context, s Step) error {
	return parallel(s.Insts, func(i int) error {
		var cmds [][]any
		for _, j := range meetPeers(s, i) {
			peer := e.top.Instances[j]
			cmds = append(cmds, []any{"CLUSTER", "MEET", peer.IP, peer.Port})
		}
		return e.c.pipeline(ctx, i, cmds)
	})
}
