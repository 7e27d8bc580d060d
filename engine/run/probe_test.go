package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/lock"
)

// TestProbeScript runs the combined probe script with the local shell and parses its output back
// into each probe's own stdout, stderr and exit status.
func TestProbeScript(t *testing.T) {
	cmds := []string{
		`echo hello; echo world`,
		`printf 'no newline'; echo oops >&2; exit 3`,
		`p=/nonexistent; if [ -e "$p" ]; then echo yes; else echo absent; exit 0; fi`,
		`printf '\nRBPROBE-fake o 9\n'`, // output that looks like framing, with another token
		`true`,
	}
	const token = "RBPROBE-0123456789abcdef"
	for _, shell := range []string{"bash", "dash"} {
		if _, err := exec.LookPath(shell); err != nil {
			t.Logf("%s: not installed", shell)
			continue
		}
		t.Run(shell, func(t *testing.T) { testProbeScript(t, shell, cmds, token) })
	}
}

func testProbeScript(t *testing.T, shell string, cmds []string, token string) {
	var out, errOut bytes.Buffer
	c := exec.Command(shell, "-c", probeScript(cmds, token))
	c.Stdout, c.Stderr = &out, &errOut
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	got, err := parseProbeOutput(out.Bytes(), errOut.Bytes(), len(cmds), token)
	if err != nil {
		t.Fatalf("parse: %v\n%q\n%q", err, out.String(), errOut.String())
	}
	want := []engine.ExecResult{
		{Stdout: []byte("hello\nworld\n"), Stderr: []byte{}},
		{Stdout: []byte("no newline"), Stderr: []byte("oops\n"), ExitCode: 3},
		{Stdout: []byte("absent\n"), Stderr: []byte{}},
		{Stdout: []byte("\nRBPROBE-fake o 9\n"), Stderr: []byte{}},
		{Stdout: []byte{}, Stderr: []byte{}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if _, err := parseProbeOutput(out.Bytes()[:out.Len()-5], errOut.Bytes(), len(cmds), token); err == nil {
		t.Error("a cut output parsed without error")
	}
	if _, err := parseProbeOutput(out.Bytes(), errOut.Bytes()[:errOut.Len()-5], len(cmds), token); err == nil {
		t.Error("a cut error output parsed without error")
	}
}

// localShell runs commands with the local bash and counts them.
type localShell struct {
	mu    sync.Mutex
	execs []string
}

func (l *localShell) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	l.mu.Lock()
	l.execs = append(l.execs, cmd.Cmd)
	l.mu.Unlock()
	c := exec.CommandContext(ctx, "bash", "-c", cmd.Cmd)
	if cmd.Stdin != nil {
		c.Stdin = cmd.Stdin
	}
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if cmd.Stdout != nil {
		c.Stdout = io.MultiWriter(&stdout, cmd.Stdout)
	}
	if cmd.Stderr != nil {
		c.Stderr = io.MultiWriter(&stderr, cmd.Stderr)
	}
	err := c.Run()
	res := engine.ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.ExitCode = ee.ExitCode()
		err = nil
	}
	return res, err
}

func (l *localShell) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, errors.New("no dial")
}

// runLocal runs the playbook at play with the local shell as its only host's connection.
func runLocal(t *testing.T, play string, reg *engine.Registry, mode Mode) (*Recap, *localShell) {
	t.Helper()
	return runLocalLocked(t, play, reg, mode, nil)
}

// runLocalLocked is runLocal taking the run lock with lk.
func runLocalLocked(t *testing.T, play string, reg *engine.Registry, mode Mode, lk *lock.Options) (*Recap, *localShell) {
	t.Helper()
	return runLocalWith(t, play, reg, Options{Mode: mode, Lock: lk})
}

// runLocalSink is runLocal with every event given to sink.
func runLocalSink(t *testing.T, play string, reg *engine.Registry, mode Mode, sink func(Event)) (*Recap, *localShell) {
	t.Helper()
	return runLocalWith(t, play, reg, Options{Mode: mode, Sink: SinkFunc(sink)})
}

// loadPlay loads the playbook at play with the modules of reg; it fails the test on an error.
func loadPlay(t *testing.T, play string, reg *engine.Registry) *config.Playbook {
	t.Helper()
	pb, diags := config.Load(config.Options{Playbook: play, Registry: reg})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return pb
}

// runLocalWith runs the playbook at play with opts and the local shell as every host's connection.
func runLocalWith(t *testing.T, play string, reg *engine.Registry, opts Options) (*Recap, *localShell) {
	t.Helper()
	pb := loadPlay(t, play, reg)
	sh := &localShell{}
	opts.Connector = ConnectorFunc(func(context.Context, *config.Host) (engine.Conn, error) { return sh, nil })
	rc, err := New(pb, opts).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rc, sh
}

// marker ensures a file exists; its probe is `cat FILE`.
type marker struct {
	Path string `hcl:"path,attr"`
}

func (m *marker) Probes() []string { return []string{"cat " + m.Path + " 2>/dev/null || echo missing"} }

func (m *marker) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	out, err := engine.Run(ctx, t.Conn(), m.Probes()[0])
	if err != nil {
		return engine.Outcome{}, err
	}
	if strings.TrimSpace(string(out)) == "here" {
		return engine.Outcome{Summary: "present"}, nil
	}
	return engine.Outcome{Summary: "created"}, t.Change(ctx, engine.Change{Summary: "create " + m.Path}, func(ctx context.Context) error {
		_, err := engine.Run(ctx, t.Conn(), "echo here > "+m.Path)
		return err
	})
}

