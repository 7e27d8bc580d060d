package testenv_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runbook/runbook/testenv"
)

// sshRun runs cmd on addr with the real ssh client, the lab key and strict host key checking.
func sshRun(lab *testenv.Lab, addr, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := exec.CommandContext(ctx, "ssh", "-i", lab.KeyPath(), "-o", "UserKnownHostsFile="+lab.KnownHostsPath(),
		"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=1", "root@"+addr, cmd)
	out, err := c.CombinedOutput()
	return string(out), err
}

// pings reports whether addr answers one ping from the operator's namespace within a second.
func pings(addr string) bool {
	return exec.Command("ping", "-c", "1", "-W", "1", addr).Run() == nil
}

func mustHost(t *testing.T, lab *testenv.Lab, name string) testenv.Host {
	t.Helper()
	h, err := lab.Host(name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// startRedis starts a daemonized redis-server over SSH on the host and returns its pid.
func startRedis(t *testing.T, lab *testenv.Lab, h testenv.Host, port int) int {
	t.Helper()
	script := fmt.Sprintf(`set -e
printf '%%s\n' 'bind %[1]s' 'port %[2]d' 'protected-mode no' 'daemonize yes' 'dir /var/lib/redis' \
  'pidfile /run/redis/redis-%[2]d.pid' 'logfile /var/log/redis/redis-%[2]d.log' 'save ""' > /etc/redis/r%[2]d.conf
redis-server /etc/redis/r%[2]d.conf
i=0; until [ -s /run/redis/redis-%[2]d.pid ] && redis-cli -h %[1]s -p %[2]d ping >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 500 ]; sleep 0.01; done
cat /run/redis/redis-%[2]d.pid`, h.Address, port)
	out, err := sshRun(lab, h.Address, script)
	if err != nil {
		t.Fatalf("start redis on %s: %v\n%s", h.Name, err, out)
	}
	// The pid file holds the pid in the host's PID namespace; find the process from outside.
	st, err := lab.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, hs := range st.Hosts {
		for _, r := range hs.Redis {
			if hs.Name == h.Name && r.Listen == fmt.Sprintf("%s:%d", h.Address, port) {
				return r.PID
			}
		}
	}
	t.Fatalf("redis-server on %s:%d not in status: %+v", h.Name, port, st)
	return 0
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return f[0] != "Z"
}

func TestHostsAnswerSSHWithTheirOwnNameAndFolders(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Nodes: 3})
	hosts := lab.Hosts()
	if len(hosts) != 3 {
		t.Fatalf("hosts = %v, want 3", hosts)
	}
	for _, h := range hosts {
		out, err := sshRun(lab, h.Address, "hostname && echo "+h.Name+" > /etc/redis/owner && echo data > /var/lib/redis/"+h.Name)
		if err != nil {
			t.Fatalf("ssh %s: %v\n%s", h.Name, err, out)
		}
		if got := strings.TrimSpace(out); got != h.Name {
			t.Errorf("ssh %s hostname = %q, want %q", h.Address, got, h.Name)
		}
	}
	for _, h := range hosts {
		out, err := sshRun(lab, h.Address, "cat /etc/redis/owner; ls /var/lib/redis")
		if err != nil {
			t.Fatalf("ssh %s: %v\n%s", h.Name, err, out)
		}
		if want := h.Name + "\n" + h.Name + "\n"; out != want {
			t.Errorf("%s sees /etc/redis/owner and /var/lib/redis as %q, want %q (folders must be private)", h.Name, out, want)
		}
		dir, err := lab.PrivateDir(h.Name, "/etc/redis")
		if err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "owner")); err != nil || string(b) != h.Name+"\n" {
			t.Errorf("%s: lab folder %s holds %q, %v", h.Name, dir, b, err)
		}
	}
	if _, err := os.Stat("/etc/redis/owner"); err == nil {
		t.Error("a host's /etc/redis/owner leaked into the machine's /etc/redis")
	}
	// A process started by a host sees only that host's processes.
	out, err := lab.Exec(context.Background(), "node2", "ps -e -o comm= | sort -u | tr '\\n' ' '")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "redis") || !strings.Contains(out, "sshd") {
		t.Errorf("node2 processes: %q", out)
	}
}

