package sshconn

// Persistent connections (Config.Persist), like OpenSSH's ControlMaster with ControlPersist,
// which Ansible turns on by default: the SSH connection to a host is made by a small keeper
// process that outlives the run and serves later runs for Persist after the last one left, so a
// run shortly after another skips the TCP connect, the key exchange and the authentication.
//
// The keeper is this same binary started with RUNBOOK_SSH_MUX=1 (its main calls ServeMux). It
// listens on a unix socket in a folder only the user can enter; a run speaks SSH to it over that
// socket (an ephemeral host key the keeper writes beside the socket, no authentication beyond the
// folder's permissions) and the keeper relays every channel — sessions, forwarded connections,
// the sftp subsystem — with its requests (exec, exit-status, signals) to the host. When a run's
// connection to the keeper ends, so does every channel it opened on the host: the run lock, which
// lives as long as its session, is released as it would be without a keeper.

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// muxEnv marks a process started as a connection keeper.
const muxEnv = "RUNBOOK_SSH_MUX"

// MuxRequested reports whether this process was started as a connection keeper; the program's
// main must then call ServeMux instead of doing anything else.
func MuxRequested() bool { return os.Getenv(muxEnv) == "1" }

// muxRequest is what a run tells the keeper it starts, on the keeper's standard input.
type muxRequest struct {
	Config  Config        `json:"config"`
	Socket  string        `json:"socket"`
	Persist time.Duration `json:"persist"`
}

// muxReply is the keeper's first line on its standard output: ready, or why not.
type muxReply struct {
	Ready bool     `json:"ready,omitempty"`
	Err   *wireErr `json:"error,omitempty"`
	PID   int      `json:"pid,omitempty"`
}