// markerPlay writes, in dir, a playbook of four tasks m0..m3 of module mod that each ensure a file
// f0..f3 of dir, of which f2 exists already; it returns the playbook's path.
func markerPlay(t *testing.T, dir, mod string) string {
	t.Helper()
	src := `host "local" { address = "127.0.0.1" }` + "\n"
	for i := 0; i < 4; i++ {
		src += fmt.Sprintf("task \"m%d\" {\n  %s {\n    path = %q\n  }\n}\n", i, mod, filepath.Join(dir, fmt.Sprintf("f%d", i)))
	}
	play := filepath.Join(dir, "play.hcl")
	for name, content := range map[string]string{play: src, filepath.Join(dir, "f2"): "here\n"} {
		if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return play
}

// TestPrefetch: an unchanged host costs one remote command for every probing task; once anything
// changes, what was read ahead is not used any more.
func TestPrefetch(t *testing.T) {
	dir := t.TempDir()
	play := markerPlay(t, dir, "marker")
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "marker", New: func() engine.Module { return &marker{} }})
	run := func(mode Mode) (*Recap, *localShell) { return runLocal(t, play, reg, mode) }
	rc, sh := run(Apply)
	if rc.Changed != 3 || rc.OK != 1 {
		t.Fatalf("first apply: %+v", rc)
	}
	for i := 0; i < 4; i++ {
		if b, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("f%d", i))); strings.TrimSpace(string(b)) != "here" {
			t.Errorf("f%d = %q after apply", i, b)
		}
	}
	t.Logf("first apply: %d remote commands", len(sh.execs))

	rc, sh = run(Apply)
	if rc.Changed != 0 || rc.OK != 4 {
		t.Fatalf("second apply: %+v", rc)
	}
	if len(sh.execs) != 1 {
		t.Errorf("no-op apply ran %d remote commands, want 1 (all probes in one):\n%s", len(sh.execs), strings.Join(sh.execs, "\n---\n"))
	}
}

// pathMarker is a marker whose change says what it writes: its file.
type pathMarker struct {
	Path string `hcl:"path,attr"`
}

// scopedMarker is a pathMarker that also says what its probe reads: its file.
type scopedMarker struct {
	Path string `hcl:"path,attr"`
}

func (m *pathMarker) Probes() []string       { return (&marker{Path: m.Path}).Probes() }
func (m *scopedMarker) Probes() []string     { return (&marker{Path: m.Path}).Probes() }
func (m *scopedMarker) ProbePaths() []string { return []string{m.Path} }
func (m *scopedMarker) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	return (&pathMarker{Path: m.Path}).Run(ctx, t)
}
func (m *pathMarker) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	out, err := engine.Run(ctx, t.Conn(), m.Probes()[0])
	if err != nil {
		return engine.Outcome{}, err
	}
	if strings.TrimSpace(string(out)) == "here" {
		return engine.Outcome{Summary: "present"}, nil
	}
	return engine.Outcome{Summary: "created"}, t.Change(ctx, engine.Change{Summary: "create " + m.Path, Writes: []string{m.Path}}, func(ctx context.Context) error {
		_, err := engine.Run(ctx, t.Conn(), "echo here > "+m.Path)
		return err
	})
}

// TestPrefetchKeepsWhatAChangeCannotTouch: after a change that names the paths it writes, the
// probes of other paths are still answered from the read-ahead; the probe of a written path, and
// a probe that does not say what it reads, are read again, and everything after a change that
// does not say what it writes.
func TestPrefetchKeepsWhatAChangeCannotTouch(t *testing.T) {
	dir := t.TempDir()
	f := func(n string) string { return filepath.Join(dir, n) }
	play := filepath.Join(dir, "play.hcl")
	// a chain of tasks, each depending on the one before: name, module, file
	chain := [][3]string{
		{"a", "scoped", "f0"}, {"b", "scoped", "f1"}, {"c", "pathmarker", "f2"}, {"d", "scoped", "f0"},
		{"e", "scoped", "f3"}, {"g", "marker", "f4"}, {"h", "scoped", "f5"},
	}
	src := `host "local" { address = "127.0.0.1" }` + "\n"
	for i, c := range chain {
		dep := ""
		if i > 0 {
			dep = "  depends_on = [task." + chain[i-1][0] + "]\n"
		}
		src += fmt.Sprintf("task %q {\n%s  %s { path = %q }\n}\n", c[0], dep, c[1], f(c[2]))
	}
	os.WriteFile(play, []byte(src), 0o644)
	os.WriteFile(f("f3"), []byte("here\n"), 0o644)
	os.WriteFile(f("f5"), []byte("here\n"), 0o644)
	reg := engine.NewRegistry(
		engine.ModuleInfo{Name: "marker", New: func() engine.Module { return &marker{} }},
		engine.ModuleInfo{Name: "pathmarker", New: func() engine.Module { return &pathMarker{} }},
		engine.ModuleInfo{Name: "scoped", New: func() engine.Module { return &scopedMarker{} }},
	)
	rc, sh := runLocal(t, play, reg, Apply)
	// a, b, c create their files; c's probe, of unknown scope, is read again after b's change;
	// d finds f0 that a wrote (read again: a cached "missing" would make it write again); e
	// finds f3 from the read-ahead; g's change may have touched anything: h reads f5 again.
	if rc.Changed != 4 || rc.OK != 3 {
		t.Fatalf("apply: %+v", rc)
	}
	alone := map[string]int{}
	for _, c := range sh.execs {
		alone[c]++
	}
	want := map[string]int{"f0": 1, "f1": 0, "f2": 1, "f3": 0, "f4": 1, "f5": 1}
	for n, w := range want {
		if got := alone[(&marker{Path: f(n)}).Probes()[0]]; got != w {
			t.Errorf("probe of %s run alone %d times, want %d", n, got, w)
		}
	}
	if len(sh.execs) != 1+4+4 {
		t.Errorf("%d remote commands, want 9 (read-ahead, 4 writes, 4 probes read again):\n%s", len(sh.execs), strings.Join(sh.execs, "\n---\n"))
	}
}

