package sshconn

// Persistent connections (Config.Persist), like OpenSSH's ControlMaster with ControlPersist,
// which Ansible turns on by default: the SSH connections to the hosts are made by one keeper
// process that outlives the run and keeps each for Persist after the last run using it left, so
// a run shortly after another skips the TCP connect, the key exchange and the authentication.
//
// The keeper is this same binary started with RUNBOOK_SSH_MUX=1 (its main calls ServeMux), one
// per user and folder, whatever the number of hosts. It listens on a unix socket in a folder only
// the user can enter. For each host a run connects to the socket, sends one JSON line (the host's
// settings), reads one back (ready, or the host's connection error with its type), then speaks
// SSH to the keeper (an ephemeral host key the keeper writes beside the socket, no
// authentication beyond the folder's permissions), and the keeper relays every channel —
// sessions, forwarded connections, the sftp subsystem — with its requests (exec, exit-status,
// signals) to the host. When a run's connection to the keeper ends, so does every channel it
// opened on the host: the run lock, which lives as long as its session, is released as it would
// be without a keeper.

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
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// muxEnv marks a process started as a connection keeper.
const muxEnv = "RUNBOOK_SSH_MUX"

// MuxRequested reports whether this process was started as a connection keeper; the program's
// main must then call ServeMux instead of doing anything else.
func MuxRequested() bool { return os.Getenv(muxEnv) == "1" }

// muxStart is what a run tells the keeper it starts, on the keeper's standard input.
type muxStart struct {
	Dir string `json:"dir"`
}

// muxRequest is the first line a run sends on a connection to the keeper: the host it wants.
type muxRequest struct {
	// Key names the connection: runs with equal keys share it (persistKey).
	Key     string        `json:"key"`
	Config  Config        `json:"config"`
	Agent   string        `json:"agent,omitempty"`
	Persist time.Duration `json:"persist"`
}

// muxReply is the keeper's answer, as the first line on its standard output when it starts and
// as the first line on a run's connection: ready, or why not.
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

// The keeper's files in its folder.
const (
	keeperSocket = "keeper.sock"
	keeperPub    = "keeper.pub"
	keeperLock   = "keeper.lock"
)

// persistDir returns the private folder of the keeper's socket, making it when missing, and
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

// persistKey names a connection: a digest of everything that decides what it is (address, user,
// keys and their content, known_hosts as it is now, the agent), so that a changed key or
// known_hosts file gets a new connection rather than an old one. Timeouts and limits are left out.
func persistKey(cfg Config, agent string) (string, error) {
	h := sha256.New()
	c := cfg
	// what only bounds or tunes the connection does not make it another one: status (3 s to
	// connect) shares apply's (10 s)
	c.Persist, c.PersistDir, c.ConnectTimeout, c.KeepAlive, c.MaxSessions, c.Shells = 0, "", 0, 0, 0, 0
	if err := json.NewEncoder(h).Encode(c); err != nil {
		return "", err
	}
	fmt.Fprintf(h, "agent=%s\n", agent)
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
	return hex.EncodeToString(h.Sum(nil)[:16]), nil
}

// connectKeeper connects through the keeper, starting it when there is none. It returns
// errNoKeeper (wrapped) when no keeper can serve, and the host's own connection error
// (UnreachableError, AuthError...) when the keeper could not connect either.
func (c *Client) connectKeeper(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ConnectTimeout+5*time.Second)
	defer cancel()
	dir, err := persistDir(c.cfg.PersistDir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	agent := os.Getenv("SSH_AUTH_SOCK")
	key, err := persistKey(c.cfg, agent)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	cfg := c.cfg
	cfg.Persist, cfg.PersistDir = 0, ""
	req := muxRequest{Key: key, Config: cfg, Agent: agent, Persist: c.cfg.Persist}
	u, err := dialUnix(ctx, filepath.Join(dir, keeperSocket))
	if err != nil {
		// One run starts the keeper; the others wait for it.
		unlock, lerr := flockFile(ctx, filepath.Join(dir, keeperLock))
		if lerr != nil {
			return nil, fmt.Errorf("%w: %v", errNoKeeper, lerr)
		}
		u, err = dialUnix(ctx, filepath.Join(dir, keeperSocket))
		if err != nil {
			err = startKeeper(ctx, dir)
			if err == nil {
				u, err = dialUnix(ctx, filepath.Join(dir, keeperSocket))
			}
		}
		unlock()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
		}
	}
	cn, err := c.handshakeKeeper(ctx, u, dir, req)
	if err != nil {
		u.Close()
		return nil, err
	}
	return cn, nil
}