// wireErr carries a connection error from the keeper to the run with its type, so that the run
// reports an unreachable host, a refused key or a changed host key exactly as it would have.
type wireErr struct {
	Kind        string     `json:"kind"`
	Message     string     `json:"message"`
	Host        string     `json:"host,omitempty"`
	Addr        string     `json:"addr,omitempty"`
	Via         string     `json:"via,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	User        string     `json:"user,omitempty"`
	Keys        []string   `json:"keys,omitempty"`
	KeyType     string     `json:"key_type,omitempty"`
	Fingerprint string     `json:"fingerprint,omitempty"`
	KnownHosts  string     `json:"known_hosts,omitempty"`
	Line        string     `json:"line,omitempty"`
	Expected    []KnownKey `json:"expected,omitempty"`
	Cause       string     `json:"cause,omitempty"`
}

func toWire(err error) *wireErr {
	w := &wireErr{Kind: "other", Message: err.Error()}
	var (
		ue *UnreachableError
		ae *AuthError
		uk *UnknownHostKeyError
		kc *HostKeyChangedError
	)
	switch {
	case errors.As(err, &ue):
		w.Kind, w.Host, w.Addr, w.Via, w.Reason = "unreachable", ue.Host, ue.Addr, ue.Via, ue.Reason
		if ue.Err != nil {
			w.Cause = ue.Err.Error()
		}
	case errors.As(err, &ae):
		w.Kind, w.Host, w.Addr, w.User, w.Keys = "auth", ae.Host, ae.Addr, ae.User, ae.Keys
		if ae.Err != nil {
			w.Cause = ae.Err.Error()
		}
	case errors.As(err, &uk):
		w.Kind, w.Host, w.Addr, w.KeyType, w.Fingerprint, w.KnownHosts, w.Line = "unknown_host_key", uk.Host, uk.Addr, uk.KeyType, uk.Fingerprint, uk.KnownHosts, uk.Line
	case errors.As(err, &kc):
		w.Kind, w.Host, w.Addr, w.KeyType, w.Fingerprint, w.Expected = "host_key_changed", kc.Host, kc.Addr, kc.KeyType, kc.Fingerprint, kc.Expected
	}
	return w
}

func (w *wireErr) err() error {
	cause := errors.New(w.Cause)
	switch w.Kind {
	case "unreachable":
		return &UnreachableError{Host: w.Host, Addr: w.Addr, Via: w.Via, Reason: w.Reason, Err: cause}
	case "auth":
		return &AuthError{Host: w.Host, Addr: w.Addr, User: w.User, Keys: w.Keys, Err: cause}
	case "unknown_host_key":
		return &UnknownHostKeyError{Host: w.Host, Addr: w.Addr, KeyType: w.KeyType, Fingerprint: w.Fingerprint, KnownHosts: w.KnownHosts, Line: w.Line}
	case "host_key_changed":
		return &HostKeyChangedError{Host: w.Host, Addr: w.Addr, KeyType: w.KeyType, Fingerprint: w.Fingerprint, Expected: w.Expected}
	}
	return errors.New(w.Message)
}

// errNoKeeper says a keeper could not be used; the run connects by itself.
var errNoKeeper = errors.New("no connection keeper")

// persistDir returns the private folder of the keepers' sockets, making it when missing, and
// refuses one that others could enter.
func persistDir(dir string) (string, error) {
	if dir == "" {
		if rt := os.Getenv("XDG_RUNTIME_DIR"); rt != "" {
			dir = filepath.Join(rt, "runbook-ssh")
		} else {
			dir = filepath.Join(os.TempDir(), fmt.Sprintf("runbook-ssh-%d", os.Getuid()))
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s must be a folder of yours that only you can enter (mode 0700)", dir)
	}
	return dir, nil
}

// persistSocket names the keeper of cfg: a digest of everything that decides what the connection
// is (address, user, keys and their content, known_hosts as it is now, the agent), so that a
// changed key or known_hosts file gets a new connection rather than an old one.
func persistSocket(cfg Config) (string, error) {
	dir, err := persistDir(cfg.PersistDir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	c := cfg
	c.Persist, c.PersistDir = 0, ""
	if err := json.NewEncoder(h).Encode(c); err != nil {
		return "", err
	}
	fmt.Fprintf(h, "agent=%s\n", os.Getenv("SSH_AUTH_SOCK"))
	var files []string
	for j := &cfg; j != nil; j = j.Jump {
		files = append(files, j.PrivateKeys...)
		files = append(files, j.KnownHosts)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(h, "%s: %v\n", f, err)
			continue
		}
		fmt.Fprintf(h, "%s %x\n", f, sha256.Sum256(b))
	}
	return filepath.Join(dir, hex.EncodeToString(h.Sum(nil)[:16])+".sock"), nil
}

// connectKeeper connects through the keeper of c's host, starting one when there is none. It
// returns errNoKeeper (wrapped) when no keeper can serve, and the host's own connection error
// (UnreachableError, AuthError...) when the keeper could not connect either.
func (c *Client) connectKeeper(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	sock, err := persistSocket(c.cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	cn, err := c.dialKeeper(ctx, sock)
	if err == nil {
		return cn, nil
	}
	// One run starts the keeper; the others wait for it.
	unlock, err := flockFile(ctx, sock+".lock")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	defer unlock()
	if cn, err := c.dialKeeper(ctx, sock); err == nil {
		return cn, nil
	}
	if err := c.startKeeper(ctx, sock); err != nil {
		return nil, err
	}
	cn, err = c.dialKeeper(ctx, sock)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	return cn, nil
}

// dialKeeper speaks SSH to the keeper listening on sock.
func (c *Client) dialKeeper(ctx context.Context, sock string) (*conn, error) {
	pubText, err := os.ReadFile(sock + ".pub")
	if err != nil {
		return nil, err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	u, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		u.SetDeadline(dl)
	}
	sc, chans, reqs, err := ssh.NewClientConn(u, "keeper", &ssh.ClientConfig{User: c.cfg.User, HostKeyCallback: ssh.FixedHostKey(pub)})
	if err != nil {
		u.Close()
		return nil, err
	}
	u.SetDeadline(time.Time{})
	return &conn{ssh: ssh.NewClient(sc, chans, reqs), dead: make(chan struct{})}, nil
}

// startKeeper starts the keeper of sock and waits until it is connected to the host and listens.
func (c *Client) startKeeper(ctx context.Context, sock string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{fmt.Sprintf("runbook: ssh keeper for %s@%s", c.cfg.User, c.cfg.addr())} // what ps shows
	cmd.Env = append(os.Environ(), muxEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // not in the run's process group: ^C is for the run
	in, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	go cmd.Wait() // it outlives this call, and usually this process
	cfg := c.cfg
	cfg.Persist = 0
	err = json.NewEncoder(in).Encode(muxRequest{Config: cfg, Socket: sock, Persist: c.cfg.Persist})
	in.Close()
	if err != nil {
		cmd.Process.Kill()
		return fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	line := make(chan []byte, 1)
	go func() {
		b, _ := bufio.NewReader(out).ReadBytes('\n')
		line <- b
	}()
	var b []byte
	select {
	case b = <-line:
	case <-ctx.Done():
		cmd.Process.Kill()
		return fmt.Errorf("%w: it did not answer: %v", errNoKeeper, ctx.Err())
	}
	var rep muxReply
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%w: unexpected answer %q", errNoKeeper, b)
	}
	if rep.Err != nil {
		return rep.Err.err()
	}
	if !rep.Ready {
		return fmt.Errorf("%w: unexpected answer %q", errNoKeeper, b)
	}
	return nil
}

// flockFile takes an exclusive flock on path, waiting for it while ctx lasts.
func flockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// ServeMux is the connection keeper's whole life: it reads its request on r, connects to the
// host, answers on w (ready, or the connection's error), then relays the runs that connect to
// its socket until it has been idle for the request's Persist. It returns the process's exit
// status.
func ServeMux(r io.Reader, w io.Writer) int {
	reply := func(rep muxReply) {
		b, _ := json.Marshal(rep)
		w.Write(append(b, '\n'))
	}
	var req muxRequest
	if err := json.NewDecoder(r).Decode(&req); err != nil {
		reply(muxReply{Err: toWire(fmt.Errorf("connection keeper: bad request: %w", err))})
		return 2
	}
	ctx := context.Background()
	cfg := req.Config
	cfg.Persist = 0
	up, err := dialResolved(ctx, cfg, nil)
	if err != nil {
		reply(muxReply{Err: toWire(err)})
		return 1
	}
	defer up.Close()
	k, err := newKeeper(up, req)
	if err != nil {
		reply(muxReply{Err: toWire(fmt.Errorf("connection keeper: %w", err))})
		return 1
	}
	reply(muxReply{Ready: true, PID: os.Getpid()})
	if c, ok := w.(io.Closer); ok {
		c.Close()
	}
	k.serve()
	return 0
}

// keeper relays the runs connected to its socket to one host.
type keeper struct {
	up      *Client
	ln      net.Listener
	sock    string
	persist time.Duration
	server  *ssh.ServerConfig

	mu     sync.Mutex
	active int
	idle   *time.Timer
	done   chan struct{}
}

func newKeeper(up *Client, req muxRequest) (*keeper, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	server := &ssh.ServerConfig{NoClientAuth: true}
	server.AddHostKey(signer)
	// The public key first, then the socket: a run that finds the socket finds its key.
	tmp := fmt.Sprintf("%s.pub.%d", req.Socket, os.Getpid())
	if err := os.WriteFile(tmp, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, req.Socket+".pub"); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	os.Remove(req.Socket) // a keeper that died left it
	ln, err := net.Listen("unix", req.Socket)
	if err != nil {
		return nil, err
	}
	k := &keeper{up: up, ln: ln, sock: req.Socket, persist: req.Persist, server: server, done: make(chan struct{})}
	k.idle = time.AfterFunc(k.persist, k.expire)
	return k, nil
}

// expire ends the keeper when no run is connected.
func (k *keeper) expire() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.active > 0 {
		return
	}
	os.Remove(k.sock)
	os.Remove(k.sock + ".pub")
	k.ln.Close()
}

func (k *keeper) serve() {
	var wg sync.WaitGroup
	for {
		u, err := k.ln.Accept()
		if err != nil {
			break
		}
		k.mu.Lock()
		k.active++
		k.idle.Stop()
		k.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.relay(u)
			k.mu.Lock()
			k.active--
			if k.active == 0 {
				k.idle.Reset(k.persist)
			}
			k.mu.Unlock()
		}()
	}
	wg.Wait()
}

// relay serves one run's connection until it ends, then closes every channel it opened.
func (k *keeper) relay(u net.Conn) {
	defer u.Close()
	u.SetDeadline(time.Now().Add(10 * time.Second))
	sc, chans, reqs, err := ssh.NewServerConn(u, k.server)
	if err != nil {
		return
	}
	u.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for r := range reqs {
			// keepalives and the like: the keeper answers for the host, whose own keepalive it
			// watches
			if r.WantReply {
				r.Reply(r.Type == keepaliveRequest, nil)
			}
		}
	}()
	var wg sync.WaitGroup
	for nc := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.channel(ctx, nc)
		}()
	}
	sc.Close()
	cancel() // the run is gone: so are its channels on the host
	wg.Wait()
}

// channel opens nc's twin on the host and relays data and requests both ways until either end
// closes it.
func (k *keeper) channel(ctx context.Context, nc ssh.NewChannel) {
	session := nc.ChannelType() == "session"
	if session {
		select {
		case k.up.sem <- struct{}{}: // the host's MaxSessions counts every run's sessions
			defer func() { <-k.up.sem }()
		case <-ctx.Done():
			nc.Reject(ssh.ConnectionFailed, "the run ended")
			return
		}
	}
	cn, _, err := k.up.get(ctx)
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	up, upReqs, err := cn.ssh.OpenChannel(nc.ChannelType(), nc.ExtraData())
	if err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			nc.Reject(oce.Reason, oce.Message)
		} else {
			nc.Reject(ssh.ConnectionFailed, err.Error())
		}
		return
	}
	down, downReqs, err := nc.Accept()
	if err != nil {
		up.Close()
		return
	}
	stop := context.AfterFunc(ctx, func() { up.Close(); down.Close() })
	defer stop()
	var out sync.WaitGroup // what the host sends, which must all be relayed before the close
	out.Add(2)
	go func() {
		defer out.Done()
		// both streams end at the host's EOF; ours may only follow the last byte of either
		var data sync.WaitGroup
		data.Add(2)
		go func() { io.Copy(down, up); data.Done() }()
		go func() { io.Copy(down.Stderr(), up.Stderr()); data.Done() }()
		data.Wait()
		down.CloseWrite()
	}()
	go func() {
		defer out.Done()
		for r := range upReqs { // exit-status, exit-signal, eow@openssh.com
			ok, _ := down.SendRequest(r.Type, r.WantReply, r.Payload)
			if r.WantReply {
				r.Reply(ok, nil)
			}
		}
	}()
	go func() {
		io.Copy(up, down)
		up.CloseWrite()
	}()
	go func() {
		for r := range downReqs { // exec, subsystem, env, signal...
			ok, _ := up.SendRequest(r.Type, r.WantReply, r.Payload)
			if r.WantReply {
				r.Reply(ok, nil)
			}
		}
		up.Close() // the run closed its end
	}()
	out.Wait() // the host closed its end, and everything it sent is relayed
	down.Close()
	up.Close()
}