// TestForEachElementsReadTogether: the elements of a for_each task start together, so each reads
// its probe from the read-ahead even after a sibling changed something of unknown reach.
func TestForEachElementsReadTogether(t *testing.T) {
	dir := t.TempDir()
	play := filepath.Join(dir, "play.hcl")
	src := `host "local" { address = "127.0.0.1" }
task "m" {
  for_each = ["a", "b", "c", "d"]
  marker { path = "` + dir + `/${each.key}" }
}
`
	if err := os.WriteFile(play, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "c"), []byte("here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "marker", New: func() engine.Module { return &marker{} }})
	for round := 0; round < 10; round++ { // the order the elements run in is the scheduler's
		for _, n := range []string{"a", "b", "d"} {
			os.Remove(filepath.Join(dir, n))
		}
		rc, sh := runLocal(t, play, reg, Apply)
		if rc.Changed != 3 || rc.OK != 1 {
			t.Fatalf("apply: %+v", rc)
		}
		if len(sh.execs) != 1+3 {
			t.Fatalf("%d remote commands, want 4 (read-ahead, 3 writes):\n%s", len(sh.execs), strings.Join(sh.execs, "\n---\n"))
		}
		for _, n := range []string{"a", "b", "d"} {
			if b, err := os.ReadFile(filepath.Join(dir, n)); err != nil || string(b) != "here\n" {
				t.Fatalf("%s: %q, %v", n, b, err)
			}
		}
	}
}

// hostMarker writes its file, and also's when set, every time; its change says it acts on its
// host only (as a service start does).
type hostMarker struct {
	Path string `hcl:"path,attr"`
	Also string `hcl:"also,optional"`
}

func (m *hostMarker) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	cmd := "echo here > " + m.Path
	if m.Also != "" {
		cmd += "; echo here > " + m.Also
	}
	return engine.Outcome{Summary: "written"}, t.Change(ctx, engine.Change{Summary: "write " + m.Path, HostOnly: true}, func(ctx context.Context) error {
		_, err := engine.Run(ctx, t.Conn(), cmd)
		return err
	})
}

// TestForEachElementsReadAgainTogether: when a change on the host made what was read ahead of a
// for_each task's elements untrue, they read it again in one remote command, not one each, and
// each acts on what it read then (c, which the change wrote, is found there).
func TestForEachElementsReadAgainTogether(t *testing.T) {
	dir := t.TempDir()
	play := filepath.Join(dir, "play.hcl")
	src := `host "local" { address = "127.0.0.1" }
task "first" {
  hostmarker {
    path = "` + dir + `/first"
    also = "` + dir + `/c"
  }
}
task "m" {
  depends_on = [task.first]
  for_each   = ["a", "b", "c", "d"]
  marker { path = "` + dir + `/${each.key}" }
}
`
	if err := os.WriteFile(play, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := engine.NewRegistry(
		engine.ModuleInfo{Name: "marker", New: func() engine.Module { return &marker{} }},
		engine.ModuleInfo{Name: "hostmarker", New: func() engine.Module { return &hostMarker{} }},
	)
	for round := 0; round < 5; round++ { // the order the elements run in is the scheduler's
		for _, n := range []string{"a", "b", "c", "d"} {
			os.Remove(filepath.Join(dir, n))
		}
		rc, sh := runLocal(t, play, reg, Apply)
		if rc.Changed != 1+3 || rc.OK != 1 {
			t.Fatalf("apply: %+v, want first and a, b, d changed, c found:\n%s", rc, strings.Join(sh.execs, "\n---\n"))
		}
		alone := 0
		for _, c := range sh.execs {
			for _, n := range []string{"a", "b", "c", "d"} {
				if c == (&marker{Path: filepath.Join(dir, n)}).Probes()[0] {
					alone++
				}
			}
		}
		if len(sh.execs) != 1+1+1+3 || alone != 0 {
			t.Fatalf("%d remote commands (%d probes alone), want 6 (read-ahead, first's change, one read of the 4 probes, 3 writes):\n%s", len(sh.execs), alone, strings.Join(sh.execs, "\n---\n"))
		}
		for _, n := range []string{"a", "b", "c", "d"} {
			if b, err := os.ReadFile(filepath.Join(dir, n)); err != nil || string(b) != "here\n" {
				t.Fatalf("%s: %q, %v", n, b, err)
			}
		}
	}
}

// hostsReader is a run-once module that reads two files on every host of the run through
// Target.Hosts, and says so (HostsProber).
type hostsReader struct {
	Dir   string   `hcl:"dir,attr"`
	Hosts []string `hcl:"hosts,attr"`
}

func (m *hostsReader) cmds(h string) []string {
	return []string{"cat " + filepath.Join(m.Dir, h+"-a"), "cat " + filepath.Join(m.Dir, h+"-b")}
}

func (m *hostsReader) HostProbes() []engine.HostProbe {
	var out []engine.HostProbe
	for _, h := range m.Hosts {
		for i, c := range m.cmds(h) {
			out = append(out, engine.HostProbe{Host: h, Cmd: c, Paths: []string{filepath.Join(m.Dir, h+"-"+string(rune('a'+i)))}})
		}
	}
	return out
}

func (m *hostsReader) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	var got []string
	for _, h := range m.Hosts {
		c, err := t.Hosts().Conn(ctx, h)
		if err != nil {
			return engine.Outcome{}, err
		}
		for _, cmd := range m.cmds(h) {
			out, err := engine.Run(ctx, c, cmd)
			if err != nil {
				return engine.Outcome{}, err
			}
			got = append(got, strings.TrimSpace(string(out)))
		}
	}
	return engine.Outcome{Summary: strings.Join(got, " ")}, nil
}