func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", path)
}

// handshakeKeeper asks the keeper on u for the host, then speaks SSH to it.
func (c *Client) handshakeKeeper(ctx context.Context, u net.Conn, dir string, req muxRequest) (*conn, error) {
	if dl, ok := ctx.Deadline(); ok {
		u.SetDeadline(dl)
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	if _, err := u.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	line, err := readLine(u)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	var rep muxReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return nil, fmt.Errorf("%w: unexpected answer %q", errNoKeeper, line)
	}
	if rep.Err != nil {
		return nil, rep.Err.err()
	}
	pubText, err := os.ReadFile(filepath.Join(dir, keeperPub))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	sc, chans, reqs, err := ssh.NewClientConn(u, "keeper", &ssh.ClientConfig{User: c.cfg.User, HostKeyCallback: ssh.FixedHostKey(pub)})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNoKeeper, err)
	}
	u.SetDeadline(time.Time{})
	return &conn{ssh: ssh.NewClient(sc, chans, reqs), dead: make(chan struct{})}, nil
}

// readLine reads up to a newline one byte at a time: what follows it is the SSH stream, which a
// buffered reader would swallow.
func readLine(r io.Reader) ([]byte, error) {
	var line []byte
	b := make([]byte, 1)
	for len(line) < 1<<16 {
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, err
		}
		if b[0] == '\n' {
			return line, nil
		}
		line = append(line, b[0])
	}
	return nil, errors.New("line too long")
}

// startKeeper starts the keeper of dir and waits until it listens.
func startKeeper(ctx context.Context, dir string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe)
	cmd.Args = []string{"runbook: ssh connection keeper"} // what ps shows
	cmd.Env = append(os.Environ(), muxEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // not in the run's process group: ^C is for the run
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() // it outlives this call, and usually this process
	err = json.NewEncoder(in).Encode(muxStart{Dir: dir})
	in.Close()
	if err != nil {
		cmd.Process.Kill()
		return err
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
		return fmt.Errorf("the keeper did not answer: %w", ctx.Err())
	}
	var rep muxReply
	if err := json.Unmarshal(b, &rep); err != nil || (!rep.Ready && rep.Err == nil) {
		return fmt.Errorf("unexpected answer from the keeper %q", b)
	}
	if rep.Err != nil {
		return errors.New(rep.Err.Message)
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

// ServeMux is the connection keeper's whole life: it reads its folder on r, listens there,
// answers on w (ready, or why not), then serves the runs that connect until it has kept no
// connection for a while. It returns the process's exit status.
func ServeMux(r io.Reader, w io.Writer) int {
	reply := func(rep muxReply) {
		b, _ := json.Marshal(rep)
		w.Write(append(b, '\n'))
	}
	var start muxStart
	if err := json.NewDecoder(r).Decode(&start); err != nil {
		reply(muxReply{Err: toWire(fmt.Errorf("connection keeper: bad request: %w", err))})
		return 2
	}
	k, err := newKeeper(start.Dir)
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

// keeperGrace is how long the keeper stays once it keeps no connection, for a run about to come.
const keeperGrace = 2 * time.Second

// keeper relays the runs connected to its socket to the hosts.
type keeper struct {
	dir    string
	ln     net.Listener
	server *ssh.ServerConfig

	mu    sync.Mutex
	hosts map[string]*kept // by muxRequest.Key
	conns int              // runs' connections being served
	exit  *time.Timer      // ends the keeper when it keeps nothing
}

// kept is one host's connection, shared by the runs that ask for it.
type kept struct {
	ready   chan struct{} // closed once client or err is set
	client  *Client
	err     error
	users   int
	persist time.Duration
	idle    *time.Timer // closes the connection Persist after its last user left
}

func newKeeper(dir string) (*keeper, error) {
	if _, err := persistDir(dir); err != nil {
		return nil, err
	}
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
	pub := filepath.Join(dir, keeperPub)
	tmp := fmt.Sprintf("%s.%d", pub, os.Getpid())
	if err := os.WriteFile(tmp, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, pub); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	sock := filepath.Join(dir, keeperSocket)
	os.Remove(sock) // a keeper that died left it
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, err
	}
	k := &keeper{dir: dir, ln: ln, server: server, hosts: map[string]*kept{}}
	k.exit = time.AfterFunc(keeperGrace+10*time.Second, k.maybeExit)
	return k, nil
}

// maybeExit ends the keeper when it keeps no connection and serves no run.
func (k *keeper) maybeExit() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.hosts) > 0 || k.conns > 0 {
		return
	}
	os.Remove(filepath.Join(k.dir, keeperSocket))
	os.Remove(filepath.Join(k.dir, keeperPub))
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
		k.conns++
		k.exit.Stop()
		k.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.serveRun(u)
			k.mu.Lock()
			k.conns--
			if k.conns == 0 && len(k.hosts) == 0 {
				k.exit.Reset(keeperGrace)
			}
			k.mu.Unlock()
		}()
	}
	wg.Wait()
	k.mu.Lock()
	for _, h := range k.hosts {
		if h.client != nil {
			h.client.Close()
		}
	}
	k.mu.Unlock()
}

