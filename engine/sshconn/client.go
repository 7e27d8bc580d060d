// Package sshconn implements engine.Conn over one persistent SSH connection per host: every command
// of a run runs over that connection, in a command shell kept open on it (shell.go) or as a
// session of its own, and every forwarded TCP connection is a direct-tcpip channel, so a run pays
// the TCP and SSH handshakes once per host and, in the shells, no session per command.
//
// Dial connects and checks the host key against known_hosts (see HostKeyPolicy). The Client sends
// keepalives and closes a connection that stops answering, so commands over a host that vanished
// fail instead of hanging. When the connection is found dead before a command starts (the host
// rebooted, sshd was restarted), the Client connects again once; a command that may have run is
// never run again (its error is a LostError with Running set).
package sshconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/runbook/runbook/engine"
)

// keepaliveRequest is the global request OpenSSH's own client sends as a keepalive; sshd answers
// it (with a failure reply, which is as good as any).
const keepaliveRequest = "keepalive@openssh.com"

// Client is an engine.Conn to one host over one SSH connection. It is safe for concurrent use.
type Client struct {
	cfg     Config
	secrets *engine.Secrets
	keys    *keyring
	hk      *hostKeyChecker
	jump    *Client
	sem     chan struct{} // one slot per concurrent session
	shells  shellPool     // command shells (each holds a slot of sem while it is open)

	mu       sync.Mutex // guards the fields below; held while connecting
	cur      *conn
	closed   bool
	connects int
	// failed is the last attempt to connect again that the host itself failed (not the caller's
	// context): the callers that waited for it share its error (reconnectLocked).
	failed *failedReconnect

	wg sync.WaitGroup // the goroutines of every connection made
}

// failedReconnect is an attempt to replace a dead connection that failed.
type failedReconnect struct {
	dead *conn     // the connection it was to replace
	at   time.Time // when it failed
	err  error     // the LostError the caller got
}

// conn is one SSH connection of a Client.
type conn struct {
	ssh  *ssh.Client
	dead chan struct{} // closed when the connection has ended
	// quickAck acknowledges reads at once until the first session has started (nil through a
	// jump host).
	quickAck *quickAckConn

	mu    sync.Mutex
	cause error // why it ended
}

// fail records why the connection ends (the first reason wins) and closes it.
func (cn *conn) fail(cause error) {
	cn.mu.Lock()
	if cn.cause == nil {
		cn.cause = cause
	}
	cn.mu.Unlock()
	cn.ssh.Close()
}

func (cn *conn) err() error {
	if cn == nil {
		return nil
	}
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.cause
}

func (cn *conn) alive() bool {
	if cn == nil {
		return false
	}
	select {
	case <-cn.dead:
		return false
	default:
		return true
	}
}

// lost reports whether the connection has ended, and why. A live-looking connection is asked
// with a keepalive, which fails at once when the transport is gone.
func (cn *conn) lost() (bool, error) {
	if !cn.alive() {
		return true, cn.err()
	}
	if _, _, err := cn.ssh.SendRequest(keepaliveRequest, true, nil); err != nil {
		cn.fail(err)
		return true, cn.err()
	}
	return false, nil
}

// Dial connects to the host described by cfg. secrets, which may be nil, are the values Exec
// refuses to put on a command line. The connection lasts until Close.
func Dial(ctx context.Context, cfg Config, secrets *engine.Secrets) (*Client, error) {
	rc, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	return dialResolved(ctx, rc, secrets, os.Getenv("SSH_AUTH_SOCK"))
}

// dialResolved connects with a resolved Config (whose Jump is resolved too), offering the keys of
// the agent at agentSock too when it is set.
func dialResolved(ctx context.Context, rc Config, secrets *engine.Secrets, agentSock string) (*Client, error) {
	var err error
	c := &Client{
		cfg:     rc,
		secrets: secrets,
		sem:     make(chan struct{}, rc.MaxSessions),
		shells:  shellPool{limit: rc.Shells},
		hk:      &hostKeyChecker{name: rc.Name, file: rc.KnownHosts, policy: rc.HostKeyPolicy, hashed: rc.HashKnownHosts},
	}
	if rc.Jump != nil {
		c.jump, err = dialResolved(ctx, *rc.Jump, secrets, agentSock)
		if err != nil {
			return nil, fmt.Errorf("%s: through jump host: %w", rc.Name, err)
		}
	}
	c.keys, err = loadKeys(&c.cfg, agentSock)
	if err != nil {
		c.Close()
		return nil, err
	}
	c.mu.Lock()
	_, err = c.connectLocked(ctx)
	c.mu.Unlock()
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Name returns the host's inventory name.
func (c *Client) Name() string { return c.cfg.Name }

// Connects returns how many SSH connections the Client has made: 1, plus one per reconnection.
func (c *Client) Connects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connects
}