// TestPrefetchHostProbes: what a run-once task reads on the other hosts is read ahead with each
// host's checks, and the task's commands are answered from it.
func TestPrefetchHostProbes(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"h1-a", "h1-b", "h2-a", "h2-b"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	play := filepath.Join(dir, "play.hcl")
	src := `host "h1" { address = "127.0.0.1" }
host "h2" { address = "127.0.0.2" }
task "read" {
  reader {
    dir   = "` + dir + `"
    hosts = ["h1", "h2"]
  }
}
`
	if err := os.WriteFile(play, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "reader", New: func() engine.Module { return &hostsReader{} }, RunOnce: true})
	rc, sh := runLocal(t, play, reg, Apply)
	if rc.OK != 1 {
		t.Fatalf("apply: %+v", rc)
	}
	if len(sh.execs) != 2 {
		t.Fatalf("%d remote commands, want 2 (each host's read-ahead):\n%s", len(sh.execs), strings.Join(sh.execs, "\n---\n"))
	}
	for _, e := range sh.execs {
		if !strings.Contains(e, "RBPROBE-") {
			t.Errorf("a command outside the read-ahead: %q", e)
		}
	}
}

// pairReader is a run-once module that reads two files of every host in one cat(1), a command
// whose answer a batch gives in two parts (HostProbe.Parts).
type pairReader struct {
	Dir   string   `hcl:"dir,attr"`
	Hosts []string `hcl:"hosts,attr"`
	batch *catBatch
}

func (m *pairReader) files(h string) []string {
	return []string{filepath.Join(m.Dir, h+"-a"), filepath.Join(m.Dir, h+"-b")}
}

func (m *pairReader) cmd(h string) string { return "cat " + strings.Join(m.files(h), " ") }

func (m *pairReader) HostProbes() []engine.HostProbe {
	var out []engine.HostProbe
	for _, h := range m.Hosts {
		p := engine.HostProbe{Host: h, Cmd: m.cmd(h), Paths: m.files(h)}
		for _, f := range m.files(h) {
			p.Parts = append(p.Parts, engine.BatchPart{Probe: p.Cmd, Batch: m.batch, Arg: f})
		}
		out = append(out, p)
	}
	return out
}

func (m *pairReader) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	var got []string
	for _, h := range m.Hosts {
		c, err := t.Hosts().Conn(ctx, h)
		if err != nil {
			return engine.Outcome{}, err
		}
		out, err := engine.Run(ctx, c, m.cmd(h))
		if err != nil {
			return engine.Outcome{}, err
		}
		got = append(got, strings.Fields(string(out))...)
	}
	return engine.Outcome{Summary: strings.Join(got, " ")}, nil
}

