// Package lock is the run lock: while a run works on a host it holds an exclusive flock(2) on a
// lock file of that host, so two runs never change the same host at once.
//
// The lock is held by a process of a long-lived session over the run's existing connection to
// the host (no extra SSH connection): a shell that takes `flock -n` on the lock file, writes who
// holds it into the file, and then waits for its standard input to end. Releasing the lock closes
// that input. Because the lock belongs to a process of the session, a run that dies (killed with
// SIGKILL, its machine switched off) releases it as soon as sshd notices the connection is gone:
// sshd closes the session's input, the process exits and the kernel drops the flock. A stale lock
// file therefore never blocks anyone; its content only says who held it last.
//
// A run takes the locks of all its hosts or none: when a host is held by another run, the locks
// already taken are released before waiting, so two runs over overlapping hosts cannot deadlock.
// With a zero Timeout the first attempt decides (the default, like Terraform's -lock-timeout=0s);
// with a positive Timeout the run waits for the other run to end, saying so through Waiting.
//
// Never delete a lock file: a run that opened the old file and a run that created a new one
// would both hold "the" lock.
package lock

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/runbook/runbook/engine"
)

// DefaultPath is the lock file on each host when Options.Path is empty. It has the host's name
// in it so that hosts sharing /run (containers) still have a lock each. Its folder is root's own
// (see holdScript), not the world-writable /run/lock.
const DefaultPath = "/run/runbook/lock-$(uname -n)"

// ErrUnreachable, wrapped in the error a host's connection returns, leaves that host out of the
// Set instead of failing Acquire: a host that could not be connected is already out of the run
// (its caller reports it), and the others are still locked, all or none.
var ErrUnreachable = errors.New("host not connected")

// Exit statuses of the holding script.
const (
	exitBusy    = 75 // EX_TEMPFAIL: another process holds the lock
	exitNoFlock = 69 // EX_UNAVAILABLE: flock(1) is not installed
)

// Defaults for the zero Options fields.
const (
	defaultRetry = time.Second
	// defaultReleaseWait bounds Release's wait for a host's holding session to end. A reachable
	// host ends it in one round trip; a host that vanished mid-run never answers, and the run
	// must not sit on its finished output for that: after the wait the session is dropped, and
	// the lock frees itself on the host when its holder goes (or after the lease).
	defaultReleaseWait = 2 * time.Second
	attemptTimeout     = 30 * time.Second
)

// Holder describes the run that holds a lock, as written into the lock file.
type Holder struct {
	// PID is the runbook process id on the operator's machine.
	PID int
	// User is the operator's login name.
	User string
	// Machine is the operator's machine name.
	Machine string
	// Playbook is the playbook being run.
	Playbook string
	// Started is when the lock was taken.
	Started time.Time
}

// String describes the holder in one line: "alice@laptop (runbook pid 42, playbook site.hcl)
// since 2025-06-01 12:00:00 UTC".
func (h Holder) String() string {
	if h == (Holder{}) {
		return "another run (it left no holder information)"
	}
	var b strings.Builder
	who := h.User
	if who == "" {
		who = "unknown user"
	}
	if h.Machine != "" {
		who += "@" + h.Machine
	}
	b.WriteString(who)
	var detail []string
	if h.PID > 0 {
		detail = append(detail, "runbook pid "+strconv.Itoa(h.PID))
	}
	if h.Playbook != "" {
		detail = append(detail, "playbook "+h.Playbook)
	}
	if len(detail) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(detail, ", "))
	}
	if !h.Started.IsZero() {
		fmt.Fprintf(&b, " since %s", h.Started.Local().Format("2006-01-02 15:04:05 MST"))
	}
	return b.String()
}

