package run

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/runbook/runbook/engine"
)

// probeCache holds the results of the probes run ahead of the tasks (Prober), per host. Any
// change made anywhere invalidates all of it: from then on modules read the hosts directly.
type probeCache struct {
	mu    sync.Mutex
	valid bool
	hosts map[string]map[string]engine.ExecResult
	hits  int
}

func newProbeCache() *probeCache {
	return &probeCache{valid: true, hosts: map[string]map[string]engine.ExecResult{}}
}

func (p *probeCache) get(host, cmd string) (engine.ExecResult, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.valid {
		return engine.ExecResult{}, false
	}
	res, ok := p.hosts[host][cmd]
	if ok {
		p.hits++
	}
	return res, ok
}

func (p *probeCache) put(host string, results map[string]engine.ExecResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hosts[host] = results
}

// invalidate drops every cached result: something changed.
func (p *probeCache) invalidate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.valid = false
	p.hosts = nil
}

// cachingConn answers a probe from the cache while it is valid and sends everything else on.
type cachingConn struct {
	engine.Conn
	host  string
	cache *probeCache
}

func (c cachingConn) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	if cmd.Stdin == nil {
		if res, ok := c.cache.get(c.host, cmd.Cmd); ok {
			return res, nil
		}
	}
	return c.Conn.Exec(ctx, cmd)
}

// Close closes the wrapped connection when it can be closed.
func (c cachingConn) Close() error {
	if cl, ok := c.Conn.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// prefetch runs, in one remote command per host, the probes of every task instance that can be
// decoded before anything runs (its arguments do not depend on other tasks' outputs), and fills
// the cache.
func (r *Runner) prefetch(ctx context.Context, hosts []string) {
	probes := map[string][]string{}
	seen := map[string]map[string]bool{}
	for _, t := range r.pb.Tasks {
		if t.RunOnce {
			continue
		}
		if _, ok := t.Module.New().(engine.Prober); !ok {
			continue
		}
		ths, diags := r.pb.TaskHosts(t)
		if diags.HasErrors() {
			continue
		}
		for _, h := range ths {
			if !r.inLimit(h) {
				continue
			}
			insts, err, d := r.pb.Expand(t, h, r.taskOutputs(t))
			if err != nil || d.HasErrors() {
				continue
			}
			for _, in := range insts {
				mod, err, d := r.pb.Decode(in, r.taskOutputs(t))
				if err != nil || d.HasErrors() {
					continue
				}
				for _, cmd := range mod.(engine.Prober).Probes() {
					if seen[h] == nil {
						seen[h] = map[string]bool{}
					}
					if !seen[h][cmd] {
						seen[h][cmd] = true
						probes[h] = append(probes[h], cmd)
					}
				}
			}
		}
	}
	var wg sync.WaitGroup
	for _, h := range hosts {
		cmds := probes[h]
		if len(cmds) < 2 {
			continue
		}
		r.mu.Lock()
		dead := r.failed[h]
		r.mu.Unlock()
		if dead {
			continue
		}
		wg.Add(1)
		go func(h string, cmds []string) {
			defer wg.Done()
			conn, err := r.pool.Conn(ctx, h)
			if err != nil {
				return
			}
			var tb [8]byte
			if _, err := rand.Read(tb[:]); err != nil {
				return
			}
			token := "RBPROBE-" + hex.EncodeToString(tb[:])
			res, err := conn.Exec(ctx, engine.Command{Cmd: probeScript(cmds, token)})
			if err != nil || res.ExitCode != 0 {
				return // the modules will read for themselves
			}
			results, err := parseProbeOutput(res.Stdout, cmds, token)
			if err != nil {
				r.emit(Event{Type: EventLog, Host: h, Summary: "probes read one by one: " + err.Error()})
				return
			}
			r.probes.put(h, results)
			r.emit(Event{Type: EventLog, Host: h, Summary: fmt.Sprintf("read the state of %d checks in one round trip", len(cmds))})
		}(h, cmds)
	}
	wg.Wait()
}

// probeScript runs the probes side by side, each in a subshell with its stdout, stderr and exit
// status kept apart, then prints them in order, framed by lines that carry a random token:
// "TOKEN o INDEX", stdout, "TOKEN e INDEX STATUS", stderr ... "TOKEN end". The framing is written
// by the shell itself and the files are printed by one cat, so the script forks little beyond
// the probes.
func probeScript(cmds []string, token string) string {
	var b strings.Builder
	b.WriteString("d=$(mktemp -d) || exit 1; trap 'rm -rf \"$d\"' EXIT\n")
	for i, c := range cmds {
		fmt.Fprintf(&b, "{ (\n%s\n) </dev/null >\"$d/%05d.2\" 2>\"$d/%05d.4\"; echo $? >\"$d/%05d.r\"; } &\n", c, i, i, i)
	}
	b.WriteString("wait\n")
	for i := range cmds {
		fmt.Fprintf(&b, "printf '\\n%s o %d\\n' >\"$d/%05d.1\"; read r <\"$d/%05d.r\"; printf '\\n%s e %d %%s\\n' \"$r\" >\"$d/%05d.3\"\n", token, i, i, i, token, i, i)
	}
	fmt.Fprintf(&b, "printf '\\n%s end\\n' >\"$d/99999.9\"; cat \"$d\"/?????.[1-49]\n", token)
	return b.String()
}

// parseProbeOutput reads what probeScript printed.
func parseProbeOutput(out []byte, cmds []string, token string) (map[string]engine.ExecResult, error) {
	results := make(map[string]engine.ExecResult, len(cmds))
	text := string(out)
	marker := "\n" + token + " "
	parts := strings.Split(text, marker)
	if len(parts) < 2 || parts[len(parts)-1] != "end\n" {
		return nil, fmt.Errorf("probe output cut short")
	}
	// parts[0] is empty (the output starts with a marker); then pairs of "o I\n<stdout>" and
	// "e I STATUS\n<stderr>", then "end\n"
	body := parts[1 : len(parts)-1]
	if len(body) != 2*len(cmds) {
		return nil, fmt.Errorf("probe output has %d sections, want %d", len(body), 2*len(cmds))
	}
	for k := 0; k < len(body); k += 2 {
		oh, stdout, ok1 := strings.Cut(body[k], "\n")
		eh, stderr, ok2 := strings.Cut(body[k+1], "\n")
		of, ef := strings.Fields(oh), strings.Fields(eh)
		if !ok1 || !ok2 || len(of) != 2 || len(ef) != 3 || of[0] != "o" || ef[0] != "e" || of[1] != ef[1] {
			return nil, fmt.Errorf("unexpected probe section %q / %q", oh, eh)
		}
		idx, err1 := strconv.Atoi(of[1])
		rc, err2 := strconv.Atoi(ef[2])
		if err1 != nil || err2 != nil || idx < 0 || idx >= len(cmds) {
			return nil, fmt.Errorf("unexpected probe section %q / %q", oh, eh)
		}
		results[cmds[idx]] = engine.ExecResult{Stdout: []byte(stdout), Stderr: []byte(stderr), ExitCode: rc}
	}
	return results, nil
}