// connectLocked makes a new SSH connection and makes it current. c.mu must be held.
func (c *Client) connectLocked(parent context.Context) (*conn, error) {
	if c.cfg.Persist > 0 && c.jump == nil {
		cn, err := c.connectKeeper(parent)
		switch {
		case err == nil:
			return c.adopt(cn), nil
		case !errors.Is(err, errNoKeeper):
			return nil, err // the host's own answer (unreachable, key refused...)
		}
		// no keeper: connect as usual
	}
	name, addr := c.cfg.Name, c.cfg.addr()
	ctx, cancel := context.WithTimeout(parent, c.cfg.ConnectTimeout)
	defer cancel()
	timedOut := func(err error, during string) error {
		if perr := parent.Err(); perr != nil {
			return fmt.Errorf("%s (%s): connect: %w", name, addr, perr)
		}
		return &UnreachableError{Host: name, Addr: addr, Via: c.via(), Reason: fmt.Sprintf("timed out after %s%s", c.cfg.ConnectTimeout, during), Err: err}
	}

	var raw net.Conn
	var err error
	if c.jump != nil {
		raw, err = c.jump.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		raw, err = d.DialContext(ctx, "tcp", addr)
	}
	var qa *quickAckConn
	if err == nil {
		qa = &quickAckConn{Conn: raw}
		raw = qa
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, timedOut(err, "")
		}
		var lost *LostError
		if errors.As(err, &lost) {
			return nil, fmt.Errorf("%s: through jump host: %w", name, err)
		}
		return nil, &UnreachableError{Host: name, Addr: addr, Via: c.via(), Reason: reason(err), Err: err}
	}

	// The handshake and authentication share the connect deadline.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	known, err := c.hk.load()
	if err != nil {
		raw.Close()
		return nil, err
	}
	var hkFailure hostKeyFailure
	conf := &ssh.ClientConfig{
		User:              c.cfg.User,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(c.keys.signers...)},
		HostKeyCallback:   c.hk.callback(known, &hkFailure),
		HostKeyAlgorithms: c.hk.algorithms(known, addr),
	}
	sc, chans, reqs, err := ssh.NewClientConn(raw, addr, conf)
	if !stop() {
		if err == nil {
			sc.Close()
		}
		return nil, timedOut(err, " during the SSH handshake")
	}
	if err != nil {
		raw.Close()
		if hkErr := hkFailure.get(); hkErr != nil {
			return nil, hkErr
		}
		if msg := err.Error(); strings.Contains(msg, "unable to authenticate") || strings.Contains(msg, "Too many authentication failures") {
			return nil, &AuthError{Host: name, Addr: addr, User: c.cfg.User, Keys: c.keys.descs, Err: err}
		}
		return nil, fmt.Errorf("%s (%s): ssh handshake: %w", name, addr, err)
	}

	return c.adopt(&conn{ssh: ssh.NewClient(sc, chans, reqs), dead: make(chan struct{}), quickAck: qa}), nil
}

// adopt makes cn the current connection and watches it. c.mu must be held.
func (c *Client) adopt(cn *conn) *conn {
	c.cur = cn
	c.connects++
	c.wg.Add(2)
	go c.watch(cn)
	go c.keepalive(cn)
	return cn
}

func (c *Client) via() string {
	if c.jump == nil {
		return ""
	}
	return c.jump.cfg.Name
}

// reason turns a dial error into a few words.
func reason(err error) string {
	var dnsErr *net.DNSError
	var oce *ssh.OpenChannelError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to host"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network is unreachable"
	case errors.As(err, &dnsErr):
		return fmt.Sprintf("cannot resolve %s: %s", dnsErr.Name, dnsErr.Err)
	case errors.As(err, &oce) && oce.Reason == ssh.Prohibited:
		return fmt.Sprintf("the jump host does not allow forwarding (%s)", oce.Message)
	case errors.As(err, &oce):
		return strings.ToLower(oce.Message)
	}
	return err.Error()
}

// watch marks the connection dead when it ends.
func (c *Client) watch(cn *conn) {
	defer c.wg.Done()
	err := cn.ssh.Wait()
	if err == nil {
		err = io.EOF
	}
	cn.mu.Lock()
	if cn.cause == nil {
		cn.cause = err
	}
	cn.mu.Unlock()
	close(cn.dead)
}

// keepalive asks the host for a reply every KeepAlive and closes the connection when none comes
// within two more intervals, so commands over a host that vanished fail within about three
// intervals.
func (c *Client) keepalive(cn *conn) {
	defer c.wg.Done()
	interval := c.cfg.KeepAlive
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-cn.dead:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			_, _, err := cn.ssh.SendRequest(keepaliveRequest, true, nil)
			reply <- err // returns at the latest when fail closes the connection
		}()
		timeout := time.NewTimer(2 * interval)
		select {
		case err := <-reply:
			timeout.Stop()
			if err != nil {
				cn.fail(fmt.Errorf("keepalive: %w", err))
				return
			}
		case <-timeout.C:
			cn.fail(fmt.Errorf("no answer to keepalive within %s", 2*interval))
			return
		case <-cn.dead:
			timeout.Stop()
			return
		}
	}
}