// Options control AcquireAll.
type Options struct {
	// Path is the lock file on every host, a shell word expanded by the host's shell (so
	// $(uname -n) works). Default DefaultPath. Its directory is made when missing.
	Path string
	// Timeout is how long to wait for locks held by other runs: 0 fails at once, naming the
	// holder.
	Timeout time.Duration
	// Retry is the pause between two attempts while waiting (default 1s, with jitter).
	Retry time.Duration
	// Holder says who takes the lock; zero fields are filled in (pid, user, machine, now).
	Holder Holder
	// Waiting, when not nil, is told once per host and holder that the run waits:
	// "waiting for the lock on node1 held by alice@laptop (runbook pid 42, ...) since ...".
	Waiting func(host, msg string)
	// Lost, when not nil, is called when a lock is lost before release: the holding session
	// ended (connection lost, process killed on the host). Another run may then take the host.
	Lost func(host string, err error)
	// Lease is how long the lock outlives the last heartbeat of a holder that vanished without
	// ending its session (default DefaultLease; whole seconds).
	Lease time.Duration
	// ReleaseWait is how long Release waits for a host to end its holding session before it
	// drops the session (default 2s).
	ReleaseWait time.Duration
	// Hint is appended to the message of a BusyError, e.g. "retry with --lock-timeout=10m to
	// wait for it".
	Hint string
	// Then maps a host to a read-only script its holding session runs right after taking the
	// lock, before it says so: a run reads the host's state in the round trip that locks it.
	// The script runs with no input in the holding shell itself (no fork for it): it must not
	// exit, assign variables or change the shell's options or working directory, which the
	// holding script relies on after it; whatever may do so goes in subshells of its own.
	// Its exit status is ignored, and what it printed on each stream comes back from Set.Then. An attempt that fails elsewhere (another
	// host busy) runs it again with the next one.
	Then map[string]string
}

// BusyError says that a host's lock is held by another run.
type BusyError struct {
	Host   string
	Path   string
	Holder Holder
	// Waited is how long the run waited before giving up (0 with a zero Timeout).
	Waited time.Duration
	// Hint is what to do, from Options.Hint.
	Hint string
}

// Error implements error.
func (e *BusyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: locked by another run: %s", e.Host, e.Holder)
	if e.Waited > 0 {
		fmt.Fprintf(&b, "; still held after waiting %s", e.Waited.Round(time.Second))
	}
	fmt.Fprintf(&b, " (lock file %s on the host)", strings.ReplaceAll(e.Path, "$(uname -n)", "<hostname>"))
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	return b.String()
}

// Set is the locks a run holds on its hosts.
type Set struct {
	mu       sync.Mutex
	held     map[string]*held
	released bool
}

// held is one host's lock: the holding session and how to end it.
type held struct {
	host     string
	then     engine.ExecResult // what Options.Then printed (exit status left 0), once thenDone
	thenOK   bool              // then is whole: the script ran to its end
	thenDone chan struct{}     // closed when then is in, or will not come
	stdin    *io.PipeWriter
	done     chan struct{} // closed when the holding Exec has returned
	err      error         // why the session ended; valid after done
	mu       sync.Mutex
	released bool
	cancel   context.CancelFunc
	// releaseWait is Options.ReleaseWait.
	releaseWait time.Duration
}

// AcquireAll takes the lock of every host (name → connection), all or none, and returns the
// function that releases them. It fails with a *BusyError (joined, one per host) when another
// run still holds a host after opts.Timeout, and with other errors when a host cannot be locked
// at all (connection lost, flock not installed); a host whose connection fails with an error
// that wraps ErrUnreachable is left out. Release is safe to call more than once.
func AcquireAll(ctx context.Context, hosts map[string]engine.Conn, opts Options) (release func(), err error) {
	s, err := Acquire(ctx, hosts, opts)
	if err != nil {
		return func() {}, err
	}
	return s.Release, nil
}