// TestPrefetchHostProbeParts: a host probe made of batch parts is read by the host's batch with
// the other tasks' parts (one command for all), and the module's own command is answered with the
// parts joined, byte for byte what it prints alone.
func TestPrefetchHostProbeParts(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"h1-a", "h1-b"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "m"), []byte("here\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	play := filepath.Join(dir, "play.hcl")
	src := fmt.Sprintf(`host "h1" { address = "127.0.0.1" }
task "read" {
  pair {
    dir   = %q
    hosts = ["h1"]
  }
}
task "m" {
  batched { path = %q }
}
`, dir, filepath.Join(dir, "m"))
	if err := os.WriteFile(play, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	batch := &catBatch{}
	reg := engine.NewRegistry(
		engine.ModuleInfo{Name: "pair", New: func() engine.Module { return &pairReader{batch: batch} }, RunOnce: true},
		engine.ModuleInfo{Name: "batched", New: func() engine.Module { return &batchedMarker{batch: batch} }},
	)
	var sum string
	rc, sh := runLocalSink(t, play, reg, Apply, func(e Event) {
		if e.Type == EventResult && e.Task == "read" {
			sum = e.Summary
		}
	})
	if rc.OK != 2 || rc.Failed != 0 {
		t.Fatalf("apply: %+v", rc)
	}
	if sum != "h1-a h1-b" {
		t.Errorf("the reader saw %q, want \"h1-a h1-b\"", sum)
	}
	if len(sh.execs) != 1 {
		t.Fatalf("%d remote commands, want 1 (the read-ahead):\n%s", len(sh.execs), strings.Join(sh.execs, "\n---\n"))
	}
	want := [][]string{{filepath.Join(dir, "h1-a"), filepath.Join(dir, "h1-b"), filepath.Join(dir, "m")}}
	if !cmp.Equal(batch.args, want) {
		t.Errorf("batch commands for %q, want one for %q", batch.args, want)
	}
}

// TestProbeScope: which probes a change of known paths on a host makes untrue.
func TestProbeScope(t *testing.T) {
	a := func(p ...string) []string { return p }
	for _, tc := range []struct {
		name            string
		scope           probeScope
		writes, removes []string
		hostOnly        bool
		untrue          bool
	}{
		{"same path", probeScope{paths: a("/etc/redis/a.conf")}, a("/etc/redis/a.conf"), nil, false, true},
		{"sibling", probeScope{paths: a("/etc/redis/a.conf")}, a("/etc/redis/b.conf"), nil, false, false},
		{"prefix that is no parent", probeScope{paths: a("/etc/redis/a.conf")}, a("/etc/redis/a.con"), nil, false, false},
		{"write under the read directory", probeScope{paths: a("/etc/redis")}, a("/etc/redis/a.conf"), nil, false, true},
		{"parent's owner set", probeScope{paths: a("/etc/redis/a.conf")}, a("/etc/redis"), nil, false, false},
		{"parent removed", probeScope{paths: a("/etc/redis/a.conf")}, nil, a("/etc/redis"), false, true},
		{"removed under the read directory", probeScope{paths: a("/etc/redis")}, nil, a("/etc/redis/a.conf"), false, true},
		{"sibling removed", probeScope{paths: a("/etc/redis/a.conf")}, nil, a("/etc/redis/b.conf"), false, false},
		{"root removed", probeScope{paths: a("/etc/redis/a.conf")}, nil, a("/"), false, true},
		{"one of several", probeScope{paths: a("/proc", "/run/redis/a.pid")}, a("/tmp/x"), a("/run/redis"), false, true},
		{"unknown reads", probeScope{}, a("/tmp/x"), nil, false, true},
		{"root probe", probeScope{root: true}, a("/tmp/x"), nil, false, true},
		{"anything on its host", probeScope{paths: a("/etc/redis/a.conf")}, nil, nil, true, true},
		{"anything on its host, a probe of /proc", probeScope{paths: a("/proc", "/run/redis/a.pid")}, nil, nil, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			what, known := reachOf(engine.Change{Writes: tc.writes, Removes: tc.removes, HostOnly: tc.hostOnly})
			if !known {
				t.Fatal("reach unknown")
			}
			if got := tc.scope.untrueAfter(what); got != tc.untrue {
				t.Errorf("untrueAfter(%+v) = %v, want %v", what, got, tc.untrue)
			}
		})
	}
	for _, c := range []engine.Change{{}, {Writes: a("/etc/x", "relative")}, {Writes: a("/etc/x"), Removes: a("rel")}} {
		if _, known := reachOf(c); known {
			t.Errorf("%+v: reach known, want unknown", c)
		}
	}
	if w, _ := reachOf(engine.Change{Writes: a("/etc/x/../y/")}); len(w.writes) != 1 || w.writes[0] != "/etc/y" {
		t.Errorf("reachOf = %+v, want writes [/etc/y]", w)
	}
	if s := scopeOf(&scopedMarker{Path: "rel"}); s.paths != nil {
		t.Errorf("a relative probe path is of unknown scope, got %+v", s)
	}
	if s := (probeScope{paths: []string{"/a"}}).merge(probeScope{}); s.paths != nil || s.root {
		t.Errorf("shared with a probe of unknown scope: %+v", s)
	}
}

// TestInvalidateAcrossHosts: what one change on node1 leaves of both hosts' read-ahead.
func TestInvalidateAcrossHosts(t *testing.T) {
	scoped := func(p string) cachedProbe { return cachedProbe{scope: probeScope{paths: []string{p}}} }
	for _, tc := range []struct {
		name   string
		change engine.Change
		// what is left afterwards, per host; nil: nothing can be answered any more
		left1, left2 []string
	}{
		{"paths", engine.Change{Writes: []string{"/etc/a"}}, []string{"b"}, []string{"a", "b", "unscoped"}},
		{"host only", engine.Change{HostOnly: true}, []string{}, []string{"a", "b", "unscoped"}},
		{"unknown", engine.Change{}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cache := newProbeCache()
			for _, h := range []string{"node1", "node2"} {
				if !cache.put(h, map[string]cachedProbe{
					"a": scoped("/etc/a"), "b": scoped("/etc/b"), "root": {scope: probeScope{root: true}},
					map[string]string{"node1": "unscoped2", "node2": "unscoped"}[h]: {},
				}, cache.mark(h)) {
					t.Fatalf("put %s refused", h)
				}
			}
			cache.invalidate("node1", tc.change)
			for h, want := range map[string][]string{"node1": tc.left1, "node2": tc.left2} {
				var got []string
				for _, cmd := range []string{"a", "b", "root", "unscoped", "unscoped2"} {
					if _, ok := cache.get(h, cmd); ok {
						got = append(got, cmd)
					}
				}
				if want == nil {
					want = []string{}
				}
				if got == nil {
					got = []string{}
				}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("%s: left %v, want %v", h, got, want)
				}
			}
			// a read of node2 begun before the change is stored unless the change's reach is unknown
			since := cache.mark("node2")
			cache.invalidate("node1", tc.change)
			if stored := cache.put("node2", map[string]cachedProbe{"x": {}}, since); stored != (tc.left2 != nil) {
				t.Errorf("node2's read across the change stored: %v", stored)
			}
		})
	}
}