// get returns the current connection, connecting again if it has ended. fresh reports a new
// connection.
func (c *Client) get(ctx context.Context) (cn *conn, fresh bool, err error) {
	asked := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false, fmt.Errorf("%s: %w", c.cfg.Name, ErrClosed)
	}
	if c.cur.alive() {
		return c.cur, false, nil
	}
	cn, err = c.reconnectLocked(ctx, c.cur, asked)
	if err != nil {
		return nil, false, err
	}
	return cn, true, nil
}

// reconnectLocked connects again in place of the dead connection c.cur; cause is the connection
// whose end the caller saw (its error is the LostError's Cause). A caller that began waiting for
// c.mu at asked, while another caller's attempt to replace the same connection failed on the
// host's side (unreachable, timed out), gets that attempt's error instead of making one of its
// own: when a host vanishes, the commands and forwarded connections waiting on it fail together
// after one ConnectTimeout, not one after another, each waiting as long. A later caller tries
// again (the host may be back). c.mu must be held.
func (c *Client) reconnectLocked(ctx context.Context, cause *conn, asked time.Time) (*conn, error) {
	if f := c.failed; f != nil && f.dead == c.cur && !f.at.Before(asked) {
		return nil, f.err
	}
	dead := c.cur
	cn, err := c.connectLocked(ctx)
	if err != nil {
		lerr := &LostError{Host: c.cfg.Name, Cause: cause.err(), Reconnect: err}
		if ctx.Err() == nil {
			c.failed = &failedReconnect{dead: dead, at: time.Now(), err: lerr}
		}
		return nil, lerr
	}
	c.failed = nil
	return cn, nil
}

// replace closes old, which failed with cause, and connects again (unless another caller did
// already).
func (c *Client) replace(ctx context.Context, old *conn, cause error) (*conn, error) {
	old.fail(cause)
	asked := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("%s: %w", c.cfg.Name, ErrClosed)
	}
	if c.cur != old && c.cur.alive() {
		return c.cur, nil
	}
	return c.reconnectLocked(ctx, old, asked)
}

// session opens a session, connecting again once if the connection turns out to be dead.
func (c *Client) session(ctx context.Context) (*ssh.Session, *conn, error) {
	cn, fresh, err := c.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	s, err := c.newSession(ctx, cn)
	if err == nil {
		return s, cn, nil
	}
	var oce *ssh.OpenChannelError
	if errors.As(err, &oce) || ctx.Err() != nil || fresh {
		return nil, nil, fmt.Errorf("%s: open session: %w", c.cfg.Name, err)
	}
	// The channel could not even be opened, so no command ran: connect again, once.
	if cn, err = c.replace(ctx, cn, err); err != nil {
		return nil, nil, err
	}
	s, err = c.newSession(ctx, cn)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: open session after reconnecting: %w", c.cfg.Name, err)
	}
	return s, cn, nil
}

// sessionRetry bounds how long newSession retries a session sshd refused.
const sessionRetry = time.Second

// newSession opens a session. sshd frees a session slot only after the close handshake that
// follows the exit status, so a session opened right after another ended can find all of sshd's
// MaxSessions slots still taken for a moment: such a refusal (before anything ran) is retried
// with a short backoff.
func (c *Client) newSession(ctx context.Context, cn *conn) (*ssh.Session, error) {
	return retryRefused(ctx, c, func() (*ssh.Session, error) { return cn.ssh.NewSession() })
}

// openSessionChannel opens a session channel (for a command shell), retried as newSession's.
func (c *Client) openSessionChannel(ctx context.Context, cn *conn) (ssh.Channel, <-chan *ssh.Request, error) {
	var reqs <-chan *ssh.Request
	ch, err := retryRefused(ctx, c, func() (ssh.Channel, error) {
		ch, r, err := cn.ssh.OpenChannel("session", nil)
		reqs = r
		return ch, err
	})
	return ch, reqs, err
}

