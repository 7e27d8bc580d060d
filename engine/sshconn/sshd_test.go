package sshconn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshdPath is where Debian installs the OpenSSH server.
const sshdPath = "/usr/sbin/sshd"

// testKey is a key pair written to a file in OpenSSH format.
type testKey struct {
	file   string
	priv   crypto.PrivateKey
	signer ssh.Signer
}

func (k testKey) pub() ssh.PublicKey { return k.signer.PublicKey() }

// newKey writes a new private key of type "ed25519" or "ecdsa" to dir/name.
func newKey(t testing.TB, dir, name, typ string) testKey {
	t.Helper()
	var priv crypto.PrivateKey
	switch typ {
	case "ed25519":
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	case "ecdsa":
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		priv = k
	default:
		t.Fatalf("unknown key type %q", typ)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, name)
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{file: file, priv: priv, signer: signer}
}

// sshd is a real OpenSSH server on loopback with its own configuration, host keys and
// authorized_keys. It is stopped when the test ends.
type sshd struct {
	t        testing.TB
	dir      string
	port     int
	hostKeys []testKey
	client   testKey // authorized client key
	user     string
	extra    []string // extra sshd_config lines
	listen   []string // addresses to listen on; default 127.0.0.1
	cmd      *exec.Cmd
	exited   chan struct{}
	logs     []string // one log file per start
}

// sshdOptions configure startSSHD.
type sshdOptions struct {
	hostKeyTypes []string // default ed25519
	extra        []string
	listen       []string
	client       *testKey // default: a new ed25519 key
}

// startSSHD starts sshd on a free loopback port; it skips the test when sshd is not installed.
func startSSHD(t testing.TB, o sshdOptions) *sshd {
	t.Helper()
	if _, err := os.Stat(sshdPath); err != nil {
		t.Skipf("sshd not installed (%v): install openssh-server to run the SSH integration tests", err)
	}
	// sshd refuses to start without its privilege separation directory, which the service
	// manager normally creates.
	if _, err := os.Stat("/run/sshd"); err != nil {
		if os.Geteuid() != 0 {
			t.Skip("/run/sshd is missing and the test is not root: cannot run sshd")
		}
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	s := &sshd{t: t, dir: t.TempDir(), user: u.Username, extra: o.extra, listen: o.listen}
	if len(s.listen) == 0 {
		s.listen = []string{"127.0.0.1"}
	}
	types := o.hostKeyTypes
	if len(types) == 0 {
		types = []string{"ed25519"}
	}
	for i, typ := range types {
		s.hostKeys = append(s.hostKeys, newKey(t, s.dir, fmt.Sprintf("host_key_%d", i), typ))
	}
	if o.client != nil {
		s.client = *o.client
	} else {
		s.client = newKey(t, s.dir, "id_ed25519", "ed25519")
	}
	s.authorize(s.client.pub())
	t.Cleanup(s.stop)
	for attempt := 0; ; attempt++ {
		s.port = freePort(t)
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 2 {
			t.Fatal(err)
		}
	}
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *sshd) authorize(keys ...ssh.PublicKey) {
	var b strings.Builder
	for _, k := range keys {
		b.Write(ssh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(filepath.Join(s.dir, "authorized_keys"), []byte(b.String()), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// start writes the configuration and starts sshd, waiting until it listens.
func (s *sshd) start() error {
	var cfg strings.Builder
	for _, a := range s.listen {
		fmt.Fprintf(&cfg, "ListenAddress %s\n", net.JoinHostPort(a, strconv.Itoa(s.port)))
	}
	for _, k := range s.hostKeys {
		fmt.Fprintf(&cfg, "HostKey %s\n", k.file)
	}
	fmt.Fprintf(&cfg, "AuthorizedKeysFile %s\n", filepath.Join(s.dir, "authorized_keys"))
	fmt.Fprintf(&cfg, "PidFile %s\n", filepath.Join(s.dir, "sshd.pid"))
	cfg.WriteString("UsePAM no\nPermitRootLogin prohibit-password\nStrictModes no\n" +
		"PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel INFO\n")
	// bash run by sshd reads ~/.bashrc; keep the commands away from the developer's (which may
	// cost far more than the transport being tested).
	fmt.Fprintf(&cfg, "SetEnv HOME=%s\n", s.dir)
	for _, l := range s.extra {
		cfg.WriteString(l + "\n")
	}
	cfgFile := filepath.Join(s.dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		return err
	}
	logFile := filepath.Join(s.dir, fmt.Sprintf("sshd.%d.log", len(s.logs)))
	log, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer log.Close()
	s.logs = append(s.logs, logFile)
	cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfgFile)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) { cmd.Wait(); close(exited) }(s.exited)

	want := fmt.Sprintf("Server listening on %s port %d", s.listen[len(s.listen)-1], s.port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(logFile)
		if strings.Contains(string(data), want) {
			break
		}
		select {
		case <-s.exited:
			return fmt.Errorf("sshd exited:\n%s", s.log())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not listen within 10s:\n%s", s.log())
		}
	}
	return nil
}

// log returns everything every start of this sshd has logged.
func (s *sshd) log() string {
	var b strings.Builder
	for _, f := range s.logs {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// accepted counts the connections sshd authenticated. sshd writes the line before the connection
// can run its first command, so it is complete once a command over every connection has ended.
func (s *sshd) accepted() int {
	return strings.Count(s.log(), "Accepted publickey for ")
}

// addr returns host:port of the first listen address.
func (s *sshd) addr() string { return net.JoinHostPort(s.listen[0], strconv.Itoa(s.port)) }

// knownHosts writes a known_hosts file that lists this server's first host key and returns it.
func (s *sshd) knownHosts(t testing.TB) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{s.addr()}, s.hostKeys[0].pub()) + "\n"
	if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// config returns a Config that connects to this server with its authorized key.
func (s *sshd) config(name, knownHosts string) Config {
	return Config{
		Name: name, Address: s.listen[0], Port: s.port, User: s.user,
		PrivateKeys: []string{s.client.file}, KnownHosts: knownHosts,
	}
}

// signal sends sig to sshd and every process it started (per-connection servers and the
// commands they run), which are in other process groups.
func (s *sshd) signal(sig syscall.Signal) {
	for _, pid := range descendants(s.cmd.Process.Pid) {
		syscall.Kill(pid, sig)
	}
	s.cmd.Process.Signal(sig)
}

// kill kills sshd and its connections, as a reboot would, and waits for the listener to exit.
func (s *sshd) kill() {
	s.signal(syscall.SIGKILL)
	<-s.exited
}

// restart kills sshd and starts it again on the same port with the same keys.
func (s *sshd) restart() {
	s.t.Helper()
	s.kill()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sshd) stop() {
	if s.cmd == nil {
		return
	}
	s.signal(syscall.SIGCONT) // in case a test stopped it
	s.kill()
	if f, ok := s.t.(interface{ Failed() bool }); ok && f.Failed() {
		s.t.Logf("sshd log:\n%s", s.log())
	}
}

// descendants returns the processes below pid, read from /proc.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may contain spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
