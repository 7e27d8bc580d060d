package testenv

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/runbook/runbook/engine"
)

// hostPath is the PATH of every process a host boots.
const hostPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// bootTimeout bounds the wait for a host's sshd to listen.
const bootTimeout = 15 * time.Second

// privateDir is a folder that each host has on its own "disk": a folder of the lab directory
// bind-mounted over the system path in the host's mount namespace.
type privateDir struct {
	Target string // path on the host
	Name   string // folder under DIR/hosts/NAME/fs
	Disk   bool   // survives a reboot (not tmpfs on a real server)
	Root   bool   // root's alone (0700), as runbook makes it on a real server
}

// privateDirs are the host's private folders.
var privateDirs = []privateDir{
	{Target: "/etc/redis", Name: "etc-redis", Disk: true},
	{Target: "/var/lib/redis", Name: "var-lib-redis", Disk: true},
	{Target: "/var/log/redis", Name: "var-log-redis", Disk: true},
	{Target: "/run/redis", Name: "run-redis"},
	// each host has its own /run/lock, as real servers do
	{Target: "/run/lock", Name: "run-lock"},
	// and its own /run/runbook, root's alone: runbook's run lock lives there, and the service
	// module catches what a start prints there
	{Target: "/run/runbook", Name: "run-runbook", Root: true},
}

func (l *Lab) hostDir(name string) string { return filepath.Join(l.dir, "hosts", name) }

// PrivateDir returns where the folder target (e.g. /etc/redis) of host lives in the lab
// directory, so tests can look at a host's files from outside.
func (l *Lab) PrivateDir(host, target string) (string, error) {
	for _, d := range privateDirs {
		if d.Target == target {
			return filepath.Join(l.hostDir(host), "fs", d.Name), nil
		}
	}
	return "", fmt.Errorf("%s is not a private folder of the lab hosts", target)
}

// prepareHostFiles writes the host's key, sshd_config and private folders; it keeps an existing
// host key.
func (l *Lab) prepareHostFiles(h *hostState) (hostKey string, err error) {
	dir := l.hostDir(h.Name)
	for _, d := range privateDirs {
		fs := filepath.Join(dir, "fs", d.Name)
		if err := os.MkdirAll(fs, 0o755); err != nil {
			return "", fmt.Errorf("%s: create private folder: %w", h.Name, err)
		}
		if d.Root {
			if err := os.Chmod(fs, 0o700); err != nil {
				return "", fmt.Errorf("%s: private folder: %w", h.Name, err)
			}
		}
		if err := os.MkdirAll(d.Target, 0o755); err != nil {
			return "", fmt.Errorf("%s: create mount point %s: %w", h.Name, d.Target, err)
		}
	}
	pub, err := ensureKey(filepath.Join(dir, "ssh_host_ed25519_key"), "root@"+h.Name)
	if err != nil {
		return "", fmt.Errorf("%s: host key: %w", h.Name, err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "home"), 0o700); err != nil {
		return "", fmt.Errorf("%s: home: %w", h.Name, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "sshd_config"), []byte(l.sshdConfig(h)), 0o600); err != nil {
		return "", fmt.Errorf("%s: %w", h.Name, err)
	}
	return knownHostsLine(h.Address, pub), nil
}

// sshdConfig is the host's sshd configuration: root by key only, the lab's authorized_keys, many
// sessions per connection, no PAM.
func (l *Lab) sshdConfig(h *hostState) string {
	dir := l.hostDir(h.Name)
	return strings.Join([]string{
		"ListenAddress " + h.Address + ":22",
		"HostKey " + sshdQuote(filepath.Join(dir, "ssh_host_ed25519_key")),
		"PidFile none",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"AuthorizedKeysFile " + sshdQuote(filepath.Join(l.dir, "authorized_keys")),
		// The lab directory may sit under a world-writable folder such as a temporary directory.
		"StrictModes no",
		"UsePAM no",
		"MaxSessions 64",
		"MaxStartups 256",
		"UseDNS no",
		"PrintMotd no",
		"PrintLastLog no",
		"Subsystem sftp internal-sftp",
		// Each host has its own home for root, as real servers do; the machine's own shell
		// start-up files (which may be slow) are not the host's.
		"SetEnv HOME=" + filepath.Join(dir, "home"),
		"",
	}, "\n")
}

func sshdQuote(s string) string { return `"` + s + `"` }

