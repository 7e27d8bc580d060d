package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// requirement is a program the lab runs and the Debian package that ships it.
type requirement struct {
	Path    string
	Package string
}

// requirements are the programs the lab and its hosts need.
var requirements = []requirement{
	{"/usr/sbin/sshd", "openssh-server"},
	{"/usr/bin/ssh", "openssh-client"},
	{"/usr/bin/redis-server", "redis-server"},
	{"/usr/bin/redis-cli", "redis-tools"},
	{"/usr/sbin/slapd", "slapd"},
	{"/usr/bin/ldapsearch", "ldap-utils"},
	{"/usr/bin/ping", "iputils-ping"},
}

// missingPackages returns the packages whose program is not installed.
func missingPackages(reqs []requirement, exists func(string) bool) []string {
	var out []string
	for _, r := range reqs {
		if !exists(r.Path) && !slices.Contains(out, r.Package) {
			out = append(out, r.Package)
		}
	}
	return out
}

// daemonNames are the services the packages may start system-wide; they are not part of the lab.
var daemonNames = []string{"sshd", "redis-server", "slapd"}

// EnsurePackages installs the Debian packages the lab needs when any is missing, without
// prompts, and stops any system-wide sshd, redis-server or slapd the installation started.
func EnsurePackages(ctx context.Context, log io.Writer) error {
	missing := missingPackages(requirements, func(p string) bool {
		_, err := os.Stat(p)
		return err == nil
	})
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(log, "installing %v\n", missing)
	before := rootDaemons()
	// policy-rc.d answering 101 tells the packages' scripts not to start their services.
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); errors.Is(err, fs.ErrNotExist) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("install packages: %w", err)
		}
		defer os.Remove(policy)
	}
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	for _, args := range [][]string{
		{"apt-get", "update", "-q"},
		append([]string{"apt-get", "install", "-y", "-q", "--no-install-recommends"}, missing...),
	} {
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("install packages %v: %s: %w", missing, args[1], err)
		}
	}
	for pid := range rootDaemons() {
		if !before[pid] {
			fmt.Fprintf(log, "stopping system daemon %d started by the installation\n", pid)
			_ = syscall.Kill(pid, syscall.SIGTERM)
			pid := pid
			if waitFor(ctx, 5*time.Second, func() bool { _, live := startTime(pid); return !live }) != nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	return nil
}

// rootDaemons returns the pids of sshd, redis-server and slapd processes in this process's
// network namespace (the lab's own run in namespaces of their own).
func rootDaemons() map[int]bool {
	self, err := nsInode("/proc/self/ns/net")
	if err != nil {
		return nil
	}
	out := map[int]bool{}
	for _, p := range procsWhere(func(pid int) bool {
		ino, err := nsInode(fmt.Sprintf("/proc/%d/ns/net", pid))
		return err == nil && ino == self
	}) {
		if slices.Contains(daemonNames, progName(p.Cmdline)) {
			out[p.PID] = true
		}
	}
	return out
}

// progName returns the program name of a command line, also when the process rewrote its title
// ("redis-server *:6379", "sshd: /usr/sbin/sshd -D [listener]").
func progName(cmdline []string) string {
	fields := strings.Fields(cmdline[0])
	if len(fields) == 0 {
		return ""
	}
	return strings.TrimSuffix(filepath.Base(fields[0]), ":")
}