// Acquire is AcquireAll returning the Set.
func Acquire(ctx context.Context, hosts map[string]engine.Conn, opts Options) (*Set, error) {
	opts = withDefaults(opts)
	names := make([]string, 0, len(hosts))
	for h := range hosts {
		names = append(names, h)
	}
	sort.Strings(names)
	start := time.Now()
	told := map[string]Holder{}
	for {
		s, busy, err := attemptAll(ctx, hosts, names, opts)
		if err != nil {
			return nil, err
		}
		if len(busy) == 0 {
			s.watch(opts.Lost)
			return s, nil
		}
		waited := time.Since(start)
		if waited >= opts.Timeout {
			errs := make([]error, len(busy))
			for i, b := range busy {
				if opts.Timeout > 0 {
					b.Waited = waited
				}
				b.Hint = opts.Hint
				errs[i] = b
			}
			return nil, errors.Join(errs...)
		}
		for _, b := range busy {
			if prev, ok := told[b.Host]; ok && prev == b.Holder {
				continue
			}
			told[b.Host] = b.Holder
			if opts.Waiting != nil {
				opts.Waiting(b.Host, fmt.Sprintf("waiting for the lock on %s held by %s", b.Host, b.Holder))
			}
		}
		pause := min(jitter(opts.Retry), opts.Timeout-waited)
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the run lock: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// jitter returns d plus up to a quarter of d, so that two waiting runs do not retry in step.
func jitter(d time.Duration) time.Duration {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return d + time.Duration(int64(d)/4*int64(b[0])/255)
}

func withDefaults(o Options) Options {
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Path == "" {
		o.Path = DefaultPath
	}
	if o.Retry <= 0 {
		o.Retry = defaultRetry
	}
	if o.ReleaseWait <= 0 {
		o.ReleaseWait = defaultReleaseWait
	}
	if o.Timeout < 0 {
		o.Timeout = 0
	}
	h := &o.Holder
	if h.PID == 0 {
		h.PID = os.Getpid()
	}
	if h.User == "" {
		if u, err := user.Current(); err == nil {
			h.User = u.Username
		} else {
			h.User = os.Getenv("USER")
		}
	}
	if h.Machine == "" {
		h.Machine, _ = os.Hostname()
	}
	if h.Started.IsZero() {
		h.Started = time.Now()
	}
	return o
}

// attemptAll tries every host at once. It returns the Set when all were taken, the busy hosts
// (having released the others) when some are held by other runs, or an error.
func attemptAll(ctx context.Context, hosts map[string]engine.Conn, names []string, o Options) (*Set, []*BusyError, error) {
	type result struct {
		h    *held
		busy *BusyError
		err  error
	}
	results := make([]result, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, busy, err := tryLock(ctx, name, hosts[name], o)
			results[i] = result{h, busy, err}
		}()
	}
	wg.Wait()
	s := &Set{held: map[string]*held{}}
	var busy []*BusyError
	var errs []error
	for _, r := range results {
		switch {
		case r.h != nil:
			s.held[r.h.host] = r.h
		case r.busy != nil:
			busy = append(busy, r.busy)
		case errors.Is(r.err, ErrUnreachable):
			// out of the run: not locked, and no reason to release the others
		default:
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 || len(busy) > 0 {
		s.Release()
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	if len(busy) > 0 {
		return nil, busy, nil
	}
	return s, nil, nil
}

// holdScript returns the script that takes the lock at path and holds it while its input lasts.
// Holder information travels on the command line: it is no secret.
// DefaultLease is how long a lock outlives its holder's last heartbeat (Options.Lease). The holder sends one every
// Lease/3; a holder that vanished without closing its session (killed while the host was cut off,
// so the host's sshd never saw the connection end) stops sending them, and the holding process on
// the host gives the lock up by itself after Lease.
const DefaultLease = 15 * time.Second

// holdScript holds the lock while heartbeats arrive on stdin: it ends (and the flock with it) on
// EOF (release) or when none came within lease. Once the lock is taken it prints takenLine(token),
// which tells the run, as the session's output streams in, that it holds the lock.
//
// The lock file's folder must be the connecting user's own, not a symbolic link and not a shared
// sticky folder like /tmp or /run/lock (it is made, mode 0700, when missing): the script opens the
// file for writing and empties it, so in a folder where others can write a local user could point
// it at another file (/etc/passwd) with a symbolic or hard link, and a root run would empty that.
//
// It starts as few processes as it can, since every run on every host pays for them: the host's
// name comes from /proc (uname(1) where there is none), and under bash the wait for a heartbeat
// is bash's own read -t; other shells run timeout(1) and sh for each wait.
//
// A then script runs between taking the lock and saying so; the line that says so then goes to
// both streams, after a newline, so that each stream's output of the script ends where the
// line starts. Ahead of the script, heldLine says that the lock is taken: how long the script
// takes does not count as waiting for the host.
func holdScript(path, info, token string, lease time.Duration, then string) string {
	name := ""
	if strings.Contains(path, "$(uname -n)") {
		name = "h=; { IFS= read -r h </proc/sys/kernel/hostname; } 2>/dev/null && [ -n \"$h\" ] || h=$(uname -n)\n"
		path = strings.ReplaceAll(path, "$(uname -n)", "${h}")
	}
	secs := max(1, int(lease/time.Second))
	line := engine.ShellQuote(strings.TrimSuffix(takenLine(token), "\n"))
	say := "printf '%s\\n' " + line
	if then != "" {
		say = "printf '%s\\n' " + engine.ShellQuote(strings.TrimSuffix(heldLine(token), "\n")) +
			"\n{\n" + then + "\n} </dev/null\nprintf '\\n%s\\n' " + line + " >&2; printf '\\n%s\\n' " + line
	}
	return name + fmt.Sprintf(`f=%s
command -v flock >/dev/null 2>&1 || { echo "flock(1) is not installed on this host (Debian: apt-get install util-linux)" >&2; exit %d; }
case $f in */*) d=${f%%/*};; *) d=.;; esac; d=${d:-/}
[ -d "$d" ] || mkdir -m 700 -- "$d" 2>/dev/null || [ -d "$d" ] || { echo "cannot make the run lock's folder $d (connect as root, or make it for the connecting user: mkdir -m 700 $d; chown USER $d)" >&2; exit 73; }
if ! { %s; }; then echo "the run lock's folder $d is not the connecting user's own private folder (another user's, a symbolic link, or a shared sticky folder like /tmp): a lock file there could be turned against another file; use a folder only the connecting user can write to" >&2; exit 73; fi
exec 9<>"$f" || exit 73
if ! flock -n 9; then cat -- "$f"; exit %d; fi
: >"$f"
printf '%%s\n' %s >&9
%s
if [ -n "${BASH_VERSION-}" ]; then while IFS= read -r -t %d x; do :; done
else while timeout %d sh -c 'IFS= read -r x'; do :; done; fi
: >"$f"
`, path, exitNoFlock, engine.PrivateFolderTest(`"$d"`), exitBusy, engine.ShellQuote(info), say, secs, secs)
}

// takenLine is what the holding script prints once it holds the lock (and ran Options.Then).
func takenLine(token string) string { return "runbook-lock-taken " + token + "\n" }

// heldLine is what the holding script prints once it holds the lock, before Options.Then.
func heldLine(token string) string { return "runbook-lock-held " + token + "\n" }

// lineWatch is the holding session's standard output (or error): it closes seen once want has
// arrived. When it keeps, before is what came ahead of want.
type lineWatch struct {
	mu     sync.Mutex
	want   []byte
	buf    []byte
	seen   chan struct{}
	done   bool
	keep   bool
	before []byte
}

func newLineWatch(want string, keep bool) *lineWatch {
	return &lineWatch{want: []byte(want), seen: make(chan struct{}), keep: keep}
}

// Write implements io.Writer.
func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	if i := bytes.Index(w.buf, w.want); i >= 0 {
		w.done = true
		if w.keep {
			// the script's output, without the newline printed ahead of want
			w.before = bytes.TrimSuffix(w.buf[:i], []byte("\n"))
		}
		w.buf = nil
		close(w.seen)
	} else if len(w.buf) > 4096 && !w.keep {
		w.buf = w.buf[len(w.buf)-len(w.want):]
	}
	return len(p), nil
}

// encode writes the holder and the attempt's token as key=value lines.
func encode(h Holder, token string) string {
	clean := strings.NewReplacer("\n", " ", "\r", " ").Replace
	return fmt.Sprintf("runbook-lock=1\npid=%d\nuser=%s\nmachine=%s\nplaybook=%s\nstarted=%s\ntoken=%s",
		h.PID, clean(h.User), clean(h.Machine), clean(h.Playbook), h.Started.UTC().Format(time.RFC3339), token)
}

// decode reads what encode wrote; missing or broken fields stay zero.
func decode(s string) (Holder, string) {
	var h Holder
	var token string
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "pid":
			h.PID, _ = strconv.Atoi(v)
		case "user":
			h.User = v
		case "machine":
			h.Machine = v
		case "playbook":
			h.Playbook = v
		case "started":
			h.Started, _ = time.Parse(time.RFC3339, v)
		case "token":
			token = v
		}
	}
	return h, token
}

// tryLock makes one attempt on one host: it starts the holding session and waits until the
// session says it took the lock (one round trip, no polling) or ends (busy, or an error).
func tryLock(ctx context.Context, host string, c engine.Conn, o Options) (*held, *BusyError, error) {
	var tb [8]byte
	if _, err := rand.Read(tb[:]); err != nil {
		return nil, nil, fmt.Errorf("%s: lock: %w", host, err)
	}
	token := hex.EncodeToString(tb[:])
	pr, pw := io.Pipe()
	// The holding session outlives ctx (an interrupted run still releases its locks in order);
	// Release ends it.
	hctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &held{host: host, stdin: pw, done: make(chan struct{}), cancel: cancel, thenDone: make(chan struct{}), releaseWait: o.ReleaseWait}
	var res engine.ExecResult
	then := o.Then[host]
	taken := newLineWatch(takenLine(token), then != "")
	cmd := engine.Command{Cmd: holdScript(o.Path, encode(o.Holder, token), token, o.Lease, then), Stdin: pr, Stdout: taken}
	seen, answered := taken.seen, taken.seen
	var takenErr *lineWatch
	if then != "" {
		heldOut := newLineWatch(heldLine(token), false)
		answered = heldOut.seen
		cmd.Stdout = io.MultiWriter(heldOut, taken)
		takenErr = newLineWatch(takenLine(token), true)
		cmd.Stderr = takenErr
		both := make(chan struct{})
		go func() {
			for _, ch := range []chan struct{}{taken.seen, takenErr.seen} {
				select {
				case <-ch:
				case <-h.done:
					return
				}
			}
			close(both)
		}()
		seen = both
	}
	go func() {
		defer close(h.done)
		res, h.err = c.Exec(hctx, cmd)
		if h.err == nil && res.ExitCode != 0 {
			h.err = res.Err()
		}
		if h.err == nil {
			h.err = errors.New("the holding session ended")
		}
	}()

	actx, acancel := context.WithTimeout(ctx, attemptTimeout)
	defer acancel()
	select {
	case <-answered:
		// Held. Options.Then may still run: its output is collected as it ends.
		go func() {
			defer close(h.thenDone)
			if takenErr == nil {
				return
			}
			select {
			case <-seen:
				out := bytes.TrimPrefix(taken.before, []byte(heldLine(token)))
				h.then = engine.ExecResult{Stdout: append([]byte{}, out...), Stderr: append([]byte{}, takenErr.before...)}
				h.thenOK = true
			case <-h.done:
			}
		}()
		go h.heartbeat(o.Lease)
		return h, nil, nil
	case <-h.done:
		cancel()
		switch {
		case res.ExitCode == exitBusy:
			holder, _ := decode(string(res.Stdout))
			return nil, &BusyError{Host: host, Path: o.Path, Holder: holder}, nil
		case res.ExitCode == exitNoFlock:
			return nil, nil, fmt.Errorf("%s: cannot take the run lock: %s", host, strings.TrimSpace(string(res.Stderr)))
		}
		return nil, nil, fmt.Errorf("%s: cannot take the run lock %s: %w", host, o.Path, h.err)
	case <-actx.Done():
		h.release()
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("%s: taking the run lock: %w", host, ctx.Err())
		}
		return nil, nil, fmt.Errorf("%s: taking the run lock: no answer within %s", host, attemptTimeout)
	}
}

