package waitfor

import (
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/enginetest"
	"github.com/runbook/runbook/modules/internal/moduletest"
)

// freePort returns a loopback port that nothing listens on.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// dialer serves DialContext with real loopback connections and counts attempts; after
// openAfter failed attempts it starts listening on the port.
type dialer struct {
	t         *testing.T
	port      int
	openAfter int

	mu       sync.Mutex
	attempts int
	addrs    []string
	l        net.Listener
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.attempts++
	d.addrs = append(d.addrs, addr)
	if d.openAfter >= 0 && d.attempts > d.openAfter && d.l == nil {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(d.port))
		if err != nil {
			d.mu.Unlock()
			return nil, err
		}
		d.l = l
		d.t.Cleanup(func() { l.Close() })
	}
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, "127.0.0.1:"+strconv.Itoa(d.port))
}

func TestPort(t *testing.T) {
	tests := []struct {
		name         string
		state        string
		openAfter    int // -1: never open
		dryRun       bool
		wantAttempts int
		wantSummary  string
		wantErr      string
	}{
		{"open now, plan", "", 0, true, 1, "port 192.0.2.1:P is open", ""},
		{"closed, plan", "started", -1, true, 1, "would wait for port 192.0.2.1:P to be open", ""},
		{"opens on the third check", "started", 2, false, 3, "port 192.0.2.1:P is open (after ", ""},
		{"never opens", "started", -1, false, 0, "", "timed out after 300ms waiting for port 192.0.2.1:P to be open"},
		{"closed as wanted", "stopped", -1, false, 1, "port 192.0.2.1:P is closed (after ", ""},
		{"still open", "stopped", 0, false, 0, "", "timed out after 300ms waiting for port 192.0.2.1:P to be closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port := freePort(t)
			d := &dialer{t: t, port: port, openAfter: tt.openAfter}
			c := enginetest.NewConn()
			c.Dial = d.dial
			m := &WaitFor{Port: port, State: tt.state, Timeout: "300ms", Interval: "20ms"}
			r := moduletest.Run(m, c, tt.dryRun, "")
			r.CheckErr(t, strings.ReplaceAll(tt.wantErr, "P", strconv.Itoa(port)))
			r.CheckCalls(t)
			r.CheckChanges(t)
			if tt.wantAttempts != 0 && d.attempts != tt.wantAttempts {
				t.Errorf("%d connection attempts, want %d", d.attempts, tt.wantAttempts)
			}
			if want := strings.ReplaceAll(tt.wantSummary, "P", strconv.Itoa(port)); !strings.HasPrefix(r.Outcome.Summary, want) {
				t.Errorf("summary = %q, want it to start with %q", r.Outcome.Summary, want)
			}
			for _, a := range d.addrs {
				if a != "192.0.2.1:"+strconv.Itoa(port) {
					t.Errorf("dialed %s, want the target host's address", a)
				}
			}
		})
	}
}

func TestPathAndCommand(t *testing.T) {
	tests := []struct {
		name        string
		mod         WaitFor
		answers     []string // successive answers: stdout for path, exit code for command
		dryRun      bool
		wantCmd     string
		wantCalls   int
		wantSummary string
		wantErr     string
	}{
		{"path appears", WaitFor{Path: "/run/a.pid"}, []string{"absent", "absent", "present"}, false, `^if \[ -e /run/a\.pid \]; then echo present; else echo absent; fi$`, 3, "/run/a.pid exists (after ", ""},
		{"path absent plan", WaitFor{Path: "/run/a.pid"}, []string{"absent"}, true, `^if \[ -e`, 1, "would wait for /run/a.pid to exist", ""},
		{"path goes away", WaitFor{Path: "/run/a.pid", State: "absent"}, []string{"present", "absent"}, false, `^if \[ -e`, 2, "/run/a.pid is absent (after ", ""},
		{"command succeeds", WaitFor{Command: "redis-cli ping # probe"}, []string{"1", "0"}, false, `^\(\nredis-cli ping # probe\n\) </dev/null$`, 2, "command succeeds: redis-cli ping # probe (after ", ""},
		{"command times out", WaitFor{Command: "false"}, []string{"1"}, false, `^\(`, 0, "", "timed out after 300ms waiting for command to succeed: false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answers := tt.answers
			c := enginetest.NewConn().On(`.`, func(enginetest.Call) (engine.ExecResult, error) {
				a := answers[0]
				if len(answers) > 1 {
					answers = answers[1:]
				}
				if tt.mod.Command != "" {
					code, _ := strconv.Atoi(a)
					return engine.ExecResult{ExitCode: code}, nil
				}
				return engine.ExecResult{Stdout: []byte(a + "\n")}, nil
			})
			tt.mod.Timeout, tt.mod.Interval = "300ms", "10ms"
			r := moduletest.Run(&tt.mod, c, tt.dryRun, "")
			r.CheckErr(t, tt.wantErr)
			r.CheckChanges(t)
			if tt.wantCalls != 0 {
				want := make([]string, tt.wantCalls)
				for i := range want {
					want[i] = tt.wantCmd
				}
				r.CheckCalls(t, want...)
			}
			if !strings.HasPrefix(r.Outcome.Summary, tt.wantSummary) {
				t.Errorf("summary = %q, want it to start with %q", r.Outcome.Summary, tt.wantSummary)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := func(m WaitFor) *WaitFor { m.Timeout, m.Interval = "1s", "1s"; return &m }
	tests := []struct {
		mod  *WaitFor
		want string
	}{
		{ok(WaitFor{}), "exactly one of port, path and command"},
		{ok(WaitFor{Port: 1, Path: "/x"}), "exactly one of"},
		{ok(WaitFor{Port: 70000}), "not a TCP port"},
		{ok(WaitFor{Path: "x"}), "not an absolute path"},
		{ok(WaitFor{Path: "/x", Host: "h"}), "host: only used with port"},
		{ok(WaitFor{Command: "true", State: "started"}), "state: not used with command"},
		{ok(WaitFor{Port: 1, State: "up"}), `state: "up"`},
		{&WaitFor{Port: 1, Timeout: "forever", Interval: "1s"}, `timeout: "forever"`},
	}
	for _, tt := range tests {
		if err := tt.mod.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", *tt.mod, err, tt.want)
		}
	}
	if err := ok(WaitFor{Port: 6379, Host: "10.0.0.1", State: "stopped"}).Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
}
