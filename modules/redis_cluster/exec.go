package redis_cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/runbook/runbook/engine"
)

// pollInterval is how often the module looks at the cluster while it waits for a condition.
const pollInterval = 25 * time.Millisecond

// masterGoneGrace is how long a replica waiting to sync for a failover may see its master flagged
// failing (fail? or fail: silent for longer than cluster-node-timeout) before the failover step
// gives up on it; the grace covers a flag a node that just joined still holds from old gossip.
const masterGoneGrace = 2 * time.Second

// failoverRetry is how long a manual failover may take before it is started again: just over
// the server's manual failover timeout (5 s), after which the request has expired.
const failoverRetry = 5500 * time.Millisecond

// errCandidateChanged is returned by a promotion whose replica no longer passes the data check it
// passed when the step was planned: the module observes and plans again.
var errCandidateChanged = errors.New("the replica chosen for promotion changed since it was planned")

// errForeignKeys marks an instance holding keys of slots its shard does not own.
var errForeignKeys = errors.New("holds another shard's keys")

// executor runs planned steps against the live instances.
type executor struct {
	t   *engine.Target
	c   *clients
	top *Topology
	// stepTimeout bounds each wait inside a step.
	stepTimeout time.Duration
}

func (e *executor) name(i int) string { return e.top.Instances[i].Name() }

// run performs one step inside Target.Change, so plan records it and apply does it.
func (e *executor) run(ctx context.Context, s Step) error {
	return e.t.Change(ctx, engine.Change{Summary: s.Summary}, func(ctx context.Context) error {
		return e.do(ctx, s)
	})
}

func (e *executor) do(ctx context.Context, s Step) error {
	switch s.Kind {
	case StepAddSlots:
		args := []any{"CLUSTER", "ADDSLOTSRANGE"}
		for _, r := range s.Slots {
			args = append(args, r.Start, r.End)
		}
		_, err := e.c.do(ctx, s.Inst, args...)
		return err
	case StepSetEpoch:
		epochs := map[int]int64{}
		for k, i := range s.Insts {
			epochs[i] = s.Epochs[k]
		}
		return parallel(s.Insts, func(i int) error {
			_, err := e.c.do(ctx, i, "CLUSTER", "SET-CONFIG-EPOCH", epochs[i])
			return err
		})
	case StepMeet:
		return e.meet(ctx, s)
	case StepForget:
		return parallel(s.Insts, func(i int) error {
			// a second FORGET of the same node is harmless ("Unknown node", below)
			_, err := e.c.doAgain(ctx, i, "CLUSTER", "FORGET", s.NodeID)
			if err != nil && strings.Contains(err.Error(), "Unknown node") {
				return nil
			}
			if err != nil && strings.Contains(err.Error(), "forget my master") {
				e.t.Logf("%s still follows %s; it is moved first and forgotten on the next round", e.name(i), shortID(s.NodeID))
				return nil
			}
			return err
		})
	case StepPromote:
		return e.promote(ctx, s)
	case StepReplicate:
		return e.replicate(ctx, s)
	case StepFailover:
		return e.failover(ctx, s)
	}
	return fmt.Errorf("unknown step kind %d", s.Kind)
}

// seenBy returns instance i's CLUSTER NODES, parsed.
func (e *executor) seenBy(ctx context.Context, i int) ([]Node, error) {
	text, err := e.c.text(ctx, i, "CLUSTER", "NODES")
	if err != nil {
		return nil, err
	}
	return ParseClusterNodes(text)
}

// nodeSeenBy returns the line of node id in instance i's CLUSTER NODES, nil when it is unknown or
// still in handshake.
func (e *executor) nodeSeenBy(ctx context.Context, i int, id string) (*Node, error) {
	nodes, err := e.seenBy(ctx, i)
	if err != nil {
		return nil, err
	}
	return findNode(nodes, id), nil
}

// findNode returns the line of node id, nil when it is missing or still in handshake.
func findNode(nodes []Node, id string) *Node {
	for k := range nodes {
		if nodes[k].ID == id && !nodes[k].Flags.Has(FlagHandshake) {
			return &nodes[k]
		}
	}
	return nil
}

