package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Unsupported returns why the lab cannot run on this machine, or "" when it can: it needs
// Linux, root, the ip, nsenter and unshare programs, and network namespaces.
func Unsupported() string {
	if runtime.GOOS != "linux" {
		return "the lab needs Linux (network namespaces), this is " + runtime.GOOS
	}
	if os.Geteuid() != 0 {
		return "the lab needs root (it creates network namespaces, links and mounts)"
	}
	for _, prog := range []string{"ip", "nsenter", "unshare", "mount"} {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Sprintf("the lab needs %s (iproute2, util-linux) in PATH", prog)
		}
	}
	if out, err := exec.Command("unshare", "--net", "--mount", "--uts", "--pid", "--fork", "true").CombinedOutput(); err != nil {
		return fmt.Sprintf("the lab needs network, mount, UTS and PID namespaces: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return ""
}

// Up brings the lab in opts.Dir up: installs missing packages, creates the bridge and one
// network namespace per host, generates the keys, boots every host's sshd (and slapd on gluu
// with LDAP) and writes inventory.hcl, known_hosts and, with LDAP, ldap.vars.hcl. On a lab that
// is up it changes nothing (with LDAP on a lab without, it adds the gluu host); killed hosts stay
// down.
func Up(ctx context.Context, opts Options) (*Lab, error) {
	if reason := Unsupported(); reason != "" {
		return nil, errors.New(reason)
	}
	if opts.Dir == "" {
		opts.Dir = DefaultDir
	}
	if opts.Nodes == 0 {
		opts.Nodes = DefaultNodes
	}
	if opts.Nodes < 1 || opts.Nodes > maxNodes {
		return nil, fmt.Errorf("nodes must be between 1 and %d", maxNodes)
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.LDAPServer == nil {
		opts.LDAPServer = defaultLDAP{}
	}
	if !opts.SkipInstall {
		if err := EnsurePackages(ctx, opts.Log); err != nil {
			return nil, err
		}
	}
	if opts.owner != 0 {
		sweepStale(ctx, opts.Log)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("lab directory %s: %w", opts.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab directory: %w", err)
	}
	l := &Lab{dir: dir, log: opts.Log, ldap: opts.LDAPServer}
	l.mu.Lock()
	defer l.mu.Unlock()
	fl, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer fl.unlock()
	st, err := loadState(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		st = state{Dir: dir, Owner: opts.owner}
	}
	err = l.up(ctx, &st, opts)
	if serr := saveState(dir, st); serr != nil {
		err = errors.Join(err, serr)
	}
	l.st = st
	if err != nil {
		return l, err
	}
	return l, nil
}

func (l *Lab) up(ctx context.Context, st *state, opts Options) error {
	began := time.Now()
	nodes := 0
	for _, h := range st.Hosts {
		if h.Name != LDAPHost {
			nodes++
		}
	}
	if nodes > opts.Nodes {
		return fmt.Errorf("the lab in %s has %d nodes, more than %d (run testenv down first)", l.dir, nodes, opts.Nodes)
	}
	fresh, err := l.ensureBridge(ctx, st, opts.owner)
	if err != nil {
		return err
	}
	subnet, err := netip.ParsePrefix(st.Subnet)
	if err != nil {
		return fmt.Errorf("lab subnet %q: %w", st.Subnet, err)
	}
	for i := 1; i <= opts.Nodes; i++ {
		l.addHost(st, fmt.Sprintf("node%d", i), i, hostAddr(subnet, 10+i))
	}
	withLDAP := opts.LDAP || st.LDAP != nil
	if withLDAP {
		l.addHost(st, LDAPHost, 0, hostAddr(subnet, 5))
	}

	if _, err := ensureKey(l.KeyPath(), "runbook-lab"); err != nil {
		return fmt.Errorf("operator key: %w", err)
	}
	pub, err := os.ReadFile(l.KeyPath() + ".pub")
	if err != nil {
		return fmt.Errorf("operator key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(l.dir, "authorized_keys"), pub, 0o600); err != nil {
		return err
	}
	known := make([]string, len(st.Hosts))
	for i, h := range st.Hosts {
		if known[i], err = l.prepareHostFiles(h); err != nil {
			return err
		}
	}
	if err := writeFileAtomic(l.KnownHostsPath(), []byte(strings.Join(known, "")), 0o644); err != nil {
		return err
	}
	if err := ensureHostNetworks(ctx, st, fresh); err != nil {
		return err
	}
	if _, err := os.Stat("/run/sshd"); err != nil {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return fmt.Errorf("sshd privilege separation folder: %w", err)
		}
	}

	var ldapHost *hostState
	if withLDAP {
		ldapHost, _ = st.host(LDAPHost)
		ldapDir := filepath.Join(l.dir, "ldap")
		info, err := l.ldap.Prepare(ldapDir, ldapHost.Address)
		if err != nil {
			return fmt.Errorf("ldap: %w", err)
		}
		st.LDAP = &info
		ldapHost.Services = [][]string{l.ldap.Command(ldapDir, ldapHost.Address)}
	}

	var wg sync.WaitGroup
	errs := make([]error, len(st.Hosts))
	sem := make(chan struct{}, 16)
	booted := 0
	for i, h := range st.Hosts {
		if h.Killed || running(h.PID, h.StartTime) {
			continue
		}
		booted++
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = l.boot(ctx, h)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if ldapHost != nil {
		rctx, cancel := context.WithTimeout(ctx, ldapTimeout)
		defer cancel()
		if err := l.ldap.Ready(rctx, *st.LDAP); err != nil {
			return fmt.Errorf("ldap: %w\n%s", err, tail(filepath.Join(l.hostDir(LDAPHost), "slapd.log")))
		}
		if err := writeFileAtomic(l.LDAPVarsPath(), []byte(ldapVarsHCL(*st.LDAP)), 0o644); err != nil {
			return err
		}
	}
	hosts := make([]Host, len(st.Hosts))
	for i, h := range st.Hosts {
		hosts[i] = Host{Name: h.Name, Address: h.Address}
	}
	if err := writeFileAtomic(l.InventoryPath(), []byte(inventoryHCL(l.KeyPath(), l.KnownHostsPath(), hosts)), 0o644); err != nil {
		return err
	}
	if booted == 0 {
		l.logf("lab %s is up (%s): nothing to do", st.ID, st.Subnet)
	} else {
		l.logf("lab %s is up: %d hosts on %s, booted %d in %s", st.ID, len(st.Hosts), st.Subnet, booted, time.Since(began).Round(time.Millisecond))
	}
	l.logf("inventory: %s", l.InventoryPath())
	return nil
}

// addHost adds a host to the state unless it is there; index numbers its veth link.
func (l *Lab) addHost(st *state, name string, index int, addr netip.Addr) {
	if _, err := st.host(name); err == nil {
		return
	}
	st.Hosts = append(st.Hosts, &hostState{
		Name:    name,
		Address: addr.String(),
		Netns:   namePrefix + st.ID + "-" + name,
		Link:    fmt.Sprintf("%s%sv%d", namePrefix, st.ID, index),
	})
	sort.SliceStable(st.Hosts, func(i, j int) bool { return hostOrder(st.Hosts[i].Name) < hostOrder(st.Hosts[j].Name) })
}

// hostOrder sorts node1..nodeN by number, then the LDAP host.
func hostOrder(name string) int {
	var n int
	if _, err := fmt.Sscanf(name, "node%d", &n); err == nil {
		return n
	}
	return 1 << 30
}

// ensureBridge gives the lab its id, subnet and bridge, under the machine-wide registry lock so
// that concurrent labs never pick the same. It reports whether the bridge was made anew, in
// which case every host's network is made anew too.
func (l *Lab) ensureBridge(ctx context.Context, st *state, owner int) (bool, error) {
	reg, err := lockRegistry()
	if err != nil {
		return false, err
	}
	defer reg.unlock()
	id, err := claimID(l.dir, owner)
	if err != nil {
		return false, err
	}
	if st.ID != "" && st.ID != id {
		return false, fmt.Errorf("state.json says lab %s, the registry says %s (run testenv down first)", st.ID, id)
	}
	st.ID = id
	st.Bridge = namePrefix + id
	if linkExists(st.Bridge) && st.Subnet != "" {
		return false, nil
	}
	used, err := usedPrefixes(ctx)
	if err != nil {
		return false, err
	}
	candidates := subnetCandidates(id)
	if prev, err := netip.ParsePrefix(st.Subnet); err == nil {
		candidates = append([]netip.Prefix{prev}, candidates...) // keep the addresses the lab had
	}
	subnet, err := pickSubnet(candidates, used)
	if err != nil {
		return false, err
	}
	if st.Subnet != "" && st.Subnet != subnet.String() {
		st.Hosts = nil // the addresses change: the hosts are made anew
	}
	st.Subnet = subnet.String()
	st.Gateway = hostAddr(subnet, 1).String()
	for _, h := range st.Hosts {
		h.PID, h.StartTime, h.Killed, h.Partitioned = 0, 0, false, false
	}
	if err := ipBatch(ctx, "", false, []string{
		"link add " + st.Bridge + " type bridge",
		"addr add " + st.Gateway + "/24 dev " + st.Bridge,
		"link set " + st.Bridge + " up",
	}); err != nil {
		return false, fmt.Errorf("create bridge: %w", err)
	}
	l.logf("lab %s: bridge %s, gateway %s on %s", id, st.Bridge, st.Gateway, st.Subnet)
	return true, writeClaim(newClaim(id, l.dir, owner, st.Subnet))
}

// ensureHostNetworks gives every host its network namespace and its veth link on the bridge,
// with eth0 carrying the host's address inside. A host whose namespace or link is missing (or
// every host, when the bridge is new) gets both made anew.
func ensureHostNetworks(ctx context.Context, st *state, fresh bool) error {
	var root []string
	var made []*hostState
	for _, h := range st.Hosts {
		if !fresh && netnsExists(h.Netns) && linkExists(h.Link) {
			continue
		}
		if netnsExists(h.Netns) {
			if err := killAll(ctx, func() []proc { return procsInNetns(h.Netns) }); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
			if err := ipBatch(ctx, "", true, []string{"link del " + h.Link, "netns del " + h.Netns}); err != nil && linkExists(h.Link) {
				return err
			}
		}
		h.PID, h.StartTime = 0, 0
		root = append(root,
			"netns add "+h.Netns,
			"link add "+h.Link+" type veth peer name eth0 netns "+h.Netns,
			"link set "+h.Link+" master "+st.Bridge,
		)
		if !h.Killed && !h.Partitioned {
			root = append(root, "link set "+h.Link+" up")
		}
		made = append(made, h)
	}
	if err := ipBatch(ctx, "", false, root); err != nil {
		return fmt.Errorf("create host links: %w", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(made))
	for i, h := range made {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ipBatch(ctx, h.Netns, false, []string{
				"link set lo up",
				"addr add " + h.Address + "/24 dev eth0",
				"link set eth0 up",
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Down removes every process, network namespace, link and mount of the lab in dir, and the
// files the lab wrote there. It needs no state: what state.json does not name is found by the
// lab's name prefix. It is safe to run twice.
func Down(ctx context.Context, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("lab directory %s: %w", dir, err)
	}
	var fl *fileLock
	if _, err := os.Stat(abs); err == nil {
		if fl, err = lockFile(filepath.Join(abs, ".lock")); err != nil {
			return err
		}
	}
	defer fl.unlock()
	st, _ := loadState(abs)

	reg, err := lockRegistry()
	if err != nil {
		return err
	}
	claims, err := readClaims()
	if err != nil {
		reg.unlock()
		return err
	}
	ids := map[string]bool{}
	if st.ID != "" {
		ids[st.ID] = true
	}
	derived := labID(abs, 0)
	derivedTaken := false
	for _, c := range claims {
		if c.Dir == abs {
			ids[c.ID] = true
		} else if c.ID == derived {
			derivedTaken = true
		}
	}
	if !derivedTaken {
		ids[derived] = true
	}
	var errs []error
	for _, h := range st.Hosts {
		if running(h.PID, h.StartTime) {
			_ = syscall.Kill(h.PID, syscall.SIGKILL)
		}
	}
	for id := range ids {
		errs = append(errs, removeLab(ctx, abs, id))
		errs = append(errs, removeClaim(id))
	}
	reg.unlock()

	for _, name := range []string{"state.json", "inventory.hcl", "ldap.vars.hcl", "known_hosts", "authorized_keys", "id_ed25519", "id_ed25519.pub", "hosts", "ldap"} {
		if err := os.RemoveAll(filepath.Join(abs, name)); err != nil {
			errs = append(errs, fmt.Errorf("remove lab files: %w", err))
		}
	}
	if fl != nil {
		_ = os.Remove(filepath.Join(abs, ".lock"))
		_ = os.Remove(abs) // only when empty: the directory may hold more than the lab
	}
	return errors.Join(errs...)
}

// removeLab kills the processes of lab id (those in its network namespaces and the sshd and
// slapd run from its directory) and deletes its namespaces, links and bridge.
func removeLab(ctx context.Context, dir, id string) error {
	prefix := namePrefix + id
	netnses, err := listNetns()
	if err != nil {
		return err
	}
	var mine []string
	inos := map[uint64]bool{}
	for _, n := range netnses {
		if strings.HasPrefix(n, prefix+"-") {
			mine = append(mine, n)
			if ino, err := nsInode(filepath.Join("/run/netns", n)); err == nil {
				inos[ino] = true
			}
		}
	}
	hostsDir, ldapDir := filepath.Join(dir, "hosts")+"/", filepath.Join(dir, "ldap")+"/"
	err = killAll(ctx, func() []proc {
		return procsWhere(func(pid int) bool {
			if ino, err := nsInode(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && inos[ino] {
				return true
			}
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if err != nil {
				return false
			}
			args := strings.Split(string(b), "\x00")
			prog := filepath.Base(args[0])
			if prog != "sshd" && prog != "slapd" {
				return false
			}
			for _, a := range args[1:] {
				if strings.HasPrefix(a, hostsDir) || strings.HasPrefix(a, ldapDir) {
					return true
				}
			}
			return false
		})
	})
	if err != nil {
		return fmt.Errorf("lab %s: %w", id, err)
	}
	links, err := listLinks(ctx)
	if err != nil {
		return err
	}
	var lines []string
	bridge := false
	for _, n := range links {
		switch {
		case n == prefix:
			bridge = true
		case strings.HasPrefix(n, prefix+"v"):
			lines = append(lines, "link del "+n)
		}
	}
	for _, n := range mine {
		lines = append(lines, "netns del "+n)
	}
	if bridge {
		lines = append(lines, "link del "+prefix)
	}
	if err := ipBatch(ctx, "", true, lines); err != nil {
		return fmt.Errorf("lab %s: %w", id, err)
	}
	return nil
}

// sweepStale downs test labs whose owning process is gone (a test binary that was killed
// before its cleanup ran).
func sweepStale(ctx context.Context, log io.Writer) {
	claims, err := readClaims()
	if err != nil {
		return
	}
	pidns, err := nsInode("/proc/self/ns/pid")
	if err != nil {
		return
	}
	for _, c := range claims {
		if c.Owner == 0 || c.Owner == os.Getpid() || c.OwnerPIDNS != pidns {
			continue // a CLI lab, ours, or one whose owner we cannot see
		}
		if _, live := startTime(c.Owner); live {
			continue
		}
		fmt.Fprintf(log, "removing stale test lab %s in %s\n", c.ID, c.Dir)
		_ = Down(ctx, c.Dir)
	}
}
