package testenv

import (
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Status is what `testenv status --json` prints.
type Status struct {
	// Hosts are the lab's hosts in inventory order.
	Hosts []HostStatus `json:"hosts"`
	// SSHKey is the absolute path of the operator's private key.
	SSHKey string `json:"ssh_key"`
	// KnownHosts is the absolute path of the known_hosts file.
	KnownHosts string `json:"known_hosts"`
	// LDAP is set when the lab has a directory.
	LDAP *LDAPInfo `json:"ldap,omitempty"`
	// Inventory is the absolute path of inventory.hcl.
	Inventory string `json:"inventory"`
	// ID is the lab id.
	ID string `json:"id"`
	// Subnet is the lab's /24.
	Subnet string `json:"subnet"`
	// Gateway is the operator's address on the lab bridge.
	Gateway string `json:"gateway"`
}

// HostStatus is one host in Status.
type HostStatus struct {
	// Name is the host's name.
	Name string `json:"name"`
	// Address is the host's address.
	Address string `json:"address"`
	// Alive is false after the host was killed and before it was revived.
	Alive bool `json:"alive"`
	// Partitioned is true while the host is cut off the network.
	Partitioned bool `json:"partitioned"`
	// Redis are the host's redis-server processes.
	Redis []RedisProcess `json:"redis,omitempty"`
}

// RedisProcess is one redis-server running on a host.
type RedisProcess struct {
	// PID is the process id (in the machine's PID namespace).
	PID int `json:"pid"`
	// Listen is the address:port from the process title.
	Listen string `json:"listen"`
	// Role is what the server says of itself: "master", "replica of ADDR:PORT (STATE)", or
	// "unknown: REASON".
	Role string `json:"role"`
}

// Status reports every host's liveness, partition and redis-server processes with their roles.
func (l *Lab) Status(ctx context.Context) (Status, error) {
	l.mu.Lock()
	st, err := loadState(l.dir)
	if err == nil {
		l.st = st
	}
	st = l.st
	l.mu.Unlock()
	if err != nil {
		return Status{}, err
	}
	out := Status{
		SSHKey:     l.KeyPath(),
		KnownHosts: l.KnownHostsPath(),
		LDAP:       st.LDAP,
		Inventory:  l.InventoryPath(),
		ID:         st.ID,
		Subnet:     st.Subnet,
		Gateway:    st.Gateway,
		Hosts:      make([]HostStatus, len(st.Hosts)),
	}
	var wg sync.WaitGroup
	for i, h := range st.Hosts {
		hs := HostStatus{Name: h.Name, Address: h.Address, Alive: running(h.PID, h.StartTime), Partitioned: h.Partitioned}
		out.Hosts[i] = hs
		if !hs.Alive {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out.Hosts[i].Redis = l.redisProcesses(ctx, h)
		}()
	}
	wg.Wait()
	return out, nil
}

var listenRE = regexp.MustCompile(`(\S+):(\d+)`)

// redisProcesses finds the host's redis-server processes and asks each its role with redis-cli
// ROLE from inside the host (so a partitioned host still answers).
func (l *Lab) redisProcesses(ctx context.Context, h *hostState) []RedisProcess {
	var out []RedisProcess
	for _, p := range procsInNetns(h.Netns) {
		if progName(p.Cmdline) != "redis-server" {
			continue
		}
		rp := RedisProcess{PID: p.PID, Role: "unknown"}
		m := listenRE.FindStringSubmatch(strings.Join(p.Cmdline, " "))
		if m == nil {
			out = append(out, rp)
			continue
		}
		host := m[1]
		if host == "*" || host == "0.0.0.0" {
			host = h.Address
		}
		rp.Listen = net.JoinHostPort(host, m[2])
		rp.Role = redisRole(ctx, h, host, m[2])
		out = append(out, rp)
	}
	return out
}

func redisRole(ctx context.Context, h *hostState, host, port string) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out, err := runCmd(ctx, "nsenter", "-t", fmt.Sprint(h.PID), "-n", "--", "redis-cli", "--no-auth-warning", "-h", host, "-p", port, "ROLE")
	if err != nil {
		return "unknown: " + firstLine(err.Error())
	}
	return parseRole(out)
}

// parseRole turns redis-cli's ROLE reply into one phrase.
func parseRole(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	switch {
	case len(lines) == 0 || lines[0] == "":
		return "unknown: empty reply"
	case lines[0] == "master":
		return "master"
	case (lines[0] == "slave" || lines[0] == "replica") && len(lines) >= 4:
		return fmt.Sprintf("replica of %s (%s)", net.JoinHostPort(lines[1], lines[2]), lines[3])
	}
	// An error reply (NOAUTH, DENIED for protected mode, ERR ...): its first sentence.
	msg := lines[0]
	if i := strings.Index(msg, ". "); i > 0 {
		msg = msg[:i]
	}
	return "unknown: " + msg
}