// heartbeat keeps the lease: a line every lease/3 until the session ends or is released.
func (h *held) heartbeat(lease time.Duration) {
	t := time.NewTicker(lease / 3)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
			h.mu.Lock()
			released := h.released
			h.mu.Unlock()
			if released {
				return
			}
			if _, err := h.stdin.Write([]byte("\n")); err != nil {
				return
			}
		}
	}
}

// release ends the holding session and waits for it (bounded).
func (h *held) release() {
	h.mu.Lock()
	h.released = true
	h.mu.Unlock()
	h.stdin.Close()
	t := time.NewTimer(h.releaseWait)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
		h.cancel()
		<-h.done
	}
	h.cancel()
}

// watch calls lost for every lock whose session ends before Release.
func (s *Set) watch(lost func(host string, err error)) {
	if lost == nil {
		return
	}
	for _, h := range s.held {
		go func() {
			<-h.done
			h.mu.Lock()
			released := h.released
			h.mu.Unlock()
			if !released {
				lost(h.host, fmt.Errorf("the session holding the run lock ended: %w", h.err))
			}
		}()
	}
}

// Then waits until host's Options.Then script has run and returns what it printed; false when
// the Set does not hold host, host had none, its session ended first, or ctx ended. The locks
// are all held before the scripts are done: a run can start on the hosts whose scripts are in.
func (s *Set) Then(ctx context.Context, host string) (engine.ExecResult, bool) {
	s.mu.Lock()
	h, ok := s.held[host]
	s.mu.Unlock()
	if !ok {
		return engine.ExecResult{}, false
	}
	select {
	case <-h.thenDone:
	case <-ctx.Done():
		return engine.ExecResult{}, false
	}
	return h.then, h.thenOK
}

// Hosts returns the names of the hosts whose lock the Set holds.
func (s *Set) Hosts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.held))
	for h := range s.held {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Release releases every lock of the Set (in parallel) and waits until the hosts confirm.
// It is safe to call more than once.
func (s *Set) Release() {
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		return
	}
	s.released = true
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, h := range s.held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.release()
		}()
	}
	wg.Wait()
}