// acquire returns the connection for req, connecting when the keeper has none, and counts a user.
// It returns the host's current SSH connection too.
func (k *keeper) acquire(req muxRequest) (*kept, *conn, error) {
	k.mu.Lock()
	h := k.hosts[req.Key]
	if h == nil {
		h = &kept{ready: make(chan struct{}), persist: req.Persist}
		k.hosts[req.Key] = h
		k.mu.Unlock()
		cfg := req.Config
		cfg.Persist = 0
		ctx, cancel := context.WithTimeout(context.Background(), cfg.ConnectTimeout+5*time.Second)
		h.client, h.err = dialResolved(ctx, cfg, nil, req.Agent)
		cancel()
		k.mu.Lock()
		if h.err != nil {
			delete(k.hosts, req.Key) // the next run tries again
		}
		close(h.ready)
	}
	h.users++
	h.persist = max(h.persist, req.Persist)
	if h.idle != nil {
		h.idle.Stop()
	}
	k.mu.Unlock()
	<-h.ready
	if h.err != nil {
		k.release(req.Key, h)
		return nil, nil, h.err
	}
	// a kept connection the host dropped meanwhile is made again now, so that a run learns at
	// once that the host is gone (with the error its own connection would have had)
	ctx, cancel := context.WithTimeout(context.Background(), req.Config.ConnectTimeout+5*time.Second)
	defer cancel()
	cn, _, err := h.client.get(ctx)
	if err == nil {
		if gone, _ := cn.lost(); gone { // asks the host: one round trip
			cn, _, err = h.client.get(ctx)
		}
	}
	if err != nil {
		k.release(req.Key, h)
		return nil, nil, err
	}
	return h, cn, nil
}

// release counts a user of h gone; the last one starts h's Persist.
func (k *keeper) release(key string, h *kept) {
	k.mu.Lock()
	defer k.mu.Unlock()
	h.users--
	if h.users > 0 || h.client == nil {
		return
	}
	h.idle = time.AfterFunc(h.persist, func() {
		k.mu.Lock()
		if h.users > 0 || k.hosts[key] != h {
			k.mu.Unlock()
			return
		}
		delete(k.hosts, key)
		empty := len(k.hosts) == 0 && k.conns == 0
		k.mu.Unlock()
		h.client.Close()
		if empty {
			k.exit.Reset(keeperGrace)
		}
	})
}