// votersKnow returns nil when the master masterID and every other live master with slots see
// node id as a replica of masterID, and otherwise a *engine.NotYetError naming a master that does
// not yet.
func (e *executor) votersKnow(ctx context.Context, id, masterID string) error {
	var voters []int
	for _, m := range e.top.Members {
		if m.Inst >= 0 && m.Live && !m.Dead && m.Master && (len(m.Slots) > 0 || m.ID == masterID) {
			voters = append(voters, m.Inst)
		}
	}
	err := parallel(voters, func(i int) error {
		n, err := e.nodeSeenBy(ctx, i, id)
		switch {
		case err != nil:
			return err
		case n == nil:
			return fmt.Errorf("%s does not know %s yet", e.name(i), shortID(id))
		case n.IsMaster():
			return fmt.Errorf("%s still sees %s as a master", e.name(i), shortID(id))
		case n.MasterID != masterID:
			return fmt.Errorf("%s sees %s as a replica of %s, not of %s", e.name(i), shortID(id), shortID(n.MasterID), shortID(masterID))
		}
		return nil
	})
	if err != nil {
		return engine.NotYet("%v", err)
	}
	return nil
}

func (e *executor) myself(ctx context.Context, i int) (*Node, error) {
	nodes, err := e.seenBy(ctx, i)
	if err != nil {
		return nil, err
	}
	return e.findMyself(i, nodes)
}

// findMyself returns the myself line of instance i's nodes.
func (e *executor) findMyself(i int, nodes []Node) (*Node, error) {
	for k := range nodes {
		if nodes[k].Flags.Has(FlagMyself) {
			return &nodes[k], nil
		}
	}
	return nil, fmt.Errorf("%s: no myself line in CLUSTER NODES", e.name(i))
}

// ownsAll reports whether n is a master owning every slot of want.
func ownsAll(n *Node, want []SlotRange) bool {
	if !n.IsMaster() {
		return false
	}
	for _, w := range want {
		covered := false
		for _, r := range n.Slots {
			if r.Start <= w.Start && r.End >= w.End {
				covered = true
				break
			}
		}
		if !covered {
			return false
		}
	}
	return true
}

// promote elects a replica of a dead master with CLUSTER FAILOVER FORCE (or TAKEOVER) and waits
// until it owns the dead master's slots (or another replica won the election for them).
func (e *executor) promote(ctx context.Context, s Step) error {
	// The planner chose the replica from a sample of its keys; look again right before it takes
	// the slots.
	if err := e.checkShardData(ctx, s.Inst, s.Slots); err != nil {
		return fmt.Errorf("%w: %w", errCandidateChanged, err)
	}
	if _, err := e.c.do(ctx, s.Inst, "CLUSTER", "FAILOVER", s.Option); err != nil {
		return err
	}
	last := time.Now()
	return e.t.Poll(ctx, fmt.Sprintf("%s to take slots %s", e.name(s.Inst), FormatRanges(s.Slots)), pollInterval, e.stepTimeout,
		func(ctx context.Context) (bool, error) {
			me, err := e.myself(ctx, s.Inst)
			if err != nil {
				return false, nil
			}
			if ownsAll(me, s.Slots) {
				return true, nil
			}
			if !me.IsMaster() && me.MasterID != s.NodeID && me.MasterID != "" {
				// A sibling won the election; the slots have a live owner again.
				if n, err := e.nodeSeenBy(ctx, s.Inst, me.MasterID); err == nil && n != nil && ownsAll(n, s.Slots) && !n.Failing() {
					return true, nil
				}
			}
			if time.Since(last) > 3*time.Second {
				last = time.Now()
				_, _ = e.c.do(ctx, s.Inst, "CLUSTER", "FAILOVER", s.Option)
			}
			return false, nil
		})
}