// TestCacheMissingAndPut: missing names what a host's cache does not answer, once each, and
// nothing while the host is being read or once the cache is given up; put adds to what is there.
func TestCacheMissingAndPut(t *testing.T) {
	cache := newProbeCache()
	cache.expect("h")
	if _, ok := cache.missing("h", []string{"a"}); ok {
		t.Error("missing answered while the host's probes are being read")
	}
	if !cache.put("h", map[string]cachedProbe{"a": {}, "b": {}}, cache.mark("h")) {
		t.Fatal("first put refused")
	}
	cache.done("h")
	if !cache.put("h", map[string]cachedProbe{"c": {}}, cache.mark("h")) {
		t.Fatal("second put refused")
	}
	for _, cmd := range []string{"a", "b", "c"} {
		if _, ok := cache.get("h", cmd); !ok {
			t.Errorf("%s lost by a later put", cmd)
		}
	}
	got, ok := cache.missing("h", []string{"a", "d", "c", "e", "d"})
	if !ok || strings.Join(got, " ") != "d e" {
		t.Errorf("missing = %q, %v; want [d e], true", got, ok)
	}
	if got, ok := cache.missing("other", []string{"a"}); !ok || len(got) != 1 {
		t.Errorf("missing on a host never read = %q, %v; want [a], true", got, ok)
	}
	cache.invalidate("h", engine.Change{}) // unknown reach: given up for good
	if _, ok := cache.missing("h", []string{"a"}); ok {
		t.Error("missing answered after the cache was given up")
	}
}

// TestPrefetchInLockSession: with the run lock, the checks are read in the session that takes it:
// a no-op apply is that one remote command, and a first apply uses what it read.
func TestPrefetchInLockSession(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	dir := t.TempDir()
	play := markerPlay(t, dir, "scoped")
	reg := engine.NewRegistry(engine.ModuleInfo{Name: "scoped", New: func() engine.Module { return &scopedMarker{} }})
	lk := &lock.Options{Path: filepath.Join(dir, "run.lock")}
	rc, sh := runLocalLocked(t, play, reg, Apply, lk)
	if rc.Changed != 3 || rc.OK != 1 {
		t.Fatalf("first apply: %+v", rc)
	}
	if len(sh.execs) != 4 || !strings.Contains(sh.execs[0], "flock") || !strings.Contains(sh.execs[0], "RBPROBE-") {
		t.Errorf("first apply: %d remote commands, want the lock with the checks and 3 writes:\n%s", len(sh.execs), strings.Join(sh.execs, "\n---\n"))
	}
	rc, sh = runLocalLocked(t, play, reg, Apply, lk)
	if rc.Changed != 0 || rc.OK != 4 {
		t.Fatalf("second apply: %+v", rc)
	}
	if len(sh.execs) != 1 {
		t.Errorf("no-op apply ran %d remote commands, want 1 (the lock with the checks):\n%s", len(sh.execs), strings.Join(sh.execs, "\n---\n"))
	}
}

// batchedMarker is a marker whose probes cat(1) reads together.
type batchedMarker struct {
	Path  string `hcl:"path,attr"`
	batch *catBatch
}

func (m *batchedMarker) marker() *marker  { return &marker{Path: m.Path} }
func (m *batchedMarker) Probes() []string { return m.marker().Probes() }
func (m *batchedMarker) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	return m.marker().Run(ctx, t)
}

func (m *batchedMarker) BatchParts() []engine.BatchPart {
	return []engine.BatchPart{{Probe: m.Probes()[0], Batch: m.batch, Arg: m.Path}}
}

// catBatch answers markers' probes with one cat of all their files, each of which holds one line.
type catBatch struct {
	broken bool // Split refuses
	args   [][]string
}

func (b *catBatch) Key() string { return "cat" }

func (b *catBatch) Command(args []string) string {
	b.args = append(b.args, args)
	s := "for f in"
	for _, a := range args {
		s += " " + engine.ShellQuote(a)
	}
	return s + `; do cat "$f" 2>/dev/null || echo missing; done`
}

func (b *catBatch) Split(res engine.ExecResult, args []string) ([]engine.ExecResult, error) {
	lines := strings.SplitAfter(string(res.Stdout), "\n")
	if b.broken || len(lines) != len(args)+1 {
		return nil, fmt.Errorf("%d lines for %d files", len(lines)-1, len(args))
	}
	out := make([]engine.ExecResult, len(args))
	for i := range args {
		out[i] = engine.ExecResult{Stdout: []byte(lines[i]), Stderr: []byte{}}
	}
	return out, nil
}

