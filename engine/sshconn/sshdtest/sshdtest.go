// Package sshdtest runs a real OpenSSH server for tests, as net/http/httptest runs an HTTP one:
// on loopback, with its own configuration, host keys and authorized_keys, as the user running the
// test, and stopped when the test ends. It skips the test where sshd is not installed or cannot
// run. It knows nothing of runbook's SSH client: a test makes its own client configuration from
// the server's address, port, user and client key.
package sshdtest

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

// Path is where Debian installs the OpenSSH server.
const Path = "/usr/sbin/sshd"

// Key is a key pair whose private half is written to a file in OpenSSH format.
type Key struct {
	File   string // the private key's file
	Priv   crypto.PrivateKey
	Signer ssh.Signer
}

// Pub returns the public half of k.
func (k Key) Pub() ssh.PublicKey { return k.Signer.PublicKey() }

// NewKey writes a new private key of type "ed25519" or "ecdsa" (P-256) to dir/name.
func NewKey(t testing.TB, dir, name, typ string) Key {
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
	return Key{File: file, Priv: priv, Signer: signer}
}

// Options configure Start. The zero value is one ed25519 host key, a new ed25519 client key and
// 127.0.0.1.
type Options struct {
	HostKeyTypes []string // "ed25519" or "ecdsa", in the order sshd offers them
	Extra        []string // more sshd_config lines
	Listen       []string // addresses to listen on
	Client       *Key     // the authorized client key
}

// Server is a running sshd.
type Server struct {
	Dir      string // its configuration, keys and logs
	Port     int
	Listen   []string
	HostKeys []Key
	Client   Key    // the authorized client key
	User     string // the user sshd runs as, and the one to log in as

	t      testing.TB
	extra  []string
	cmd    *exec.Cmd
	exited chan struct{}
	logs   []string // one log file per start
}

// Start starts sshd on a free loopback port and waits until it listens; it skips the test when
// sshd is not installed or cannot run.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if _, err := os.Stat(Path); err != nil {
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
	s := &Server{t: t, Dir: t.TempDir(), User: u.Username, extra: o.Extra, Listen: o.Listen}
	if len(s.Listen) == 0 {
		s.Listen = []string{"127.0.0.1"}
	}
	types := o.HostKeyTypes
	if len(types) == 0 {
		types = []string{"ed25519"}
	}
	for i, typ := range types {
		s.HostKeys = append(s.HostKeys, NewKey(t, s.Dir, fmt.Sprintf("host_key_%d", i), typ))
	}
	if o.Client != nil {
		s.Client = *o.Client
	} else {
		s.Client = NewKey(t, s.Dir, "id_ed25519", "ed25519")
	}
	s.Authorize(s.Client.Pub())
	t.Cleanup(s.stop)
	for attempt := 0; ; attempt++ {
		s.Port = FreePort(t)
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 2 {
			t.Fatal(err)
		}
	}
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Authorize makes keys the only ones sshd lets in.
func (s *Server) Authorize(keys ...ssh.PublicKey) {
	var b strings.Builder
	for _, k := range keys {
		b.Write(ssh.MarshalAuthorizedKey(k))
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "authorized_keys"), []byte(b.String()), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

// start writes the configuration and starts sshd, waiting until it listens.
func (s *Server) start() error {
	var cfg strings.Builder
	for _, a := range s.Listen {
		fmt.Fprintf(&cfg, "ListenAddress %s\n", net.JoinHostPort(a, strconv.Itoa(s.Port)))
	}
	for _, k := range s.HostKeys {
		fmt.Fprintf(&cfg, "HostKey %s\n", k.File)
	}
	fmt.Fprintf(&cfg, "AuthorizedKeysFile %s\n", filepath.Join(s.Dir, "authorized_keys"))
	fmt.Fprintf(&cfg, "PidFile %s\n", filepath.Join(s.Dir, "sshd.pid"))
	cfg.WriteString("UsePAM no\nPermitRootLogin prohibit-password\nStrictModes no\n" +
		"PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel INFO\n")
	// bash run by sshd reads ~/.bashrc; keep the commands away from the developer's (which may
	// cost far more than what is being tested).
	fmt.Fprintf(&cfg, "SetEnv HOME=%s\n", s.Dir)
	for _, l := range s.extra {
		cfg.WriteString(l + "\n")
	}
	cfgFile := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		return err
	}
	logFile := filepath.Join(s.Dir, fmt.Sprintf("sshd.%d.log", len(s.logs)))
	log, err := os.Create(logFile)
	if err != nil {
		return err
	}
	defer log.Close()
	s.logs = append(s.logs, logFile)
	cmd := exec.Command(Path, "-D", "-e", "-f", cfgFile)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) { cmd.Wait(); close(exited) }(s.exited)

	// sshd binds its addresses in an order of its own (OpenSSH: the last listed first) and logs
	// each once it listens: wait for every one of them.
	var want []string
	for _, a := range s.Listen {
		want = append(want, fmt.Sprintf("Server listening on %s port %d.", a, s.Port))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		data, _ := os.ReadFile(logFile)
		if containsAll(string(data), want) {
			break
		}
		select {
		case <-s.exited:
			return fmt.Errorf("sshd exited:\n%s", s.Log())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not listen within 10s:\n%s", s.Log())
		}
	}
	return nil
}

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// Log returns everything every start of this sshd has logged.
func (s *Server) Log() string {
	var b strings.Builder
	for _, f := range s.logs {
		data, _ := os.ReadFile(f)
		b.Write(data)
	}
	return b.String()
}

// Accepted counts the connections sshd authenticated. sshd writes the line before the connection
// can run its first command, so it is complete once a command over every connection has ended.
func (s *Server) Accepted() int {
	return strings.Count(s.Log(), "Accepted publickey for ")
}

// Addr returns host:port of the first listen address.
func (s *Server) Addr() string { return net.JoinHostPort(s.Listen[0], strconv.Itoa(s.Port)) }

// KnownHosts writes a known_hosts file that lists this server's first host key and returns its
// path.
func (s *Server) KnownHosts(t testing.TB) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{s.Addr()}, s.HostKeys[0].Pub()) + "\n"
	if err := os.WriteFile(file, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// PID returns the process id of the listening sshd.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Signal sends sig to sshd and every process it started (per-connection servers and the
// commands they run), which are in other process groups.
func (s *Server) Signal(sig syscall.Signal) {
	for _, pid := range Descendants(s.cmd.Process.Pid) {
		syscall.Kill(pid, sig)
	}
	s.cmd.Process.Signal(sig)
}

// Kill kills sshd and its connections, as a reboot would, and waits for the listener to exit.
func (s *Server) Kill() {
	s.Signal(syscall.SIGKILL)
	<-s.exited
}

// StartAgain starts sshd again after Kill, on the same port with the same keys.
func (s *Server) StartAgain() error { return s.start() }

// Restart kills sshd and starts it again on the same port with the same keys.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	s.Signal(syscall.SIGCONT) // in case a test stopped it
	s.Kill()
	if s.t.Failed() {
		s.t.Logf("sshd log:\n%s", s.Log())
	}
}

// Descendants returns the processes below pid, read from /proc.
func Descendants(pid int) []int {
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
