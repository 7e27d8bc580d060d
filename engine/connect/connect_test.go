package connect

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/sshconn"
	"github.com/runbook/runbook/modules/all"
)

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "inv.hcl")
	os.WriteFile(inv, []byte(`
defaults {
  private_key = "keys/id"
  known_hosts = "kh"
}
host "bastion" {
  address = "192.0.2.1"
  port    = 2222
  user    = "jump"
}
host "db" {
  address           = "10.0.0.5"
  jump              = host.bastion
  host_key_checking = "accept-new"
}
host "viacfg" {
  address    = "web.internal"
  ssh_config = true
}
host "viacfg_user" {
  address    = "web.internal"
  ssh_config = true
  user       = "deploy"
}
`), 0o644)
	play := filepath.Join(dir, "play.hcl")
	os.WriteFile(play, []byte(`task "x" {
  command {
    cmd = "true"
  }
}
`), 0o644)
	pb, diags := config.Load(config.Options{Playbook: play, Inventories: []string{inv}, Registry: all.Registry()})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	s := NewSSH(pb)
	get := func(name string) sshconn.Config {
		h, _ := pb.Host(name)
		c, err := s.Config(h)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	db := get("db")
	if db.Jump == nil || db.Jump.Address != "192.0.2.1" || db.Jump.Port != 2222 || db.Jump.User != "jump" {
		t.Errorf("db jump = %+v, want the bastion", db.Jump)
	}
	if db.HostKeyPolicy != sshconn.AcceptNew || db.User != "root" || db.Port != 22 {
		t.Errorf("db = policy %v user %q port %d, want accept-new root 22", db.HostKeyPolicy, db.User, db.Port)
	}
	if want := filepath.Join(dir, "keys/id"); len(db.PrivateKeys) != 1 || db.PrivateKeys[0] != want || db.KnownHosts != filepath.Join(dir, "kh") {
		t.Errorf("db keys %v known_hosts %q, want paths relative to the inventory", db.PrivateKeys, db.KnownHosts)
	}
	if c := get("viacfg"); c.User != "" || c.Port != 0 || !c.UseSSHConfig {
		t.Errorf("viacfg = user %q port %d, want both left to ~/.ssh/config", c.User, c.Port)
	}
	if c := get("viacfg_user"); c.User != "deploy" || c.Port != 0 {
		t.Errorf("viacfg_user = user %q port %d, want deploy and port from ~/.ssh/config", c.User, c.Port)
	}
}
