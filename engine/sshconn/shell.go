package sshconn

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/runbook/runbook/engine"
)

// A command shell is one session, kept open for the run, whose shell reads the commands it runs
// from its standard input instead of sshd starting a session and a login shell for each: on a
// busy host each session costs sshd a fork and the user's shell a start (about 20 ms of CPU on
// the lab), a command of the shell one subshell fork (about 4 ms). Each command still runs in a
// subshell of its own (an exit, cd, variable or trap of one does not reach the next), with no
// input or with exactly the bytes it was given, and what it prints on each stream comes back
// framed by lines that carry a random token. It needs bash (read -N); under any other login
// shell the session says so at once, before reading anything, and the Client runs its commands
// as sessions, as it always did.

// maxShellStdin is the most input a command of a shell is given; a command with more runs as a
// session of its own, as does one whose input holds a NUL byte (which a shell variable cannot).
// The input travels in a shell variable and reaches the command through a pipe (64 KiB on Linux)
// that a forked printf writes.
const maxShellStdin = 32 << 10

// errNoShell says that the session's shell is not bash: the command did not run.
var errNoShell = errors.New("the login shell is not bash")

// errShellEnded says that the shell ended while a command ran: it may have run.
var errShellEnded = errors.New("the command shell ended before the command did (it may have run)")

// errNUL says that a command or its input holds a NUL byte, which a shell variable cannot: nothing
// was sent.
var errNUL = errors.New("a NUL byte in the command or its input")

// errNotTaken says that the shell ended (or failed) before it had read the command: it did not run.
var errNotTaken = errors.New("the command shell ended before it took the command")

// shellScript is the loop a command shell runs. A command is sent as a header line, "LEN -" (no
// input) or "LEN INLEN", then LEN bytes of script, then INLEN bytes of input; read -N counts bytes under LC_ALL=C, which is set for the reads only:
// commands see the session's own locale. The input (which may hold a secret) is dropped from the
// shell's variables once the command ended. Once it has read a command whole the shell says so
// on stdout ("\nTOKEN +\n"), so a shell that ends before that line ran nothing of it; after the
// command it prints "\nTOKEN STATUS\n" on stdout and "\nTOKEN\n" on stderr. It ends when its
// input ends.
func shellScript(token string) string {
	// The loop is bash's only (read -N), so it is a quoted word that only bash evals, after the
	// test. All on line 1: bash numbers the lines of an eval'd script from the line of the eval,
	// and so says "line 1" where `bash -c` would.
	const run = `( unset __rb_h __rb_i __rb_r __rb_d; eval "$__rb_s" )`
	loop := `while IFS= read -r __rb_h; do ` +
		`IFS= LC_ALL=C read -r -N "${__rb_h%% *}" __rb_s || exit 0; __rb_i=${__rb_h#* }; ` +
		`case $__rb_i in -) ;; *) IFS= LC_ALL=C read -r -N "$__rb_i" __rb_d || exit 0;; esac; ` +
		`printf '\n%s +\n' ` + token + `; ` +
		`case $__rb_i in -) ` + run + ` </dev/null;; ` +
		`*) printf %s "$__rb_d" | ` + run + `;; esac; ` +
		`__rb_r=$?; unset __rb_d; printf '\n%s %s\n' ` + token + ` "$__rb_r"; printf '\n%s\n' ` + token + ` >&2; ` +
		`done`
	return `[ -n "${BASH_VERSION-}" ] || { printf '\n%s none\n' ` + token + `; exit 0; }; eval ` + engine.ShellQuote(loop)
}

// newShellToken returns a random token for the frame lines of a shell.
func newShellToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "RBSH-" + hex.EncodeToString(b[:])
}

// frame is what one command of a shell printed on one stream.
type frame struct {
	data   []byte
	status string // stdout only: the exit status, or "none"
	err    error  // the stream ended (or failed) before the frame did
}

// shell is one command shell: its input, and the frames of its two output streams as they come.
type shell struct {
	token  string
	stdin  io.WriteCloser
	out    chan frame
	errs   chan frame
	close  func() // ends the session
	broken bool   // a command failed in a way that leaves the shell unusable
}

// startShell reads the frames of a shell whose script runs with stdin, stdout and stderr.
func startShell(token string, stdin io.WriteCloser, stdout, stderr io.Reader, closeFn func()) *shell {
	s := &shell{token: token, stdin: stdin, out: make(chan frame, 1), errs: make(chan frame, 1), close: closeFn}
	go readFrames(stdout, []byte("\n"+token+" "), true, s.out)
	go readFrames(stderr, []byte("\n"+token+"\n"), false, s.errs)
	return s
}