// TestPrefetchBatches: the probes of a batch are read by one command in the read-ahead script,
// which stands for each of them; a batch that cannot split its answer leaves its probes to
// their modules, and the run is right either way.
func TestPrefetchBatches(t *testing.T) {
	for _, broken := range []bool{false, true} {
		t.Run(fmt.Sprintf("broken=%v", broken), func(t *testing.T) {
			dir := t.TempDir()
			play := filepath.Join(dir, "play.hcl")
			src := `host "local" { address = "127.0.0.1" }
`
			for i := 0; i < 3; i++ {
				src += fmt.Sprintf("task \"b%d\" {\n  batched {\n    path = %q\n  }\n}\n", i, filepath.Join(dir, fmt.Sprintf("b%d", i)))
			}
			src += fmt.Sprintf("task \"alone\" {\n  marker {\n    path = %q\n  }\n}\n", filepath.Join(dir, "m"))
			os.WriteFile(play, []byte(src), 0o644)
			batch := &catBatch{broken: broken}
			reg := engine.NewRegistry(
				engine.ModuleInfo{Name: "marker", New: func() engine.Module { return &marker{} }},
				engine.ModuleInfo{Name: "batched", New: func() engine.Module { return &batchedMarker{batch: batch} }},
			)
			run := func() (*Recap, *localShell) { return runLocal(t, play, reg, Apply) }
			os.WriteFile(filepath.Join(dir, "b1"), []byte("here\n"), 0o644)
			if rc, _ := run(); rc.Changed != 3 || rc.OK != 1 {
				t.Fatalf("first apply: %+v", rc)
			}
			batch.args = nil
			rc, sh := run()
			if rc.Changed != 0 || rc.OK != 4 {
				t.Fatalf("second apply: %+v", rc)
			}
			if want := [][]string{{filepath.Join(dir, "b0"), filepath.Join(dir, "b1"), filepath.Join(dir, "b2")}}; !cmp.Equal(batch.args, want) {
				t.Errorf("batch commands for %q, want one for %q", batch.args, want)
			}
			script := sh.execs[0]
			if strings.Contains(script, "cat "+filepath.Join(dir, "b0")) || !strings.Contains(script, "cat "+filepath.Join(dir, "m")) {
				t.Errorf("the script runs the batched probes alone, or not the other one:\n%s", script)
			}
			want := 1 // the script answers everything
			if broken {
				want = 1 + 3 // each batched marker reads its own file
			}
			if len(sh.execs) != want {
				t.Errorf("no-op apply ran %d remote commands, want %d:\n%s", len(sh.execs), want, strings.Join(sh.execs, "\n---\n"))
			}
		})
	}
}

// query is a readonly query: a RootProber.
type query struct {
	Cmd string `hcl:"cmd,attr"`
}

func (q *query) Probes() []string  { return []string{q.Cmd} }
func (q *query) ProbesAtRootOnly() {}
func (q *query) Run(ctx context.Context, t *engine.Target) (engine.Outcome, error) {
	out, err := engine.Run(ctx, t.Conn(), q.Cmd)
	return engine.Outcome{Summary: strings.TrimSpace(string(out))}, err
}

// TestPrefetchRootOnly: the probes of a RootProber are read ahead only when its task depends on
// no other task.
func TestPrefetchRootOnly(t *testing.T) {
	dir := t.TempDir()
	play := filepath.Join(dir, "play.hcl")
	f := filepath.Join(dir, "f")
	os.WriteFile(f, []byte("here\n"), 0o644)
	src := fmt.Sprintf(`host "local" { address = "127.0.0.1" }
task "root_query" {
  query { cmd = "echo root" }
}
task "m" {
  marker { path = %q }
}
task "later_query" {
  depends_on = [task.m]
  query { cmd = "echo later" }
}
`, f)
	os.WriteFile(play, []byte(src), 0o644)
	reg := engine.NewRegistry(
		engine.ModuleInfo{Name: "marker", New: func() engine.Module { return &marker{} }},
		engine.ModuleInfo{Name: "query", New: func() engine.Module { return &query{} }},
	)
	pb := loadPlay(t, play, reg)
	sh := &localShell{}
	rc, err := New(pb, Options{Mode: Apply, Connector: ConnectorFunc(func(context.Context, *config.Host) (engine.Conn, error) { return sh, nil })}).Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rc.Changed != 0 || rc.OK != 3 {
		t.Fatalf("apply: %+v", rc)
	}
	if len(sh.execs) != 2 || sh.execs[1] != "echo later" {
		t.Fatalf("want the batch (root query and marker) then the later query alone, got %d commands:\n%s", len(sh.execs), strings.Join(sh.execs, "\n---\n"))
	}
	if !strings.Contains(sh.execs[0], "echo root") || strings.Contains(sh.execs[0], "echo later") {
		t.Errorf("batch:\n%s", sh.execs[0])
	}
}

// signalConn reports its calls on channels.
type signalConn struct {
	execs, dials chan string
}

func (c signalConn) Exec(_ context.Context, cmd engine.Command) (engine.ExecResult, error) {
	c.execs <- cmd.Cmd
	return engine.ExecResult{}, nil
}

func (c signalConn) DialContext(_ context.Context, _, addr string) (net.Conn, error) {
	c.dials <- addr
	return nil, errors.New("no dial")
}