func TestKillAndReviveWipe(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Nodes: 3})
	ctx := context.Background()
	n1 := mustHost(t, lab, "node1")
	pid := startRedis(t, lab, n1, 6379)
	other := startRedis(t, lab, mustHost(t, lab, "node2"), 6379)

	if err := lab.Kill(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Errorf("redis-server %d of node1 survived the kill", pid)
	}
	if out, err := exec.Command("ip", "netns", "pids", "rbl"+lab.ID()+"-node1").CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("processes left in node1's namespace after the kill: %q, %v", out, err)
	}
	if !alive(other) {
		t.Errorf("redis-server %d of node2 died with node1", other)
	}
	if out, err := sshRun(lab, n1.Address, "hostname"); err == nil {
		t.Errorf("ssh to killed node1 succeeded: %s", out)
	}
	if pings(n1.Address) {
		t.Error("killed node1 answers ping")
	}
	if _, err := lab.Exec(ctx, "node1", "true"); err == nil {
		t.Error("Exec on a killed host succeeded")
	}
	st, err := lab.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hosts[0].Alive || !st.Hosts[1].Alive {
		t.Errorf("status after kill: %+v", st.Hosts)
	}

	if err := lab.Revive(ctx, "node1", true); err != nil {
		t.Fatal(err)
	}
	// StrictHostKeyChecking=yes against the same known_hosts proves the host key is the same.
	out, err := sshRun(lab, n1.Address, "hostname; ls -A /etc/redis /var/lib/redis /var/log/redis /run/redis; pgrep -c redis-server || true")
	if err != nil {
		t.Fatalf("ssh after revive: %v\n%s", err, out)
	}
	want := "node1\n/etc/redis:\n\n/run/redis:\n\n/var/lib/redis:\n\n/var/log/redis:\n0\n"
	if out != want {
		t.Errorf("node1 after revive --wipe:\n%s\nwant:\n%s", out, want)
	}
	if !pings(n1.Address) {
		t.Error("revived node1 does not answer ping")
	}
}

func TestReviveKeepsDisk(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Nodes: 1})
	ctx := context.Background()
	n1 := mustHost(t, lab, "node1")
	startRedis(t, lab, n1, 6380)
	if err := lab.Kill(ctx, "node1"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Revive(ctx, "node1", false); err != nil {
		t.Fatal(err)
	}
	out, err := sshRun(lab, n1.Address, "ls /etc/redis; ls /run/redis | wc -l; pgrep -c redis-server || true")
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	// The config is on disk and stays; /run is emptied by a boot; nothing was restarted.
	if want := "r6380.conf\n0\n0\n"; out != want {
		t.Errorf("node1 after revive: %q, want %q", out, want)
	}
	if err := lab.Revive(ctx, "node1", false); err == nil {
		t.Error("revive of a running host succeeded")
	}
}

