package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// namePrefix starts every kernel name (bridge, links, network namespaces) a lab makes.
const namePrefix = "rbl"

// registryDir holds the machine-wide lock that serialises subnet choice and the claims that map
// lab ids to lab directories, so concurrent labs never share an id, a subnet or a name.
const registryDir = "/run/runbook-testenv"

// claim records which directory (and, for test labs, which process) owns a lab id.
type claim struct {
	ID     string `json:"id"`
	Dir    string `json:"dir"`
	Owner  int    `json:"owner,omitempty"`
	Subnet string `json:"subnet,omitempty"`
	// OwnerPIDNS is the PID namespace in which Owner is a pid.
	OwnerPIDNS uint64 `json:"owner_pidns,omitempty"`
}

// newClaim returns the claim of lab id in dir by owner (0 for CLI labs).
func newClaim(id, dir string, owner int, subnet string) claim {
	c := claim{ID: id, Dir: dir, Owner: owner, Subnet: subnet}
	if owner != 0 {
		c.OwnerPIDNS, _ = nsInode("/proc/self/ns/pid")
	}
	return c
}

func claimPath(id string) string { return filepath.Join(registryDir, "labs", id+".json") }

func lockRegistry() (*fileLock, error) {
	if err := os.MkdirAll(filepath.Join(registryDir, "labs"), 0o755); err != nil {
		return nil, fmt.Errorf("lab registry: %w", err)
	}
	return lockFile(filepath.Join(registryDir, "lock"))
}

func readClaims() ([]claim, error) {
	paths, err := filepath.Glob(filepath.Join(registryDir, "labs", "*.json"))
	if err != nil {
		return nil, fmt.Errorf("lab registry: %w", err)
	}
	var out []claim
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var c claim
		if json.Unmarshal(b, &c) == nil && c.ID != "" {
			out = append(out, c)
		}
	}
	return out, nil
}

func writeClaim(c claim) error {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode lab claim: %w", err)
	}
	return writeFileAtomic(claimPath(c.ID), b, 0o644)
}

func removeClaim(id string) error {
	if err := os.Remove(claimPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove lab claim: %w", err)
	}
	return nil
}

// claimID picks the lab id for dir: the one it already claims, else the first derived id that no
// other directory claims and no kernel object uses. The registry lock must be held.
func claimID(dir string, owner int) (string, error) {
	claims, err := readClaims()
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, c := range claims {
		if c.Dir == dir {
			return c.ID, nil
		}
		taken[c.ID] = true
	}
	links, err := listLinks(context.Background())
	if err != nil {
		return "", err
	}
	for seq := range 64 {
		id := labID(dir, seq)
		if taken[id] || hasPrefix(links, namePrefix+id) {
			continue
		}
		return id, writeClaim(newClaim(id, dir, owner, ""))
	}
	return "", errors.New("no free lab id")
}

func hasPrefix(names []string, prefix string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// subnetCandidates are the /24s a lab may take, tried from an offset derived from the id so
// concurrent labs rarely contend for the same one.
func subnetCandidates(id string) []netip.Prefix {
	var off int
	for _, c := range id {
		off = off*31 + int(c)
	}
	var out []netip.Prefix
	for _, base := range [][2]byte{{10, 213}, {172, 30}} {
		for i := range 256 {
			n := byte((off + i) % 256)
			out = append(out, netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], n, 0}), 24))
		}
	}
	return out
}

// usedPrefixes returns every IPv4 prefix on this machine: addresses on any link and routes in
// any table (the default route excluded).
func usedPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrOut, err := runCmd(ctx, "ip", "-j", "-4", "addr", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(addrOut), &links); err != nil {
		return nil, fmt.Errorf("parse ip addr: %w", err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if p, err := netip.ParsePrefix(fmt.Sprintf("%s/%d", a.Local, a.PrefixLen)); err == nil {
				out = append(out, p.Masked())
			}
		}
	}
	routeOut, err := runCmd(ctx, "ip", "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	var routes []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal([]byte(routeOut), &routes); err != nil {
		return nil, fmt.Errorf("parse ip route: %w", err)
	}
	for _, r := range routes {
		dst := r.Dst
		if dst == "default" || dst == "" {
			continue
		}
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		if p, err := netip.ParsePrefix(dst); err == nil && p.Bits() > 0 {
			out = append(out, p.Masked())
		}
	}
	return out, nil
}

// pickSubnet returns the first candidate that overlaps nothing in use.
func pickSubnet(candidates, used []netip.Prefix) (netip.Prefix, error) {
	for _, c := range candidates {
		free := true
		for _, u := range used {
			if c.Overlaps(u) {
				free = false
				break
			}
		}
		if free {
			return c, nil
		}
	}
	return netip.Prefix{}, errors.New("no unused private /24 for the lab")
}

// hostAddr returns the address .n of the subnet.
func hostAddr(subnet netip.Prefix, n int) netip.Addr {
	b := subnet.Addr().As4()
	b[3] = byte(n)
	return netip.AddrFrom4(b)
}

// runCmd runs a command and returns its stdout; the error carries stderr.
func runCmd(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ipBatch runs ip commands, one per line, in one process; with netns they run in that network
// namespace; with force it goes on past failing lines (and still reports them).
func ipBatch(ctx context.Context, netns string, force bool, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	args := []string{}
	if netns != "" {
		args = append(args, "-n", netns)
	}
	if force {
		args = append(args, "-force")
	}
	args = append(args, "-b", "-")
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// listLinks returns the names of every link in the root network namespace.
func listLinks(ctx context.Context) ([]string, error) {
	out, err := runCmd(ctx, "ip", "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		Name string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return nil, fmt.Errorf("parse ip link: %w", err)
	}
	names := make([]string, 0, len(links))
	for _, l := range links {
		names = append(names, l.Name)
	}
	return names, nil
}

// listNetns returns the names of every named network namespace.
func listNetns() ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, nil
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}

func netnsExists(name string) bool {
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}
