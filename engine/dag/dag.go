// Package dag is the task graph: nodes with dependencies, cycle detection with readable messages,
// and a parallel walk that skips the dependents of a failure.
package dag

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Graph is a directed acyclic graph of named nodes; an edge says one node depends on another.
// Node order of insertion is kept and used to break ties, so walks are deterministic.
type Graph struct {
	nodes []string
	index map[string]int
	deps  map[string]map[string]bool // node -> its dependencies
}

// New returns an empty graph.
func New() *Graph {
	return &Graph{index: map[string]int{}, deps: map[string]map[string]bool{}}
}

// Add adds a node; adding it twice is harmless.
func (g *Graph) Add(name string) {
	if _, ok := g.index[name]; ok {
		return
	}
	g.index[name] = len(g.nodes)
	g.nodes = append(g.nodes, name)
	g.deps[name] = map[string]bool{}
}

// Connect records that dependent depends on dependency. Both are added if missing.
func (g *Graph) Connect(dependent, dependency string) {
	g.Add(dependent)
	g.Add(dependency)
	g.deps[dependent][dependency] = true
}

// Nodes returns the nodes in insertion order.
func (g *Graph) Nodes() []string { return append([]string(nil), g.nodes...) }

// DependenciesOf returns the direct dependencies of name, in insertion order.
func (g *Graph) DependenciesOf(name string) []string {
	var out []string
	for d := range g.deps[name] {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return g.index[out[i]] < g.index[out[j]] })
	return out
}

// CycleError describes one dependency cycle, as a path that starts and ends at the same node.
type CycleError struct {
	Path []string
}

func (e *CycleError) Error() string {
	return "cycle: " + strings.Join(e.Path, " → ")
}

// Validate returns a *CycleError for each distinct cycle found (joined), or nil.
func (g *Graph) Validate() error {
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(g.nodes))
	var stack []string
	var errs []error
	seen := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range g.DependenciesOf(n) {
			switch color[d] {
			case white:
				visit(d)
			case grey:
				// the cycle is the stack from d to n, then d again
				i := len(stack) - 1
				for i >= 0 && stack[i] != d {
					i--
				}
				path := append(append([]string(nil), stack[i:]...), d)
				key := canonical(path[:len(path)-1])
				if !seen[key] {
					seen[key] = true
					errs = append(errs, &CycleError{Path: path})
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
	}
	for _, n := range g.nodes {
		if color[n] == white {
			visit(n)
		}
	}
	return errors.Join(errs...)
}

// canonical names a cycle independently of where it was entered.
func canonical(cycle []string) string {
	best := 0
	for i := range cycle {
		if cycle[i] < cycle[best] {
			best = i
		}
	}
	rot := append(append([]string(nil), cycle[best:]...), cycle[:best]...)
	return strings.Join(rot, "\x00")
}

// TopoOrder returns the nodes so that every node comes after its dependencies, ties broken by
// insertion order. The graph must be valid.
func (g *Graph) TopoOrder() []string {
	done := map[string]bool{}
	var out []string
	var visit func(n string)
	visit = func(n string) {
		if done[n] {
			return
		}
		done[n] = true
		for _, d := range g.DependenciesOf(n) {
			visit(d)
		}
		out = append(out, n)
	}
	for _, n := range g.nodes {
		visit(n)
	}
	return out
}

// ErrDependencyFailed is passed to skip callbacks for nodes whose dependency failed.
var ErrDependencyFailed = errors.New("a dependency failed")

// WalkFunc runs one node. An error marks the node failed and its dependents are skipped.
type WalkFunc func(ctx context.Context, name string) error

// SkipFunc is told about a node that is not run, with the failed dependency that caused it.
type SkipFunc func(name, failedDep string)

// Walk runs fn on every node once all its dependencies have succeeded, up to parallelism nodes at a
// time (0 means unlimited). Dependents of a failed node are not run; skip, when not nil, is told
// about each of them. Walk returns the failures joined, in insertion order.
func (g *Graph) Walk(ctx context.Context, parallelism int, fn WalkFunc, skip SkipFunc) error {
	if err := g.Validate(); err != nil {
		return err
	}
	n := len(g.nodes)
	if parallelism <= 0 || parallelism > n {
		parallelism = n
	}
	if n == 0 {
		return nil
	}
	dependents := map[string][]string{}
	waiting := map[string]int{}
	for _, node := range g.nodes {
		waiting[node] = len(g.deps[node])
		for d := range g.deps[node] {
			dependents[d] = append(dependents[d], node)
		}
	}
	type doneMsg struct {
		name string
		err  error
	}
	var (
		mu      sync.Mutex
		results = map[string]error{}
		ready   []string
		running int
		doneCh  = make(chan doneMsg)
		blamed  = map[string]string{} // skipped node -> failed dependency
	)
	for _, node := range g.nodes {
		if waiting[node] == 0 {
			ready = append(ready, node)
		}
	}
	finished := 0
	var markSkipped func(node, cause string)
	markSkipped = func(node, cause string) {
		if _, ok := blamed[node]; ok {
			return
		}
		blamed[node] = cause
		finished++
		if skip != nil {
			skip(node, cause)
		}
		for _, dep := range dependents[node] {
			markSkipped(dep, cause)
		}
	}
	for finished < n {
		for running < parallelism && len(ready) > 0 {
			sort.Slice(ready, func(i, j int) bool { return g.index[ready[i]] < g.index[ready[j]] })
			node := ready[0]
			ready = ready[1:]
			running++
			go func(node string) {
				err := fn(ctx, node)
				doneCh <- doneMsg{node, err}
			}(node)
		}
		if running == 0 {
			break // everything left was skipped
		}
		msg := <-doneCh
		running--
		finished++
		mu.Lock()
		results[msg.name] = msg.err
		mu.Unlock()
		for _, dep := range dependents[msg.name] {
			if msg.err != nil {
				markSkipped(dep, msg.name)
				continue
			}
			if _, skipped := blamed[dep]; skipped {
				continue
			}
			waiting[dep]--
			if waiting[dep] == 0 {
				ready = append(ready, dep)
			}
		}
	}
	var errs []error
	for _, node := range g.nodes {
		if err := results[node]; err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", node, err))
		}
	}
	return errors.Join(errs...)
}