func TestPartitionAndHeal(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Nodes: 3})
	ctx := context.Background()
	n2, n3 := mustHost(t, lab, "node2"), mustHost(t, lab, "node3")
	if err := lab.Partition(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	if pings(n2.Address) {
		t.Error("partitioned node2 answers the operator's ping")
	}
	if _, err := lab.Exec(ctx, "node3", "ping -c1 -W1 "+n2.Address); err == nil {
		t.Error("node3 reaches partitioned node2")
	}
	if _, err := lab.Exec(ctx, "node2", "ping -c1 -W1 "+n3.Address); err == nil {
		t.Error("partitioned node2 reaches node3")
	}
	st, err := lab.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Hosts[1].Partitioned || !st.Hosts[1].Alive || st.Hosts[2].Partitioned {
		t.Errorf("status while partitioned: %+v", st.Hosts)
	}
	if err := lab.Heal(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	if !pings(n2.Address) {
		t.Error("healed node2 does not answer ping")
	}
	if out, err := lab.Exec(ctx, "node3", "ping -c1 -W1 "+n2.Address); err != nil {
		t.Errorf("node3 does not reach healed node2: %v\n%s", err, out)
	}
	if out, err := sshRun(lab, n2.Address, "hostname"); err != nil || out != "node2\n" {
		t.Errorf("ssh to healed node2: %q, %v", out, err)
	}
}

// leftovers lists what of the lab id is still on the machine.
func leftovers(t *testing.T, id, dir string, pids []int) []string {
	t.Helper()
	var out []string
	ns, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(ns)+string(links), "\n") {
		if strings.Contains(line, "rbl"+id) {
			out = append(out, line)
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, dir) || strings.Contains(line, "rbl"+id) {
			out = append(out, "mount: "+line)
		}
	}
	for _, pid := range pids {
		if alive(pid) {
			out = append(out, fmt.Sprintf("process %d", pid))
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(dir+"/")) {
			out = append(out, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func sshdPIDs(t *testing.T, dir string) []int {
	t.Helper()
	var pids []int
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(dir+"/hosts/")) {
			var pid int
			fmt.Sscanf(p, "/proc/%d/cmdline", &pid)
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestDownLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	lab, err := testenv.Up(ctx, testenv.Options{Dir: dir, Nodes: 3})
	if err != nil {
		t.Fatal(err)
	}
	id := lab.ID()
	pids := append(sshdPIDs(t, dir), startRedis(t, lab, mustHost(t, lab, "node1"), 6379))
	if len(pids) != 4 {
		t.Fatalf("found processes %v, want 3 sshd and a redis-server", pids)
	}
	if err := lab.Partition(ctx, "node3"); err != nil {
		t.Fatal(err)
	}
	if err := lab.Kill(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	if len(leftovers(t, id, dir, pids)) == 0 {
		t.Fatal("leftovers sees nothing of a running lab")
	}
	if err := lab.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, id, dir, pids); len(left) > 0 {
		t.Errorf("after down:\n%s", strings.Join(left, "\n"))
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("lab files left in %s: %v", dir, entries)
	}
	if err := testenv.Down(ctx, dir); err != nil {
		t.Errorf("second down: %v", err)
	}
}

func TestDownWithoutState(t *testing.T) {
	// The lab's own process crashed and its state is lost: down finds everything by name.
	dir := t.TempDir()
	ctx := context.Background()
	lab, err := testenv.Up(ctx, testenv.Options{Dir: dir, Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	id := lab.ID()
	pids := sshdPIDs(t, dir)
	if err := os.Remove(filepath.Join(dir, "state.json")); err != nil {
		t.Fatal(err)
	}
	if err := testenv.Down(ctx, dir); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, id, dir, pids); len(left) > 0 {
		t.Errorf("after down:\n%s", strings.Join(left, "\n"))
	}
}

func TestUpTwiceIsANoOp(t *testing.T) {
	dir := t.TempDir()
	lab := testenv.Start(t, testenv.Options{Dir: dir, Nodes: 2})
	ctx := context.Background()
	if err := lab.Kill(ctx, "node2"); err != nil {
		t.Fatal(err)
	}
	before := sshdPIDs(t, dir)
	inv, _ := os.ReadFile(lab.InventoryPath())
	kh, _ := os.ReadFile(lab.KnownHostsPath())
	again, err := testenv.Up(ctx, testenv.Options{Dir: dir, Nodes: 2})
	if err != nil {
		t.Fatal(err)
	}
	if after := sshdPIDs(t, dir); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("sshd processes changed from %v to %v", before, after)
	}
	inv2, _ := os.ReadFile(again.InventoryPath())
	kh2, _ := os.ReadFile(again.KnownHostsPath())
	if !bytes.Equal(inv, inv2) || !bytes.Equal(kh, kh2) {
		t.Error("inventory or known_hosts changed")
	}
	st, err := again.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hosts[1].Alive {
		t.Error("up revived the killed node2")
	}
	if _, err := testenv.Up(ctx, testenv.Options{Dir: dir, Nodes: 1}); err == nil {
		t.Error("up with fewer nodes than the lab has succeeded")
	}
}

func TestConcurrentLabsGetTheirOwnNetworks(t *testing.T) {
	if reason := testenv.Unsupported(); reason != "" {
		t.Skip(reason)
	}
	ctx := context.Background()
	labs := make([]*testenv.Lab, 3)
	errs := make([]error, len(labs))
	var wg sync.WaitGroup
	for i := range labs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			labs[i], errs[i] = testenv.Up(ctx, testenv.Options{Dir: t.TempDir(), Nodes: 1})
		}()
	}
	wg.Wait()
	for i, lab := range labs {
		if lab != nil {
			t.Cleanup(func() {
				if err := lab.Down(ctx); err != nil {
					t.Error(err)
				}
			})
		}
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	seen := map[string]bool{}
	for _, lab := range labs {
		h := lab.Hosts()[0]
		subnet := h.Address[:strings.LastIndexByte(h.Address, '.')]
		if seen[lab.ID()] || seen[subnet] {
			t.Errorf("lab %s (%s) shares its id or subnet with another", lab.ID(), h.Address)
		}
		seen[lab.ID()], seen[subnet] = true, true
		if out, err := sshRun(lab, h.Address, "hostname"); err != nil || out != "node1\n" {
			t.Errorf("ssh %s: %q, %v", h.Address, out, err)
		}
	}
}

func TestLDAPHost(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Nodes: 1, LDAP: true})
	info := lab.LDAP()
	if info == nil {
		t.Fatal("no LDAP info")
	}
	vars, err := os.ReadFile(lab.LDAPVarsPath())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`gluu_ldap_url           = "` + info.URL + `"`, `gluu_ldap_password_file = "` + info.PasswordFile + `"`} {
		if !strings.Contains(string(vars), want) {
			t.Errorf("ldap.vars.hcl lacks %s:\n%s", want, vars)
		}
	}
	gluu := mustHost(t, lab, testenv.LDAPHost)
	if !strings.HasPrefix(info.URL, "ldap://"+gluu.Address+":") {
		t.Errorf("ldap url %s is not on the gluu host %s", info.URL, gluu.Address)
	}
	search := func() error {
		return exec.Command("ldapsearch", "-x", "-o", "nettimeout=2", "-H", info.URL, "-D", info.BindDN, "-y", info.PasswordFile, "-b", "o=gluu", "-s", "base", "dn").Run()
	}
	if err := search(); err != nil {
		t.Fatalf("ldapsearch: %v", err)
	}
	if out, err := sshRun(lab, gluu.Address, "hostname"); err != nil || out != "gluu\n" {
		t.Errorf("ssh gluu: %q, %v", out, err)
	}
	inv, _ := os.ReadFile(lab.InventoryPath())
	if !strings.Contains(string(inv), `host "gluu"`) || !strings.Contains(string(inv), "hosts = [host.node1]\n") {
		t.Errorf("inventory:\n%s", inv)
	}
	ctx := context.Background()
	if err := lab.Kill(ctx, testenv.LDAPHost); err != nil {
		t.Fatal(err)
	}
	if search() == nil {
		t.Error("ldap answers on a killed gluu host")
	}
	if err := lab.Revive(ctx, testenv.LDAPHost, false); err != nil {
		t.Fatal(err)
	}
	if err := search(); err != nil {
		t.Errorf("ldapsearch after revive: %v", err)
	}
}