// failover moves a shard's master role to a synced replica with a safe CLUSTER FAILOVER and waits
// for the role switch.
func (e *executor) failover(ctx context.Context, s Step) error {
	slots := s.Slots
	if m := e.top.Members[s.NodeID]; len(slots) == 0 && m != nil {
		slots = m.Slots
	}
	inData := false            // the last look found the replica's keys unfit (warned once per such streak)
	var masterSilent time.Time // since when the replica, its link down, has flagged its master failing
	if err := e.t.Poll(ctx, fmt.Sprintf("%s to sync with its master and start the failover", e.name(s.Inst)), pollInterval, e.stepTimeout,
		func(ctx context.Context) (bool, error) {
			// A read cut short by this wait's own time limit says nothing about the cluster:
			// keep the last reason, which the timeout reports.
			cutShort := func(err error) (bool, error) {
				if ctx.Err() != nil {
					return false, nil
				}
				return false, engine.NotYet("%v", err)
			}
			repl, err := e.c.text(ctx, s.Inst, "INFO", "replication")
			if err != nil {
				return cutShort(err)
			}
			nodes, err := e.seenBy(ctx, s.Inst)
			if err != nil {
				return cutShort(err)
			}
			me, err := e.findMyself(s.Inst, nodes)
			if err != nil {
				return cutShort(err)
			}
			switch {
			case me.IsMaster():
				return false, engine.NotYet("%s is a master, not a replica of %s", e.name(s.Inst), shortID(s.NodeID))
			case me.MasterID != s.NodeID:
				return false, engine.NotYet("%s replicates %s, not %s", e.name(s.Inst), shortID(me.MasterID), shortID(s.NodeID))
			}
			if link := ParseInfo(repl)["master_link_status"]; link != "up" {
				// A master that went away under the step (its host died) does not come back
				// within it: say so now, instead of at the step's timeout.
				if m := findNode(nodes, s.NodeID); m != nil && (m.Flags.Has(FlagPFail) || m.Flags.Has(FlagFail)) {
					if masterSilent.IsZero() {
						masterSilent = time.Now()
					}
					if time.Since(masterSilent) >= masterGoneGrace {
						master := e.top.Name(s.NodeID)
						if mem := e.top.Members[s.NodeID]; mem != nil && mem.Inst < 0 && mem.AddrInst >= 0 {
							master = e.name(mem.AddrInst) // unreachable now, not replaced
						}
						return false, fmt.Errorf("%s cannot sync with its master %s, which has not answered it for longer than cluster-node-timeout (flagged %s): the failover that keeps every write needs that master; once its host is back (or replaced), run apply again",
							e.name(s.Inst), master, m.Flags)
					}
				} else {
					masterSilent = time.Time{}
				}
				return false, engine.NotYet("%s: master_link_status:%s", e.name(s.Inst), link)
			}
			// The master ignores a manual failover request from a node it does not yet know
			// as its replica, and every other master denies its vote ("I don't know its
			// master", "it is a master node") until gossip told it the same; a denied election
			// only expires after seconds. Ask only once every voter knows.
			if err := e.votersKnow(ctx, me.ID, s.NodeID); err != nil {
				if ctx.Err() != nil {
					return false, nil
				}
				return false, err
			}
			// The replica must hold its shard's keys and no other's (a full sync loaded from the
			// wrong file would not show in the link status); until it does, wait.
			if err := e.checkShardData(ctx, s.Inst, slots); err != nil {
				if ctx.Err() != nil {
					return false, nil // this wait's time ran out mid-sample: keep the last reason
				}
				if errors.Is(err, errForeignKeys) && !inData {
					e.t.Warnf("not failing over to %s yet: %v", e.name(s.Inst), err)
				}
				inData = true
				return false, engine.NotYet("%v", err)
			}
			inData = false
			// A node that just joined may still see its master as failing; the safe failover
			// refuses then, so wait and retry.
			_, err = e.c.do(ctx, s.Inst, "CLUSTER", "FAILOVER")
			if err != nil && strings.Contains(err.Error(), "Master is down") {
				return false, engine.NotYet("%v", err)
			}
			return true, err
		}); err != nil {
		return err
	}
	last := time.Now()
	return e.t.Poll(ctx, fmt.Sprintf("%s to become master", e.name(s.Inst)), pollInterval, e.stepTimeout,
		func(ctx context.Context) (bool, error) {
			me, err := e.myself(ctx, s.Inst)
			if err != nil {
				return false, nil
			}
			if me.IsMaster() && len(me.Slots) > 0 {
				return true, nil
			}
			// The masters refuse to vote for a replica of a master they voted about during the
			// last 2 x cluster-node-timeout (right after an automatic failover); a manual
			// failover whose election was refused is started again.
			if time.Since(last) > failoverRetry {
				last = time.Now()
				_, _ = e.c.do(ctx, s.Inst, "CLUSTER", "FAILOVER")
			}
			return false, nil
		})
}

// checkShardData samples up to sampleSize keys of instance i and checks that every one hashes to
// one of slots (the shard's). An instance without keys passes: the planner's sibling rule covers
// an empty replica. The error wraps errForeignKeys when a key of another slot was found.
func (e *executor) checkShardData(ctx context.Context, i int, slots []SlotRange) error {
	if len(slots) == 0 {
		return nil // no slot to hand over: nothing to protect
	}
	sample := e.c.sampleKeys(ctx, i, sampleSize)
	if sample.Err != nil {
		return fmt.Errorf("sample its keys: %w", sample.Err)
	}
	foreign := 0
	first := -1
	for _, sl := range sample.Slots {
		if !inRanges(sl, slots) {
			foreign++
			if first < 0 {
				first = sl
			}
		}
	}
	if foreign > 0 {
		return fmt.Errorf("%s %w: %d of %d sampled keys hash to slots outside %s (e.g. slot %d)",
			e.name(i), errForeignKeys, foreign, len(sample.Slots), FormatRanges(slots), first)
	}
	return nil
}