// readFrames splits r into frames at each marker: with status, the marker ends with the rest of
// its line, the status. It sends each frame on ch, then, when r ends, a frame with an error,
// and closes ch.
func readFrames(r io.Reader, marker []byte, status bool, ch chan<- frame) {
	defer close(ch)
	var buf []byte
	scanned := 0 // buf[:scanned] holds no marker start
	chunk := make([]byte, 32<<10)
	for {
		for {
			i := bytes.Index(buf[scanned:], marker)
			if i < 0 {
				scanned = max(0, len(buf)-len(marker)+1)
				break
			}
			i += scanned
			end := i + len(marker)
			st := ""
			if status {
				nl := bytes.IndexByte(buf[end:], '\n')
				if nl < 0 {
					scanned = i
					break
				}
				st = string(buf[end : end+nl])
				end += nl + 1
			}
			ch <- frame{data: bytes.Clone(buf[:i]), status: st}
			buf = append(buf[:0], buf[end:]...)
			scanned = 0
		}
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil {
			if n > 0 {
				continue // look for markers in the last bytes first
			}
			if err == io.EOF {
				err = errShellEnded
			}
			ch <- frame{err: err}
			return
		}
	}
}

// run sends one command and waits for its result. in is its input (nil: none). A shell whose
// run returned an error other than errNoShell and errNUL must not be used again.
func (s *shell) run(ctx context.Context, script string, in []byte) (stdout, stderr []byte, status int, err error) {
	if strings.IndexByte(script, 0) >= 0 || bytes.IndexByte(in, 0) >= 0 {
		return nil, nil, 0, errNUL
	}
	var msg bytes.Buffer
	if in == nil {
		fmt.Fprintf(&msg, "%d -\n%s", len(script), script)
	} else {
		fmt.Fprintf(&msg, "%d %d\n%s%s", len(script), len(in), script, in)
	}
	written := make(chan error, 1)
	go func() {
		_, err := s.stdin.Write(msg.Bytes())
		written <- err
	}()
	next := func() (frame, error) {
		select {
		case f, ok := <-s.out:
			if !ok {
				f.err = errShellEnded
			}
			return f, nil
		case <-ctx.Done():
			s.broken = true
			return frame{}, ctx.Err()
		}
	}
	ack, err := next()
	switch {
	case err != nil:
		return nil, nil, 0, err
	case ack.err != nil:
		s.broken = true
		return nil, nil, 0, fmt.Errorf("%w: %w", errNotTaken, ack.err)
	case ack.status == "none":
		s.broken = true
		return nil, nil, 0, errNoShell
	case ack.status != "+":
		s.broken = true
		return nil, nil, 0, fmt.Errorf("unexpected status line %q", ack.status)
	}
	// Output ahead of the line that says the command was taken is a background process's of an
	// earlier command, still writing to the shell's streams: the shell is not used again.
	stray := len(ack.data) > 0
	out, err := next()
	if err != nil {
		return nil, nil, 0, err
	}
	if out.err != nil {
		s.broken = true
		return nil, nil, 0, out.err
	}
	var errOut frame
	select {
	case f, ok := <-s.errs:
		if errOut = f; !ok {
			errOut.err = errShellEnded
		}
	case <-ctx.Done():
		s.broken = true
		return nil, nil, 0, ctx.Err()
	}
	if errOut.err != nil {
		s.broken = true
		return nil, nil, 0, errOut.err
	}
	if err := <-written; err != nil {
		s.broken = true
		return nil, nil, 0, fmt.Errorf("send the command: %w", err)
	}
	st, err := strconv.Atoi(out.status)
	if err != nil {
		s.broken = true
		return nil, nil, 0, fmt.Errorf("unexpected status line %q", out.status)
	}
	s.broken = stray
	return out.data, errOut.data, st, nil
}

// shellPool is a Client's idle command shells and how many it has open.
type shellPool struct {
	mu    sync.Mutex
	idle  []*pooledShell
	open  int
	none  bool // the login shell is not bash: no more shells
	limit int
}

// pooledShell is a shell of a connection.
type pooledShell struct {
	*shell
	cn *conn
}

// take returns an idle shell of cn, or reserves the opening of a new one (nil, true), or says
// that no shell is to be had (nil, false). Idle shells of other (older) connections are ended.
func (p *shellPool) take(cn *conn) (*pooledShell, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.none {
		return nil, false
	}
	for len(p.idle) > 0 {
		s := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if s.cn == cn {
			return s, true
		}
		p.open--
		s.close()
	}
	if p.open >= p.limit {
		return nil, false
	}
	p.open++
	return nil, true
}

// put gives back a shell after a command; a broken one is ended.
func (p *shellPool) put(s *pooledShell) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.broken || p.none {
		p.open--
		s.close()
		return
	}
	p.idle = append(p.idle, s)
}

// forget gives back a reservation (or a shell already ended); none marks the login shell as not
// bash.
func (p *shellPool) forget(none bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open--
	if none {
		p.none = true
	}
}