func TestStatusJSONShape(t *testing.T) {
	lab := testenv.Start(t, testenv.Options{Nodes: 2})
	st, err := lab.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	hosts := got["hosts"].([]any)
	first := hosts[0].(map[string]any)
	if first["name"] != "node1" || first["address"] != lab.Hosts()[0].Address || first["alive"] != true || first["partitioned"] != false {
		t.Errorf("hosts[0] = %v", first)
	}
	if got["ssh_key"] != lab.KeyPath() || got["known_hosts"] != lab.KnownHostsPath() {
		t.Errorf("status = %s", b)
	}
	if _, ok := got["ldap"]; ok {
		t.Errorf("ldap in the status of a lab without LDAP: %s", b)
	}
}

func benchmarkUpDown(b *testing.B, nodes int) {
	if reason := testenv.Unsupported(); reason != "" {
		b.Skip(reason)
	}
	ctx := context.Background()
	if err := testenv.EnsurePackages(ctx, os.Stderr); err != nil {
		b.Fatal(err)
	}
	var up, down time.Duration
	for b.Loop() {
		dir := b.TempDir()
		t0 := time.Now()
		lab, err := testenv.Up(ctx, testenv.Options{Dir: dir, Nodes: nodes, SkipInstall: true})
		up += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := lab.Down(ctx); err != nil {
			b.Fatal(err)
		}
		down += time.Since(t1)
	}
	b.ReportMetric(float64(up.Milliseconds())/float64(b.N), "ms-up/op")
	b.ReportMetric(float64(down.Milliseconds())/float64(b.N), "ms-down/op")
}

func BenchmarkUpDown3(b *testing.B)  { benchmarkUpDown(b, 3) }
func BenchmarkUpDown30(b *testing.B) { benchmarkUpDown(b, 30) }
