// Package connect turns inventory hosts into SSH connections: it maps a config.Host (address,
// port, user, key, known_hosts, host key checking, jump host, ssh_config) to an sshconn.Config.
package connect

import (
	"context"
	"fmt"
	"time"

	"github.com/runbook/runbook/engine"
	"github.com/runbook/runbook/engine/config"
	"github.com/runbook/runbook/engine/run"
	"github.com/runbook/runbook/engine/sshconn"
)

// SSH connects to a playbook's hosts over SSH. Commands carrying the playbook's secrets on their
// command line are refused by the connections it makes.
type SSH struct {
	// Playbook holds the inventory.
	Playbook *config.Playbook
	// ConnectTimeout bounds connecting to one host (TCP, handshake, authentication). Default 10s.
	ConnectTimeout time.Duration
	// Persist keeps each connection open that long after the run, for the next runs (see
	// sshconn.Config.Persist). Zero: off.
	Persist time.Duration
}

// NewSSH returns the SSH connector for pb's inventory.
func NewSSH(pb *config.Playbook) *SSH { return &SSH{Playbook: pb, ConnectTimeout: 10 * time.Second} }

// Connect implements run.Connector.
func (s *SSH) Connect(ctx context.Context, h *config.Host) (engine.Conn, error) {
	cfg, err := s.Config(h)
	if err != nil {
		return nil, err
	}
	c, err := sshconn.Dial(ctx, cfg, s.Playbook.Secrets)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return c, nil
}

// Config returns the SSH settings of an inventory host.
func (s *SSH) Config(h *config.Host) (sshconn.Config, error) { return s.config(h, 0) }

func (s *SSH) config(h *config.Host, depth int) (sshconn.Config, error) {
	policy, err := sshconn.ParseHostKeyPolicy(h.HostKeyChecking)
	if err != nil {
		return sshconn.Config{}, fmt.Errorf("%s: %w", h.Name, err)
	}
	cfg := sshconn.Config{
		Name:           h.Name,
		Address:        h.Address,
		Port:           h.Port,
		User:           h.User,
		KnownHosts:     h.KnownHosts,
		HostKeyPolicy:  policy,
		UseSSHConfig:   h.SSHConfig,
		ConnectTimeout: s.ConnectTimeout,
		KeepAlive:      5 * time.Second,
	}
	if depth == 0 {
		cfg.Persist = s.Persist
	}
	if h.PrivateKey != "" {
		cfg.PrivateKeys = []string{h.PrivateKey}
	}
	if h.SSHConfig {
		// let ~/.ssh/config supply what the inventory did not write
		if !h.UserSet {
			cfg.User = ""
		}
		if !h.PortSet {
			cfg.Port = 0
		}
	}
	if h.Jump != "" {
		if depth > 5 {
			return cfg, fmt.Errorf("%s: jump hosts nest more than 5 deep", h.Name)
		}
		jh, ok := s.Playbook.Host(h.Jump)
		if !ok {
			return cfg, fmt.Errorf("%s: unknown jump host %q", h.Name, h.Jump)
		}
		jc, err := s.config(jh, depth+1)
		if err != nil {
			return cfg, err
		}
		cfg.Jump = &jc
	}
	return cfg, nil
}

var _ run.Connector = (*SSH)(nil)