// serveRun serves one run's connection to one host until it ends, then closes every channel it
// opened on the host.
func (k *keeper) serveRun(u net.Conn) {
	defer u.Close()
	u.SetDeadline(time.Now().Add(30 * time.Second))
	line, err := readLine(u)
	if err != nil {
		return
	}
	var req muxRequest
	reply := func(rep muxReply) error {
		b, _ := json.Marshal(rep)
		_, err := u.Write(append(b, '\n'))
		return err
	}
	if err := json.Unmarshal(line, &req); err != nil || req.Key == "" {
		reply(muxReply{Err: toWire(fmt.Errorf("connection keeper: bad request %q", line))})
		return
	}
	h, up, err := k.acquire(req)
	if err != nil {
		reply(muxReply{Err: toWire(err)})
		return
	}
	defer k.release(req.Key, h)
	if reply(muxReply{Ready: true}) != nil {
		return
	}
	sc, chans, reqs, err := ssh.NewServerConn(u, k.server)
	if err != nil {
		return
	}
	u.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// The host's connection ends: so does the run's, which then knows its commands were cut
		// (LostError) and connects again through the keeper, which connects again to the host.
		select {
		case <-up.dead:
			sc.Close()
		case <-ctx.Done():
		}
	}()
	go func() {
		for r := range reqs {
			// A keepalive is passed on to the host: a run asks one when a command's channel
			// ended without an exit status (lost), and the host's connection may have ended an
			// instant ago, after its channels did but before the watch above saw it. The run
			// must then learn the host is gone, not that the keeper is there.
			if r.Type == keepaliveRequest {
				if gone, _ := up.lost(); gone {
					sc.Close()
					continue
				}
				r.Reply(true, nil)
				continue
			}
			if r.WantReply {
				r.Reply(false, nil)
			}
		}
	}()
	var wg sync.WaitGroup
	for nc := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			relayChannel(ctx, h.client, up, nc)
		}()
	}
	sc.Close()
	cancel() // the run is gone: so are its channels on the host
	wg.Wait()
}

// lostGrace bounds how long relayChannel waits for the host's connection to end after a channel
// of it ended without an exit status.
const lostGrace = time.Second

// relayChannel opens nc's twin on the host, over cn (the connection the run's connection stands
// for, which ends it when it ends), and relays data and requests both ways until either end
// closes it.
func relayChannel(ctx context.Context, c *Client, cn *conn, nc ssh.NewChannel) {
	if nc.ChannelType() == "session" {
		select {
		case c.sem <- struct{}{}: // the host's MaxSessions counts every run's sessions
			defer func() { <-c.sem }()
		case <-ctx.Done():
			nc.Reject(ssh.ConnectionFailed, "the run ended")
			return
		}
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
	// The host's messages come in one order but are read by several goroutines. What the host
	// sends after its answer to a request (a command's output, exit status and close may follow
	// the answer to exec within microseconds) must reach the run after that answer: had the
	// close overtaken it, the run would see its session end before the command started, although
	// the command ran. So a request that wants an answer holds order (write) from before it is
	// sent to the host until its answer is relayed, and every message relayed to the run takes it
	// (read).
	var order sync.RWMutex
	toRun := orderedWriter{w: down, order: &order}
	var out sync.WaitGroup // what the host sends, which must all be relayed before the close
	var exited atomic.Bool // the host sent the command's exit status or signal
	out.Add(2)
	go func() {
		defer out.Done()
		// both streams end at the host's EOF; ours may only follow the last byte of either
		var data sync.WaitGroup
		data.Add(2)
		go func() { io.Copy(toRun, up); data.Done() }()
		go func() { io.Copy(orderedWriter{w: down.Stderr(), order: &order}, up.Stderr()); data.Done() }()
		data.Wait()
		order.RLock()
		down.CloseWrite()
		order.RUnlock()
	}()
	go func() {
		defer out.Done()
		for r := range upReqs { // exit-status, exit-signal, eow@openssh.com
			if r.Type == "exit-status" || r.Type == "exit-signal" {
				exited.Store(true)
			}
			order.RLock()
			ok, _ := down.SendRequest(r.Type, r.WantReply, r.Payload)
			order.RUnlock()
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
			if !r.WantReply {
				up.SendRequest(r.Type, false, r.Payload)
				continue
			}
			order.Lock()
			ok, _ := up.SendRequest(r.Type, true, r.Payload)
			r.Reply(ok, nil)
			order.Unlock()
		}
		up.Close() // the run closed its end
	}()
	out.Wait() // the host closed its end, and everything it sent is relayed
	if !exited.Load() {
		// The host's channel ended without the command's exit status: its connection is
		// ending, most likely (the ssh package closes the channels first). The run must learn
		// that as a lost connection, not as a command that ended without status: leave its
		// channel to the end of its connection, which serveRun brings.
		select {
		case <-cn.dead:
			return
		case <-ctx.Done():
		case <-time.After(lostGrace):
		}
	}
	order.RLock()
	down.Close()
	order.RUnlock()
	up.Close()
}

// orderedWriter writes to w holding order for reading (see relayChannel).
type orderedWriter struct {
	w     io.Writer
	order *sync.RWMutex
}

func (o orderedWriter) Write(p []byte) (int, error) {
	o.order.RLock()
	defer o.order.RUnlock()
	return o.w.Write(p)
}