// closeAll ends the idle shells.
func (p *shellPool) closeAll() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.open -= len(idle)
	p.mu.Unlock()
	for _, s := range idle {
		s.close()
	}
}

// execShell runs cmd in a command shell of the current connection. done is false when it did not
// run it and the caller is to run it as a session: no shell to be had (all busy, the login shell
// is not bash, a session refused), a NUL byte in the command or its input, or input that is not
// a bytes.Reader, strings.Reader or bytes.Buffer of at most maxShellStdin bytes (cmd.Stdin then
// still yields all of it).
func (c *Client) execShell(ctx context.Context, cmd *engine.Command) (res engine.ExecResult, done bool, err error) {
	name := c.cfg.Name
	if strings.IndexByte(cmd.Cmd, 0) >= 0 {
		return res, false, nil // a shell variable cannot hold it
	}
	var in []byte
	if cmd.Stdin != nil {
		var ok bool
		if in, ok = wholeInput(cmd.Stdin); !ok {
			return res, false, nil
		}
		cmd.Stdin = bytes.NewReader(in) // for a session, if it comes to one
		if bytes.IndexByte(in, 0) >= 0 {
			return res, false, nil // nor this
		}
		if len(in) == 0 {
			in = nil // no input: /dev/null, as good as an empty one
		}
	}
	c.mu.Lock()
	cn := c.cur
	c.mu.Unlock()
	if !cn.alive() {
		return res, false, nil // the session path connects again
	}
	s, ok := c.shells.take(cn)
	if !ok {
		return res, false, nil
	}
	opened := s == nil
	if opened {
		select {
		case c.sem <- struct{}{}:
		case <-ctx.Done():
			c.shells.forget(false)
			return res, true, fmt.Errorf("%s: waiting for a free session: %w", name, ctx.Err())
		}
		if s, err = c.openShell(ctx, cn); err != nil {
			<-c.sem
			c.shells.forget(false)
			return res, false, nil
		}
	}
	stdout, stderr, status, err := s.run(ctx, cmd.Cmd, in)
	switch {
	case err == nil:
		c.shells.put(s)
		return engine.ExecResult{Stdout: stdout, Stderr: stderr, ExitCode: status}, true, nil
	case errors.Is(err, errNoShell):
		// nothing ran: every command of this connection is a session from now on
		c.shells.forget(true)
		s.close()
		return res, false, nil
	case errors.Is(err, errNotTaken) && ctx.Err() == nil && opened:
		// A shell that ends before its first command: a login shell that cannot even parse the
		// test for bash (fish, csh). Sessions from now on; the command did not run.
		c.shells.forget(true)
		s.close()
		return res, false, nil
	case errors.Is(err, errNotTaken) && ctx.Err() == nil:
		// nothing ran (the connection may have ended while the shell was idle): a session,
		// which connects again if it must
		c.shells.put(s)
		return res, false, nil
	}
	c.shells.put(s) // broken: ended
	if ctx.Err() != nil {
		return res, true, fmt.Errorf("%s: command cancelled: %w", name, ctx.Err())
	}
	if dead, cause := cn.lost(); dead {
		return res, true, &LostError{Host: name, Cause: cause, Running: true}
	}
	return res, true, fmt.Errorf("%s: %w", name, err)
}

// wholeInput returns what is left of r when r holds it all in memory and it is at most
// maxShellStdin bytes; false otherwise (r untouched): a stream, such as the run lock's
// heartbeats, is a session's, fed as it comes.
func wholeInput(r io.Reader) ([]byte, bool) {
	var n int
	switch v := r.(type) {
	case *bytes.Reader:
		n = v.Len()
	case *strings.Reader:
		n = v.Len()
	case *bytes.Buffer:
		n = v.Len()
	default:
		return nil, false
	}
	if n > maxShellStdin {
		return nil, false
	}
	b, err := io.ReadAll(r)
	return b, err == nil
}

// openShell starts a command shell over cn, holding one slot of c.sem until it ends. It asks
// for the shell without waiting for sshd's reply, so the first command goes out right behind
// the request: a refusal ends the channel, which the first command finds before the shell
// took it.
func (c *Client) openShell(ctx context.Context, cn *conn) (*pooledShell, error) {
	ch, reqs, err := c.openSessionChannel(ctx, cn)
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs) // exit-status
	token := newShellToken()
	exec := ssh.Marshal(struct{ Command string }{shellScript(token)})
	if _, err := ch.SendRequest("exec", false, exec); err != nil {
		ch.Close()
		return nil, err
	}
	if cn.quickAck != nil {
		cn.quickAck.done() // sshd turns TCP_NODELAY on as the session starts
	}
	var once sync.Once
	end := func() {
		once.Do(func() {
			ch.Close()
			<-c.sem // a session opened at once that finds sshd's slot still taken is retried
		})
	}
	return &pooledShell{shell: startShell(token, ch, ch, ch.Stderr(), end), cn: cn}, nil
}