// retryRefused calls open until it succeeds, fails otherwise than by sshd refusing the channel
// for want of a session slot, sessionRetry has passed, or ctx ends.
func retryRefused[T any](ctx context.Context, c *Client, open func() (T, error)) (T, error) {
	deadline := time.Now().Add(sessionRetry)
	wait := time.Millisecond
	for {
		s, err := open()
		var oce *ssh.OpenChannelError
		if err == nil || !errors.As(err, &oce) || oce.Reason != ssh.ConnectionFailed || time.Now().After(deadline) {
			if oce != nil && oce.Reason == ssh.ConnectionFailed {
				err = fmt.Errorf("%w (is sshd's MaxSessions below %d?)", err, c.cfg.MaxSessions)
			}
			return s, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// Exec runs cmd.Cmd on the host (through the remote user's shell, as `sh -c` would) and returns
// its output and exit status. A non-zero exit status is not an error. A command that does not
// stream its output runs in a command shell when the user's shell is bash (see shell.go), else
// as a session of its own. Exec waits while MaxSessions commands run. When ctx ends, Exec
// returns at once: a session's command is sent SIGTERM and its session closed, a command
// shell's session is closed. (OpenSSH up to at least 9.2 does not deliver signals to root's
// sessions; such a command runs on until it ends or writes to its closed output.)
func (c *Client) Exec(ctx context.Context, cmd engine.Command) (engine.ExecResult, error) {
	name := c.cfg.Name
	if c.secrets.Contains(cmd.Cmd) {
		return engine.ExecResult{}, fmt.Errorf("%s: %w", name, ErrSecretInCommand)
	}
	if cmd.Stdout == nil && cmd.Stderr == nil {
		if res, done, err := c.execShell(ctx, &cmd); done {
			return res, err
		}
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return engine.ExecResult{}, fmt.Errorf("%s: waiting for a free session: %w", name, ctx.Err())
	}
	release := func() { <-c.sem }

	var stdout, stderr bytes.Buffer
	sess, cn, err := c.session(ctx)
	if err != nil {
		release()
		return engine.ExecResult{}, err
	}
	sess.Stdout, sess.Stderr, sess.Stdin = &stdout, &stderr, cmd.Stdin
	if cmd.Stdout != nil {
		sess.Stdout = io.MultiWriter(&stdout, cmd.Stdout)
	}
	if cmd.Stderr != nil {
		sess.Stderr = io.MultiWriter(&stderr, cmd.Stderr)
	}
	if err = sess.Start(cmd.Cmd); err != nil {
		sess.Close()
		release()
		// The ssh package's error names the command line; keep it out of ours. A start is not
		// tried again: only a refusal says the command did not run.
		if dead, cause := cn.lost(); dead {
			return engine.ExecResult{}, &LostError{Host: name, Cause: cause, Running: true}
		}
		if errors.Is(err, io.EOF) {
			return engine.ExecResult{}, fmt.Errorf("%s: the session ended before the host said the command started (it may have run)", name)
		}
		return engine.ExecResult{}, fmt.Errorf("%s: the host refused to start the command", name)
	}
	if cn.quickAck != nil {
		cn.quickAck.done() // sshd has turned TCP_NODELAY on
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
		sess.Close()
		release()
	case <-ctx.Done():
		// Ask sshd to signal the command and close the session. sshd keeps the session until
		// the command ends, so its slot is released only then, in the background.
		_ = sess.Signal(ssh.SIGTERM)
		sess.Close()
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			<-done
			release()
		}()
		return engine.ExecResult{}, fmt.Errorf("%s: command cancelled: %w", name, ctx.Err())
	}
	res := engine.ExecResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes()}
	var exit *ssh.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitStatus()
		return res, nil
	}
	if dead, cause := cn.lost(); dead {
		return res, &LostError{Host: name, Cause: cause, Running: true}
	}
	return res, fmt.Errorf("%s: command: %w", name, err)
}

// DialContext opens a TCP connection from the host to addr (an SSH direct-tcpip channel over the
// same connection). ctx bounds the opening only. network is "tcp", "tcp4" or "tcp6".
func (c *Client) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	cn, fresh, err := c.get(ctx)
	if err != nil {
		return nil, err
	}
	nc, err := cn.ssh.DialContext(ctx, network, addr)
	if err == nil {
		return withDeadlines(nc), nil
	}
	var oce *ssh.OpenChannelError
	if ctx.Err() != nil || errors.As(err, &oce) || fresh {
		return nil, fmt.Errorf("%s: dial %s from the host: %w", c.cfg.Name, addr, err)
	}
	// The channel could not be opened over a dead connection: connect again, once.
	if cn, err = c.replace(ctx, cn, err); err != nil {
		return nil, err
	}
	nc, err = cn.ssh.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: dial %s from the host: %w", c.cfg.Name, addr, err)
	}
	return withDeadlines(nc), nil
}

// Close closes the connection (and the jump host's) and waits for the Client's goroutines.
// Commands running over it fail.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	cur := c.cur
	c.mu.Unlock()
	c.shells.closeAll()
	if cur != nil {
		cur.fail(ErrClosed)
	}
	c.wg.Wait()
	if c.jump != nil {
		c.jump.Close()
	}
	if c.keys != nil {
		c.keys.close()
	}
	return nil
}

var _ engine.Conn = (*Client)(nil)