// TestCommandsWaitForTheirHostsProbes: while a host's probes are read, its commands wait for them;
// its forwarded connections do not.
func TestCommandsWaitForTheirHostsProbes(t *testing.T) {
	cache := newProbeCache()
	cache.expect("node1")
	inner := signalConn{execs: make(chan string, 1), dials: make(chan string, 1)}
	c := cachingConn{Conn: inner, host: "node1", cache: cache}
	go c.Exec(context.Background(), engine.Command{Cmd: "cat /etc/x"})
	go c.DialContext(context.Background(), "tcp", "10.0.0.1:6379")
	select {
	case <-inner.dials:
	case <-time.After(10 * time.Second):
		t.Fatal("a forwarded connection waited for the probes")
	}
	select {
	case cmd := <-inner.execs:
		t.Fatalf("%q ran before the host's probes were in", cmd)
	case <-time.After(50 * time.Millisecond):
	}
	cache.put("node1", map[string]cachedProbe{}, cache.mark("node1"))
	cache.done("node1")
	select {
	case <-inner.execs:
	case <-time.After(10 * time.Second):
		t.Fatal("the command still waits after the probes came in")
	}
	// results read across a change are not kept
	cache.expect("node2")
	since := cache.mark("node2")
	cache.invalidate("node2", engine.Change{Summary: "write", Writes: []string{"/etc/y"}})
	if cache.put("node2", map[string]cachedProbe{"x": {}}, since) {
		t.Error("probes read across a change on their host were stored")
	}
	since = cache.mark("node2")
	cache.invalidate("node1", engine.Change{Summary: "write", Writes: []string{"/etc/y"}})
	if !cache.put("node2", map[string]cachedProbe{"x": {}}, since) {
		t.Error("probes read across a change of known paths on another host were dropped")
	}
	cache.invalidate("node1", engine.Change{Summary: "anything"})
	if cache.put("node2", map[string]cachedProbe{"x": {}}, cache.mark("node2")) {
		t.Error("probes were stored after a change of unknown reach")
	}
	cache.done("node2")
	cache.wait(context.Background(), "node2") // returns: nothing pending
}

// TestBatchProbes: parts of a key with two or more parts become one command in the place of the
// first; a key with one part, and a probe with none, run alone, in order. A probe of several parts
// of one batch has them side by side; one whose parts are of two batches runs alone.
func TestBatchProbes(t *testing.T) {
	k1, k2 := &catBatch{}, &namedBatch{catBatch{}, "other"}
	parts := probeParts{
		"b": {{Probe: "b", Batch: k1, Arg: "B"}},
		"c": {{Probe: "c", Batch: k2, Arg: "C"}},
		"d": {{Probe: "d", Batch: k1, Arg: "D"}},
		"f": {{Probe: "f", Batch: k1, Arg: "F1"}, {Probe: "f", Batch: k1, Arg: "F2"}},
		"g": {{Probe: "g", Batch: k1, Arg: "G"}, {Probe: "g", Batch: k2, Arg: "G2"}},
	}
	got := batchProbes([]string{"a", "b", "c", "d", "e", "f", "g"}, parts)
	var desc []string
	for _, e := range got {
		if e.batch != nil {
			desc = append(desc, fmt.Sprintf("%s%v%v", e.batch.Key(), e.args, e.parts))
		} else {
			desc = append(desc, e.cmd)
		}
	}
	if want := []string{"a", "cat[B D F1 F2][b d f f]", "c", "e", "g"}; !cmp.Equal(desc, want) {
		t.Errorf("entries %q, want %q", desc, want)
	}
}

// TestSplitBatchesJoinsParts: a probe of several parts gets their answers joined: the outputs in
// order, the first exit status that is not 0.
func TestSplitBatchesJoinsParts(t *testing.T) {
	b := &partsBatch{}
	entries := []probeEntry{
		{cmd: "alone"},
		{batch: b, args: []string{"x", "y:1", "z", "w"}, parts: []string{"p", "q", "q", "r"}},
	}
	outs := []engine.ExecResult{{Stdout: []byte("A\n"), ExitCode: 4}, {Stdout: []byte("x\ny:1\nz\nw\n")}}
	got, err := splitBatches(entries, outs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"alone": "A\n/4", "p": "x\n/0", "q": "y\nz\n/1", "r": "w\n/0"}
	if len(got) != len(want) {
		t.Fatalf("results for %d probes, want %d: %v", len(got), len(want), got)
	}
	for probe, w := range want {
		r := got[probe]
		if s := fmt.Sprintf("%s/%d", r.Stdout, r.ExitCode); s != w {
			t.Errorf("%s: %q, want %q", probe, s, w)
		}
	}
}

// partsBatch answers each arg with the arg's own line; "NAME:CODE" exits CODE.
type partsBatch struct{}

func (partsBatch) Key() string                  { return "parts" }
func (partsBatch) Command(args []string) string { return "" }
func (partsBatch) Split(res engine.ExecResult, args []string) ([]engine.ExecResult, error) {
	out := make([]engine.ExecResult, len(args))
	for i, a := range args {
		name, code, _ := strings.Cut(a, ":")
		rc, _ := strconv.Atoi(code)
		out[i] = engine.ExecResult{Stdout: []byte(name + "\n"), Stderr: []byte{}, ExitCode: rc}
	}
	return out, nil
}

// namedBatch is a catBatch under another key.
type namedBatch struct {
	catBatch
	key string
}

func (b *namedBatch) Key() string { return b.key }
