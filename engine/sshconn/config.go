package sshconn

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
)

// HostKeyPolicy says what to do with a host key that known_hosts does not confirm.
type HostKeyPolicy int

const (
	// Strict requires known_hosts to hold the host's key. It is the default.
	Strict HostKeyPolicy = iota
	// AcceptNew records the key of a host known_hosts does not list and refuses a changed key.
	AcceptNew
	// Insecure skips the host key check; the caller should print a warning.
	Insecure
)

// String returns the policy's name as written in configuration: strict, accept-new, insecure.
func (p HostKeyPolicy) String() string {
	switch p {
	case Strict:
		return "strict"
	case AcceptNew:
		return "accept-new"
	case Insecure:
		return "insecure"
	}
	return "HostKeyPolicy(" + strconv.Itoa(int(p)) + ")"
}

// ParseHostKeyPolicy parses strict, accept-new or insecure ("" is strict).
func ParseHostKeyPolicy(s string) (HostKeyPolicy, error) {
	switch s {
	case "", "strict", "yes":
		return Strict, nil
	case "accept-new":
		return AcceptNew, nil
	case "insecure", "no", "off":
		return Insecure, nil
	}
	return Strict, fmt.Errorf("unknown host key policy %q (want strict, accept-new or insecure)", s)
}

// Defaults applied by Dial to zero Config fields.
const (
	DefaultPort           = 22
	DefaultUser           = "root"
	DefaultConnectTimeout = 10 * time.Second
	DefaultKeepAlive      = 15 * time.Second
	DefaultMaxSessions    = 8
	DefaultShells         = 4
)

// maxJumps bounds a ProxyJump chain (and catches loops in ssh_config).
const maxJumps = 5

// Config describes how to reach one host.
type Config struct {
	// Name is the inventory name, used in every error ("node2: ..."). Default: Address.
	Name string
	// Address is the host's IP address or DNS name.
	Address string
	// Port is the SSH port. Default 22.
	Port int
	// User is the remote user. Default "root".
	User string
	// PrivateKeys are private key files (unencrypted; load encrypted keys into ssh-agent). The
	// agent's keys are offered too when SSH_AUTH_SOCK is set. When neither gives a key, the usual
	// ~/.ssh/id_ed25519, id_ecdsa and id_rsa are tried.
	PrivateKeys []string
	// KnownHosts is the known_hosts file. Default ~/.ssh/known_hosts.
	KnownHosts string
	// HashKnownHosts makes AcceptNew record hashed host names, like OpenSSH's HashKnownHosts.
	HashKnownHosts bool
	// HostKeyPolicy says what to do with keys known_hosts does not confirm. Default Strict.
	HostKeyPolicy HostKeyPolicy
	// Jump is a bastion to connect through (an SSH direct-tcpip channel from it to Address).
	// Its zero PrivateKeys, KnownHosts, ConnectTimeout and KeepAlive are taken from this Config.
	Jump *Config
	// UseSSHConfig reads SSHConfigFile for Address: HostName, User, Port, IdentityFile and
	// ProxyJump fill the fields left zero here (identity files are added to PrivateKeys).
	UseSSHConfig bool
	// SSHConfigFile is the ssh_config(5) file read with UseSSHConfig. Default ~/.ssh/config.
	SSHConfigFile string
	// ConnectTimeout bounds TCP connect, SSH handshake and authentication. Default 10s.
	ConnectTimeout time.Duration
	// KeepAlive is the interval of keepalive@openssh.com requests; a connection that does not
	// answer within two more intervals is closed, so commands over it fail instead of hanging.
	// Default 15s.
	KeepAlive time.Duration
	// MaxSessions bounds the concurrent sessions (commands) over the connection; more Execs wait.
	// Default 8 (sshd allows 10 per connection by default).
	MaxSessions int
	// Shells bounds the command shells kept open over the connection (sessions whose shell runs
	// the commands it is sent, one after the other: see shell.go); each takes one of the
	// MaxSessions. Default DefaultShells, at most MaxSessions/2; negative: none, every command is
	// a session of its own.
	Shells int
	// Persist, when not zero, keeps the connection open in a keeper process for that long after
	// the last run using it ended, and runs in the meantime use it instead of connecting (see
	// ServeMux; the program's main must call it when MuxRequested). A run falls back to its own
	// connection when no keeper can serve. Not used through a jump host.
	Persist time.Duration
	// PersistDir is the private folder of the keepers' sockets. Default $XDG_RUNTIME_DIR/runbook-ssh,
	// else runbook-ssh-UID in the temporary folder.
	PersistDir string
}

// addr returns host:port.
func (c *Config) addr() string {
	return net.JoinHostPort(c.Address, strconv.Itoa(c.Port))
}

// resolve fills defaults (and, with UseSSHConfig, values from ssh_config) and checks the config.
func (c Config) resolve() (Config, error) {
	return c.resolveDepth(0)
}