// bootScript runs as PID 1 of the host's new PID, mount and UTS namespaces inside its network
// namespace: it makes the mounts private, names the host, mounts its own /proc and /sys and
// private folders, drops the other labs' namespace handles, starts the host's services and
// becomes sshd.
func (l *Lab) bootScript(h *hostState) string {
	dir := l.hostDir(h.Name)
	q := engine.ShellQuote
	var b strings.Builder
	b.WriteString("set -e\nmount --make-rprivate /\n")
	fmt.Fprintf(&b, "hostname %s\n", q(h.Name))
	b.WriteString("mount -t proc proc /proc\n")
	b.WriteString("umount -l /sys\nmount -t sysfs sysfs /sys\n")
	for _, d := range privateDirs {
		fmt.Fprintf(&b, "mount --bind %s %s\n", q(filepath.Join(dir, "fs", d.Name)), q(d.Target))
	}
	b.WriteString("umount -l /run/netns/* /run/netns 2>/dev/null || true\n")
	for _, svc := range h.Services {
		args := make([]string, len(svc))
		for i, a := range svc {
			args[i] = q(a)
		}
		log := filepath.Join(dir, filepath.Base(svc[0])+".log")
		fmt.Fprintf(&b, "%s </dev/null >>%s 2>&1 &\n", strings.Join(args, " "), q(log))
	}
	fmt.Fprintf(&b, "exec /usr/sbin/sshd -D -f %s -E %s\n", q(filepath.Join(dir, "sshd_config")), q(filepath.Join(dir, "sshd.log")))
	return b.String()
}

// boot starts the host: the boot script as PID 1 of new namespaces in the host's network
// namespace. It returns once sshd listens.
func (l *Lab) boot(ctx context.Context, h *hostState) error {
	dir := l.hostDir(h.Name)
	logf, err := os.OpenFile(filepath.Join(dir, "boot.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("%s: boot: %w", h.Name, err)
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", "--net=/run/netns/"+h.Netns, "--", "/bin/sh", "-c", l.bootScript(h))
	cmd.Env = []string{hostPath}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setsid:     true,
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS,
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: boot: %w", h.Name, err)
	}
	pid := cmd.Process.Pid
	start, _ := startTime(pid)
	l.boots.Add(1)
	go func() {
		defer l.boots.Done()
		_ = cmd.Wait()
	}()
	h.PID, h.StartTime = pid, start
	addr, err := netip.ParseAddr(h.Address)
	if err != nil {
		return fmt.Errorf("%s: address %q: %w", h.Name, h.Address, err)
	}
	err = waitFor(ctx, bootTimeout, func() bool {
		return !running(pid, start) || listening(pid, addr, 22)
	})
	if err == nil && running(pid, start) {
		return nil
	}
	if err == nil {
		err = errors.New("sshd exited")
	}
	return fmt.Errorf("%s: boot: %w\n%s%s", h.Name, err, tail(filepath.Join(dir, "boot.log")), tail(filepath.Join(dir, "sshd.log")))
}

// listening reports whether a TCP socket listens on addr:port in the network namespace of pid.
func listening(pid int, addr netip.Addr, port int) bool {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	a := addr.As4()
	// /proc/net/tcp shows the address as a little-endian 32-bit hex number.
	want := strings.ToUpper(hex.EncodeToString([]byte{a[3], a[2], a[1], a[0]})) + fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && fields[1] == want && fields[3] == "0A" {
			return true
		}
	}
	return false
}

// tail returns the last lines of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return filepath.Base(path) + ":\n  " + strings.Join(lines, "\n  ") + "\n"
}

// setLink takes the host's side of its veth up or down: a host is on the network when it is
// booted and not partitioned. When it comes back, the address caches that remember it as
// unreachable are flushed, so peers reach it at once instead of after ARP's retry time.
func setLink(ctx context.Context, st *state, h *hostState) error {
	state := "up"
	if h.Killed || h.Partitioned {
		state = "down"
	}
	if _, err := runCmd(ctx, "ip", "link", "set", h.Link, state); err != nil {
		return fmt.Errorf("%s: link %s: %w", h.Name, state, err)
	}
	if state != "up" {
		return nil
	}
	if err := waitLinkForwarding(ctx, h); err != nil {
		return err
	}
	return flushNeighbors(ctx, st, h)
}

// flushNeighbors forgets h's address in the ARP caches of the operator and every other host,
// and everything h's own cache holds.
func flushNeighbors(ctx context.Context, st *state, h *hostState) error {
	var wg sync.WaitGroup
	errs := make([]error, len(st.Hosts)+1)
	for i, other := range st.Hosts {
		if !netnsExists(other.Netns) {
			continue
		}
		line := "neigh flush to " + h.Address
		if other == h {
			line = "neigh flush dev eth0"
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ipBatch(ctx, other.Netns, false, []string{line})
		}()
	}
	errs[len(st.Hosts)] = ipBatch(ctx, "", false, []string{"neigh flush to " + h.Address + " dev " + st.Bridge})
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: flush address caches: %w", h.Name, err)
	}
	return nil
}

// waitLinkForwarding waits until the host's link carries traffic: the kernel reports carrier
// changes with a delay of up to a second, and the bridge forwards on the port only after that.
func waitLinkForwarding(ctx context.Context, h *hostState) error {
	read := func(name string) string {
		b, _ := os.ReadFile(filepath.Join("/sys/class/net", h.Link, name))
		return strings.TrimSpace(string(b))
	}
	if err := waitFor(ctx, 5*time.Second, func() bool {
		return read("operstate") == "up" && read("brport/state") == "3"
	}); err != nil {
		return fmt.Errorf("%s: link %s not forwarding: %w", h.Name, h.Link, err)
	}
	return nil
}

