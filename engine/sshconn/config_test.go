package sshconn

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/sshconn/sshdtest"
)

func TestParseHostKeyPolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    HostKeyPolicy
		wantErr bool
	}{
		{in: "", want: Strict},
		{in: "strict", want: Strict},
		{in: "accept-new", want: AcceptNew},
		{in: "insecure", want: Insecure},
		{in: "ask", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseHostKeyPolicy(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseHostKeyPolicy(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil && tt.in != "" {
			if s := got.String(); s != tt.in {
				t.Errorf("%v.String() = %q, want %q", got, s, tt.in)
			}
		}
	}
}

func TestResolveDefaults(t *testing.T) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Skip(err)
	}
	got, err := Config{Name: "node1", Address: "10.0.0.1", PrivateKeys: []string{"~/.ssh/id"}, Jump: &Config{Address: "bastion"}}.resolve()
	if err != nil {
		t.Fatal(err)
	}
	known := filepath.Join(home, ".ssh", "known_hosts")
	want := Config{
		Name: "node1", Address: "10.0.0.1", Port: 22, User: "root",
		PrivateKeys: []string{filepath.Join(home, ".ssh", "id")}, KnownHosts: known,
		ConnectTimeout: 10 * time.Second, KeepAlive: 15 * time.Second, MaxSessions: 8, Shells: 4,
		Jump: &Config{
			Name: "bastion", Address: "bastion", Port: 22, User: "root",
			PrivateKeys: []string{filepath.Join(home, ".ssh", "id")}, KnownHosts: known,
			ConnectTimeout: 10 * time.Second, KeepAlive: 15 * time.Second, MaxSessions: 8, Shells: 4,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resolve (-want +got):\n%s", diff)
	}

	for _, bad := range []Config{{}, {Address: "h", Port: 70000}} {
		if _, err := bad.resolve(); err == nil {
			t.Errorf("resolve(%+v) succeeded, want an error", bad)
		}
	}
}

func TestResolveSSHConfig(t *testing.T) {
	dir := t.TempDir()
	id := writeFile(t, dir, "id_node", "")
	idJump := writeFile(t, dir, "id_jump", "")
	sshConfig := writeFile(t, dir, "config", fmt.Sprintf(`
Host node*
  HostName %%h.lab.example
  User admin
  Port 2222
  IdentityFile %s
  IdentityFile %s/missing_key
  ProxyJump ops@gate1:2201,gate2

Host gate2
  HostName 192.0.2.2
  IdentityFile %s

Host direct
  HostName 192.0.2.9
  ProxyJump none
`, id, dir, idJump))

	tests := []struct {
		name string
		cfg  Config
		want Config
	}{
		{
			name: "alias with jump chain",
			cfg:  Config{Name: "n1", Address: "node1"},
			want: Config{
				Name: "n1", Address: "node1.lab.example", Port: 2222, User: "admin", PrivateKeys: []string{id},
				Jump: &Config{
					Name: "gate2", Address: "192.0.2.2", Port: 22, User: "root", PrivateKeys: []string{id, idJump},
					Jump: &Config{Name: "gate1", Address: "gate1", Port: 2201, User: "ops", PrivateKeys: []string{id, idJump}},
				},
			},
		},
		{
			name: "explicit values win",
			cfg:  Config{Name: "n1", Address: "node1", User: "root", Port: 22, PrivateKeys: []string{"/k"}, Jump: &Config{Address: "b"}},
			want: Config{
				Name: "n1", Address: "node1.lab.example", Port: 22, User: "root", PrivateKeys: []string{"/k", id},
				Jump: &Config{Name: "b", Address: "b", Port: 22, User: "root", PrivateKeys: []string{"/k", id}},
			},
		},
		{
			name: "no match",
			cfg:  Config{Address: "10.0.0.1"},
			want: Config{Name: "10.0.0.1", Address: "10.0.0.1", Port: 22, User: "root", PrivateKeys: []string{}},
		},
		{
			name: "ProxyJump none",
			cfg:  Config{Address: "direct"},
			want: Config{Name: "direct", Address: "192.0.2.9", Port: 22, User: "root", PrivateKeys: []string{}},
		},
	}
	// Fields that do not come from ssh_config are compared by a projection.
	type view struct {
		Name, Address, User string
		Port                int
		PrivateKeys         []string
		Jump                *view
	}
	var project func(c *Config) *view
	project = func(c *Config) *view {
		if c == nil {
			return nil
		}
		keys := c.PrivateKeys
		if keys == nil {
			keys = []string{}
		}
		return &view{Name: c.Name, Address: c.Address, User: c.User, Port: c.Port, PrivateKeys: keys, Jump: project(c.Jump)}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.UseSSHConfig, tt.cfg.SSHConfigFile, tt.cfg.KnownHosts = true, sshConfig, "/known"
			got, err := tt.cfg.resolve()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(project(&tt.want), project(&got)); diff != "" {
				t.Errorf("resolve (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("loop", func(t *testing.T) {
		loop := writeFile(t, dir, "loop", "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
		_, err := Config{Address: "a", UseSSHConfig: true, SSHConfigFile: loop, KnownHosts: "/known"}.resolve()
		if err == nil || !strings.Contains(err.Error(), "more than 5 jump hosts") {
			t.Errorf("err = %v, want a jump loop error", err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := Config{Address: "a", UseSSHConfig: true, SSHConfigFile: filepath.Join(dir, "nope"), KnownHosts: "/known"}.resolve()
		if err == nil {
			t.Error("a named ssh config file that does not exist should be an error")
		}
	})
}

func TestDialThroughSSHConfig(t *testing.T) {
	t.Parallel()
	target := startSSHD(t, sshdtest.Options{})
	jump := startSSHD(t, sshdtest.Options{Client: &target.Client})
	dir := t.TempDir()
	known := writeFile(t, dir, "known_hosts",
		knownhosts.Line([]string{target.Addr()}, target.HostKeys[0].Pub())+"\n"+
			knownhosts.Line([]string{jump.Addr()}, jump.HostKeys[0].Pub())+"\n")
	sshConfig := writeFile(t, dir, "config", fmt.Sprintf(`
Host web
  HostName 127.0.0.1
  Port %d
  User %s
  IdentityFile %s
  ProxyJump bastion

Host bastion
  HostName 127.0.0.1
  Port %d
`, target.Port, target.User, target.Client.File, jump.Port))
	c, err := Dial(context.Background(), Config{Address: "web", UseSSHConfig: true, SSHConfigFile: sshConfig, KnownHosts: known}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := engine.Run(context.Background(), c, "echo hi")
	if err != nil || string(out) != "hi\n" {
		t.Fatalf("exec: %q, %v", out, err)
	}
	if jump.Accepted() != 1 || target.Accepted() != 1 {
		t.Errorf("accepted connections: jump %d, target %d; want 1 and 1", jump.Accepted(), target.Accepted())
	}
}
