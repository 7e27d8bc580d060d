package redis_cluster

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/runbook/runbook/engine"
)

func decode(t *testing.T, src string) *Config {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "test.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c := Info().New().(*Config)
	if diags := gohcl.DecodeBody(f.Body, nil, c); diags.HasErrors() {
		t.Fatal(diags)
	}
	return c
}

func TestDecodeExample(t *testing.T) {
	c := decode(t, `
instances = [
  { host = "node1", port = 6379 }, { host = "node2", port = 6379 }, { host = "node3", port = 6379 },
  { host = "node1", port = 6380 }, { host = "node2", port = 6380 }, { host = "node3", port = 6380 },
]
replicas       = 1
zones          = { node1 = "a", node2 = "b", node3 = "c" }
password       = "s3cret"
connect        = "direct"
allow_takeover = true
timeout        = "90s"
mode           = "prepare"
tls {
  ca_file     = "ca.pem"
  server_name = "redis.internal"
}
`)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Instances) != 6 || c.Instances[4].Host != "node2" || c.Instances[4].Port != 6380 {
		t.Errorf("instances %+v", c.Instances)
	}
	if c.replicas() != 1 || c.Zones["node2"] != "b" || c.TLS.ServerName != "redis.internal" || c.desired().Mode != ModePrepare {
		t.Errorf("decoded %+v", c)
	}
}

func TestValidate(t *testing.T) {
	two := 2
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"no instances", Config{}, "at least one instance"},
		{"duplicate", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}, {Host: "a", Port: 1}}}, "a:1 is declared twice"},
		{"bad port", Config{Instances: []InstanceConfig{{Host: "a", Port: 60000}}}, "port 60000 out of range"},
		{"too few instances", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}, {Host: "b", Port: 1}}, Replicas: &two}, "cannot hold one master"},
		{"connect", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}}, Connect: "telnet"}, `connect: "telnet"`},
		{"mode", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}}, Mode: "fix"}, `mode: "fix"`},
		{"timeout", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}}, Timeout: "soon"}, `timeout: "soon"`},
		{"tls pair", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}}, TLS: &TLSBlock{CertFile: "c.pem"}}, "cert_file and key_file"},
		{"restart without command", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}}, Mode: ModeRestart}, "restart_command: required"},
		{"config_files outside restart", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}}, ConfigFiles: map[string]string{"a:1": "/x.conf"}}, "config_files: only used with mode"},
		{"config_files of no instance", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}}, Mode: ModeRestart, RestartCommand: "true", ConfigFiles: map[string]string{"a:2": "/x.conf"}}, `config_files: "a:2" is not a declared instance`},
		{"config_files relative", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}}, Mode: ModeRestart, RestartCommand: "true", ConfigFiles: map[string]string{"a:1": "x.conf"}}, `config_files["a:1"]: "x.conf" is not an absolute path`},
		{"drain unknown host", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}, {Host: "b", Port: 1}}, Drain: []string{"c"}}, `drain[0]: host "c" holds no declared instance`},
		{"drain every host", Config{Instances: []InstanceConfig{{Host: "a", Port: 1}, {Host: "b", Port: 1}}, Drain: []string{"a", "b"}}, "every host is drained"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	i := Info()
	if i.Name != "redis_cluster" || !i.RunOnce || !strings.Contains(i.Doc, `mode = "prepare"`) {
		t.Errorf("info %+v", i)
	}
	engine.NewRegistry(i) // panics on a malformed module
}

func TestPasswordIsRegisteredAsSecret(t *testing.T) {
	zero := 0
	c := &Config{Instances: []InstanceConfig{{Host: "node1", Port: 1}}, Replicas: &zero, Password: "s3cret-pw", Connect: "direct"}
	target := engine.NewTarget(engine.TargetOptions{Hosts: fakeHosts{"node1": "127.0.0.1"}})
	s, err := c.open(t.Context(), target)
	if err != nil {
		t.Fatal(err)
	}
	s.c.close()
	if got := target.Secrets().Redact("auth s3cret-pw"); got != "auth "+engine.Redacted {
		t.Errorf("password not redacted: %q", got)
	}
}