func (c Config) resolveDepth(depth int) (Config, error) {
	if depth > maxJumps {
		return c, fmt.Errorf("%s: more than %d jump hosts (is ProxyJump a loop?)", c.Name, maxJumps)
	}
	if c.Address == "" {
		c.Address = c.Name
	}
	if c.Name == "" {
		c.Name = c.Address
	}
	if c.Address == "" {
		return c, errors.New("host has no address")
	}
	if c.UseSSHConfig {
		if err := c.applySSHConfig(depth); err != nil {
			return c, fmt.Errorf("%s: %w", c.Name, err)
		}
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, fmt.Errorf("%s: invalid port %d", c.Name, c.Port)
	}
	if c.User == "" {
		c.User = DefaultUser
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.Shells == 0 {
		c.Shells = DefaultShells
	}
	c.Shells = min(c.Shells, c.MaxSessions/2)
	if c.Persist < 0 {
		return c, fmt.Errorf("%s: persist must not be negative, not %s", c.Name, c.Persist)
	}
	if c.KnownHosts == "" && c.HostKeyPolicy != Insecure {
		home, err := os.UserHomeDir()
		if err != nil {
			return c, fmt.Errorf("%s: default known_hosts: %w", c.Name, err)
		}
		c.KnownHosts = filepath.Join(home, ".ssh", "known_hosts")
	}
	c.KnownHosts = expandHome(c.KnownHosts)
	keys := make([]string, len(c.PrivateKeys))
	for i, k := range c.PrivateKeys {
		keys[i] = expandHome(k)
	}
	c.PrivateKeys = keys
	if c.Jump != nil {
		j := *c.Jump
		if len(j.PrivateKeys) == 0 {
			j.PrivateKeys = c.PrivateKeys
		}
		if j.KnownHosts == "" {
			j.KnownHosts = c.KnownHosts
		}
		if j.ConnectTimeout == 0 {
			j.ConnectTimeout = c.ConnectTimeout
		}
		if j.KeepAlive == 0 {
			j.KeepAlive = c.KeepAlive
		}
		rj, err := j.resolveDepth(depth + 1)
		if err != nil {
			return c, fmt.Errorf("%s: jump host: %w", c.Name, err)
		}
		c.Jump = &rj
	}
	return c, nil
}

// applySSHConfig fills zero fields from the ssh_config file, like ssh(1) does for values not given
// on its command line.
func (c *Config) applySSHConfig(depth int) error {
	file := c.SSHConfigFile
	if file == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("ssh config: %w", err)
		}
		file = filepath.Join(home, ".ssh", "config")
	}
	file = expandHome(file)
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) && c.SSHConfigFile == "" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ssh config: %w", err)
	}
	defer f.Close()
	sc, err := ssh_config.Decode(f)
	if err != nil {
		return fmt.Errorf("ssh config %s: %w", file, err)
	}
	alias := c.Address
	get := func(key string) (string, error) {
		v, err := sc.Get(alias, key)
		if err != nil {
			return "", fmt.Errorf("ssh config %s: %s: %w", file, key, err)
		}
		return v, nil
	}

	if c.User == "" {
		u, err := get("User")
		if err != nil {
			return err
		}
		c.User = u
	}
	if c.Port == 0 {
		p, err := get("Port")
		if err != nil {
			return err
		}
		if p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return fmt.Errorf("ssh config %s: Port %q for %s: not a number", file, p, alias)
			}
			c.Port = n
		}
	}
	hostName, err := get("HostName")
	if err != nil {
		return err
	}
	user := c.User
	if user == "" {
		user = DefaultUser
	}
	port := c.Port
	if port == 0 {
		port = DefaultPort
	}
	tokens := func(s string) string {
		home, _ := os.UserHomeDir()
		r := strings.NewReplacer("%%", "%", "%h", firstNonEmpty(hostName, alias), "%n", alias,
			"%r", user, "%p", strconv.Itoa(port), "%d", home)
		return expandHome(r.Replace(s))
	}
	ids, err := sc.GetAll(alias, "IdentityFile")
	if err != nil {
		return fmt.Errorf("ssh config %s: IdentityFile: %w", file, err)
	}
	for _, id := range ids {
		p := tokens(id)
		if _, err := os.Stat(p); err == nil { // ssh(1) skips identity files that do not exist
			c.PrivateKeys = append(c.PrivateKeys, p)
		}
	}
	if hostName != "" {
		c.Address = strings.ReplaceAll(hostName, "%h", alias)
	}

	if c.Jump == nil {
		pj, err := get("ProxyJump")
		if err != nil {
			return err
		}
		if pj != "" && pj != "none" {
			var jump *Config
			for _, hop := range strings.Split(pj, ",") {
				j, err := parseJump(strings.TrimSpace(hop))
				if err != nil {
					return fmt.Errorf("ssh config %s: ProxyJump %q: %w", file, pj, err)
				}
				j.UseSSHConfig = true
				j.SSHConfigFile = c.SSHConfigFile
				j.HostKeyPolicy = c.HostKeyPolicy
				j.HashKnownHosts = c.HashKnownHosts
				j.KnownHosts = c.KnownHosts
				j.Jump = jump
				jump = &j
			}
			if depth+strings.Count(pj, ",")+1 > maxJumps {
				return fmt.Errorf("ssh config %s: ProxyJump %q: more than %d jump hosts", file, pj, maxJumps)
			}
			c.Jump = jump
		}
	}
	return nil
}

// parseJump parses one ProxyJump hop: [user@]host[:port] or ssh://[user@]host[:port].
func parseJump(s string) (Config, error) {
	s = strings.TrimPrefix(s, "ssh://")
	var j Config
	if at := strings.LastIndex(s, "@"); at >= 0 {
		j.User, s = s[:at], s[at+1:]
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = strings.Trim(s, "[]"), ""
	}
	if host == "" {
		return j, errors.New("empty host")
	}
	j.Name, j.Address = host, host
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil {
			return j, fmt.Errorf("port %q is not a number", port)
		}
		j.Port = n
	}
	return j, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// expandHome replaces a leading ~/ with the user's home directory.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}