// kill powers the host off: its link goes down, PID 1 of its namespaces gets SIGKILL (the
// kernel then kills every process of the host at once), and whatever else entered its network
// namespace is killed too.
func (l *Lab) kill(ctx context.Context, st *state, h *hostState) error {
	h.Killed = true
	if err := setLink(ctx, st, h); err != nil {
		return err
	}
	if running(h.PID, h.StartTime) {
		_ = syscall.Kill(h.PID, syscall.SIGKILL)
		pid, start := h.PID, h.StartTime
		if err := waitFor(ctx, 10*time.Second, func() bool { return !running(pid, start) }); err != nil {
			return fmt.Errorf("%s: kill: %w", h.Name, err)
		}
	}
	h.PID, h.StartTime = 0, 0
	if err := killAll(ctx, func() []proc { return procsInNetns(h.Netns) }); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	return nil
}

// revive boots a killed host: /run/redis starts empty as after any boot; with wipe the other
// private folders are emptied too (a new disk).
func (l *Lab) revive(ctx context.Context, st *state, h *hostState, wipe bool) error {
	if running(h.PID, h.StartTime) {
		return fmt.Errorf("%s is running (kill it first)", h.Name)
	}
	if err := killAll(ctx, func() []proc { return procsInNetns(h.Netns) }); err != nil {
		return fmt.Errorf("%s: %w", h.Name, err)
	}
	for _, d := range privateDirs {
		if wipe || !d.Disk {
			if err := emptyDir(filepath.Join(l.hostDir(h.Name), "fs", d.Name)); err != nil {
				return fmt.Errorf("%s: wipe %s: %w", h.Name, d.Target, err)
			}
		}
	}
	h.Killed = false
	if err := setLink(ctx, st, h); err != nil {
		return err
	}
	return l.boot(ctx, h)
}

// emptyDir removes everything inside dir and keeps dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Kill crashes the host: every process of it dies at once (SIGKILL) and it drops off the network.
func (l *Lab) Kill(ctx context.Context, host string) error {
	return l.change(func(st *state) error {
		h, err := st.host(host)
		if err != nil {
			return err
		}
		l.logf("%s: killed", h.Name)
		return l.kill(ctx, st, h)
	})
}

// Revive boots a killed host: sshd comes back with the same host key and nothing else is
// started; with wipe the host's redis folders are emptied first.
func (l *Lab) Revive(ctx context.Context, host string, wipe bool) error {
	return l.change(func(st *state) error {
		h, err := st.host(host)
		if err != nil {
			return err
		}
		if err := l.revive(ctx, st, h, wipe); err != nil {
			return err
		}
		if h.Name == LDAPHost && st.LDAP != nil {
			rctx, cancel := context.WithTimeout(ctx, ldapTimeout)
			defer cancel()
			if err := l.ldap.Ready(rctx, *st.LDAP); err != nil {
				return fmt.Errorf("%s: ldap: %w", h.Name, err)
			}
		}
		if wipe {
			l.logf("%s: revived with empty disk", h.Name)
		} else {
			l.logf("%s: revived", h.Name)
		}
		return nil
	})
}

// Partition cuts the host off the network, both directions, from every peer and the operator.
func (l *Lab) Partition(ctx context.Context, host string) error {
	return l.change(func(st *state) error {
		h, err := st.host(host)
		if err != nil {
			return err
		}
		h.Partitioned = true
		l.logf("%s: partitioned", h.Name)
		return setLink(ctx, st, h)
	})
}

// Heal puts a partitioned host back on the network.
func (l *Lab) Heal(ctx context.Context, host string) error {
	return l.change(func(st *state) error {
		h, err := st.host(host)
		if err != nil {
			return err
		}
		h.Partitioned = false
		l.logf("%s: healed", h.Name)
		return setLink(ctx, st, h)
	})
}

// Command returns a command that runs argv in the host's namespaces (network, mount, UTS and
// PID), as a process of the host: it dies when the host is killed.
func (l *Lab) Command(ctx context.Context, host string, argv ...string) (*exec.Cmd, error) {
	if len(argv) == 0 {
		return nil, errors.New("command: no program")
	}
	h, err := l.current(host)
	if err != nil {
		return nil, err
	}
	pid, start := h.PID, h.StartTime
	if !running(pid, start) {
		return nil, fmt.Errorf("%s is down", host)
	}
	args := append([]string{"-t", fmt.Sprint(pid), "-n", "-m", "-u", "-p", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = []string{hostPath, "HOME=/root"}
	cmd.Dir = "/"
	return cmd, nil
}

// Exec runs script with sh -c on the host (see Command) and returns its combined output.
func (l *Lab) Exec(ctx context.Context, host, script string) (string, error) {
	cmd, err := l.Command(ctx, host, "/bin/sh", "-c", script)
	if err != nil {
		return "", err
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s: %w", host, firstLine(script), err)
	}
	return string(out), nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// current returns the host as state.json says now (another process may have killed or revived it).
func (l *Lab) current(host string) (hostState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, err := loadState(l.dir); err == nil {
		l.st = st
	}
	h, err := l.st.host(host)
	if err != nil {
		return hostState{}, err
	}
	return *h, nil
}
